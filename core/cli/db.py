"""The database itself: `spread db copy`."""

from __future__ import annotations

import click

from core.cli.common import json_option, print_json


@click.group("db")
def db_group():
    """The database itself: copy it to another engine."""


@db_group.command("copy")
@click.argument("source")
@click.argument("target")
@click.option("--force", is_flag=True,
              help="replace what the target holds (its rows are deleted in the copy's transaction)")
@json_option
def copy_command(source, target, force, as_json):
    """Copy every table from SOURCE to TARGET (each a SQLite file or a postgresql:// URL),
    ids kept, then check the row counts per table. The target is migrated first and
    written in one transaction; a target holding rows is refused unless --force."""
    from core import config
    from core.store import copy as store_copy

    counts = store_copy.copy(source, target, force=force)
    if as_json:
        print_json({"source": config.shown(source), "target": config.shown(target), "tables": counts,
                    "rows": sum(counts.values())})
        return
    print(f"copied {config.shown(source)} to {config.shown(target)} (row counts checked):")
    width = max(map(len, counts))
    for table, rows in counts.items():
        print(f"  {table:<{width}} {rows:>10,}")
    print(f"  {'total':<{width}} {sum(counts.values()):>10,} rows in {len(counts)} tables")


COMMANDS = [db_group]
