"""A run's inputs: a table of cases, each a mapping of variable name → text.

Inputs come from a CSV, JSONL or JSON file, from rows typed into the Playground,
from `--var NAME=VALUE` pairs, or from an earlier run (a golden set's items: golden.as_inputs).
Every reader either returns the whole table or raises one SpreadError that says what
is wrong and where (file, line, column); nothing is half-read.

Columns no placeholder uses are kept with the input: they are what checks compare
answers against (an `expected` column, for example).

A JSONL line `{"messages": [...]}` (OpenAI's chat and fine-tuning format) is one input
whose `messages` column holds the conversation as JSON (core/prompts/conversation.py: a
variant places it with a history turn); a final assistant message is taken off and
kept as the input's `reference`, the answer checks compare with.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from core.config import SpreadError, check_text
from core.store import Store, runs

MAX_INPUTS = 10_000
MAX_VALUE_CHARS = 200_000
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


def read_file(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpreadError(f"cannot read {path}: {e.strerror or e}", "inputs") from None
    return parse(data, path.name)


def parse(data: bytes, filename: str) -> list[dict[str, str]]:
    """The inputs in a file's bytes; its format comes from the file name's suffix."""
    fmt = FORMATS.get(Path(filename).suffix.lower())
    if fmt is None:
        raise SpreadError(f"{filename}: inputs come from a .csv, .jsonl or .json file", "inputs")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SpreadError(f"{filename} is not UTF-8 text (byte {e.start}); save it as UTF-8", "inputs") from None
    if not text.strip():
        raise SpreadError(f"{filename} is empty", "inputs")
    rows = {"csv": _csv, "jsonl": _jsonl, "json": _json}[fmt](text, filename)
    return checked(rows, filename)


def parse_pasted(text: str) -> list[dict[str, str]]:
    """Text pasted into the Playground: JSON or JSON Lines when it starts with { or [, else CSV."""
    stripped = (text or "").lstrip()
    if not stripped:
        return []
    if stripped.startswith("["):
        return parse(text.encode(), "pasted.json")
    return parse(text.encode(), "pasted.jsonl" if stripped.startswith("{") else "pasted.csv")


def _csv(text: str, filename: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
        names = [name.strip() for name in header]
        if not all(names):
            raise SpreadError(f"{filename} line 1: every column needs a name in the header", "inputs")
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise SpreadError(f"{filename} line 1: the column {twice!r} appears twice", "inputs")
        rows = []
        for fields in reader:
            if not fields:
                continue  # a blank line
            if len(fields) != len(names):
                raise SpreadError(f"{filename} line {reader.line_num}: {len(fields)} fields, but the header has "
                                  f"{len(names)}", "inputs")
            rows.append(dict(zip(names, fields)))
    except csv.Error as e:
        raise SpreadError(f"{filename} line {reader.line_num}: not valid CSV ({e})", "inputs") from None
    if not rows:
        raise SpreadError(f"{filename} has a header but no rows", "inputs")
    return rows


def _jsonl(text: str, filename: str) -> list[dict[str, str]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise SpreadError(f"{filename} line {number}: not valid JSON ({e.msg})", "inputs") from None
        where = f"{filename} line {number}"
        rows.append(_chat_record(record, where) if _is_chat(record) else _record(record, where))
    return rows


def _is_chat(record) -> bool:
    return isinstance(record, dict) and isinstance(record.get("messages"), list)


def _chat_record(record: dict, where: str) -> dict[str, str]:
    """One chat example: its conversation (without a final assistant answer) as JSON, that
    answer as the reference, and its other fields as columns."""
    from core.prompts import conversation

    try:
        messages = conversation.checked(record["messages"], where)
    except SpreadError as e:
        raise SpreadError(str(e), "inputs") from None
    history, reference = conversation.split_reference(messages)
    row = _record({k: v for k, v in record.items() if k != "messages"}, where)
    row["messages"] = json.dumps(history, ensure_ascii=False)
    if reference is not None:
        row.setdefault("reference", reference)
    return row


def _json(text: str, filename: str) -> list[dict[str, str]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpreadError(f"{filename}: not valid JSON ({e.msg}, line {e.lineno})", "inputs") from None
    if isinstance(data, dict) and isinstance(data.get("inputs"), list):
        data = data["inputs"]
    if not isinstance(data, list):
        raise SpreadError(f"{filename}: expected a JSON list of objects (one per input)", "inputs")
    return [_record(record, f"{filename} item {number}") for number, record in enumerate(data, start=1)]


def _record(record, where: str) -> dict[str, str]:
    if not isinstance(record, dict):
        raise SpreadError(f"{where}: expected an object of variable names and values", "inputs")
    return {str(name).strip(): as_text(value) for name, value in record.items()}


def as_text(value) -> str:
    """A variable's value as the text a prompt receives: numbers as written, nested data as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def checked(rows: list[dict[str, str]], where: str = "inputs") -> list[dict[str, str]]:
    """The limits every table of inputs must meet, whatever its source."""
    if len(rows) > MAX_INPUTS:
        raise SpreadError(f"{where}: {len(rows):,} inputs, more than the limit of {MAX_INPUTS:,}", "inputs")
    for number, row in enumerate(rows, start=1):
        for name, value in row.items():
            if not name:
                raise SpreadError(f"{where}: input {number} has a variable without a name", "inputs")
            check_text(name, f"{where}: input {number}'s variable name", "inputs")
            check_text(value, f"{where}: input {number}'s {name!r}", "inputs")
            if len(value) > MAX_VALUE_CHARS:
                raise SpreadError(f"{where}: input {number}'s {name!r} is longer than {MAX_VALUE_CHARS:,} "
                                  "characters", "inputs")
    return rows


def from_pairs(pairs: list[str]) -> dict[str, str]:
    """`--var NAME=VALUE` pairs as one input."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SpreadError(f"--var {pair!r}: write it as NAME=VALUE", "inputs")
        values[name.strip()] = value
    return values


def from_table(records: list[dict]) -> list[dict[str, str]]:
    """Rows typed into the Playground's table: blank rows dropped, blank cells kept as ""."""
    rows = []
    for record in records:
        row = {str(k).strip(): as_text(v) for k, v in record.items() if str(k).strip()}
        if any(value.strip() for value in row.values()):
            rows.append(row)
    return checked(rows, "the inputs table")


def from_run(store: Store, run_id: int) -> list[dict[str, str]]:
    """The inputs an earlier run sampled."""
    with store.connection() as db:
        if runs.get_run(db, run_id) is None:
            raise SpreadError(f"no run with id {run_id}", "inputs")
        return [row["vars"] for row in runs.run_inputs(db, run_id)]


def label(index: int, values: dict | None, limit: int = 60) -> str:
    """How an input is named everywhere: its number from 1 and its variables,
    `#2 country=France`. Plain text (callers escape it where markdown renders)."""
    shown = ", ".join(f"{k}={' '.join(str(v).split())}" for k, v in (values or {}).items()
                      if k not in HIDDEN_COLUMNS)
    if len(shown) > limit:
        shown = shown[:limit] + "…"
    return f"#{index + 1} {shown}".strip()


# Bookkeeping columns an input may carry (a golden item's key and reference): not its name.
HIDDEN_COLUMNS = {"item_key", "reference"}


def columns(rows: list[dict[str, str]]) -> list[str]:
    """Every variable name in a table, in order of first appearance."""
    return list(dict.fromkeys(name for row in rows for name in row))
