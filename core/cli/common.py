"""Small helpers the command modules share."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from core import config, jsonvalue
from core.config import SpreadError
from core.store import Store


def pass_store(command):
    """Hand the command the Store `--db` (else $SPREAD_DB, else data/spread.db) names, as its
    first argument: one per invocation, made when the command runs (never for `--help`)."""

    @click.pass_context
    def with_store(ctx: click.Context, *args, **kwargs):
        root = ctx.find_root()
        if "store" not in root.meta:
            given = root.params.get("db")
            root.meta["store"] = Store(config.absolute(config.database(given, "--db")) if given else None)
        return ctx.invoke(command, root.meta["store"], *args, **kwargs)

    return functools.update_wrapper(with_store, command)


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON (the last line of stdout)")


def read_text(path: str) -> str:
    """A UTF-8 file (or stdin for "-") as text, or a one-line SpreadError."""
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as e:
        raise SpreadError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpreadError(f"{path} is not valid UTF-8 text (byte {e.start})") from None


def print_json(value) -> None:
    """Every --json output: strict JSON (NaN and Infinity written as null)."""
    print(jsonvalue.dumps(value, default=_plain))


def _plain(value):
    """numpy numbers in JSON."""
    return value.item() if hasattr(value, "item") else str(value)


def reviewer(name: str | None = None) -> str:
    return name or os.environ.get("SPREAD_REVIEWER") or os.environ.get("USER") or ""
