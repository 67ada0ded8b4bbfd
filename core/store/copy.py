"""Copy a whole Spread database to another, on either engine (`spread db copy`).

Every table of the schema moves with its ids, so every reference (an answer's run, a
label's answer, a golden item's source) still holds. The schema is the one the
migrations build, read once from an in-memory SQLite database: tables, columns and the
order foreign keys impose. The target is migrated first and filled in one transaction,
so a copy that fails (or whose row counts do not match) leaves nothing behind; the
source is read in one snapshot, so an app writing to it meanwhile cannot tear the copy.
"""

from __future__ import annotations

import functools
import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from core import config
from core.config import SpreadError
from core.store.database import Store, is_postgres, write
from core.store.responses import insert_rows
from core.store.schema import Database, migrations

BATCH = 5_000  # rows per read and per insert: a 10,000-answer run is two round trips per table


@functools.cache
def tables() -> dict[str, list[str]]:
    """table -> columns, as the migrations build them, in their order (a parent before its children)."""
    db = Database(memory=True)
    migrations.apply(db)
    names = [t for t in db.table_names() if not t.startswith(("_", "sqlite_"))]  # not the migrations' own
    parents = {t: {fk.other_table for fk in db[t].foreign_keys} - {t} for t in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ordered.append(next(t for t in names if t not in ordered and parents[t] <= set(ordered)))
    return {t: list(db[t].columns_dict) for t in ordered}


def copy(source: str, target: str, *, force: bool = False) -> dict[str, int]:
    """Copy every table from `source` to `target` (each a SQLite path or a URL); returns
    the rows copied per table. Refuses a target that holds rows unless `force`, which
    replaces them. A misspelt URL is refused before anything is read or created."""
    source, target = (config.absolute(config.database(value, what))
                      for value, what in ((source, "source"), (target, "target")))
    if _same(source, target):
        raise SpreadError("source and target are the same database")
    if not config.is_url(source) and not Path(source).is_file():
        raise SpreadError(f"no database at {source}")
    if not force and (holding := _rows_held(target)):
        table, rows = holding
        raise SpreadError(f"target {config.shown(target)} is not empty ({table}: {rows} rows); "
                          "pass --force to replace what it holds")
    schema = tables()
    with Store(source).connection() as src, Store(target).connection() as dst, _snapshot(src):
        counts = {table: _count(src, table) for table in schema}
        with write(dst):
            if force:
                for table in reversed(schema):
                    dst.execute(f"delete from {table}")
            for table, columns in schema.items():
                _copy_table(src, dst, table, columns)
            copied = {table: _count(dst, table) for table in schema}
            if copied != counts:  # raising rolls the target back
                wrong = next(t for t in schema if copied[t] != counts[t])
                raise SpreadError(f"copy of {wrong} holds {copied[wrong]} rows, not {counts[wrong]}: nothing written")
            if is_postgres(dst):  # new rows get ids after the copied ones
                _move_id_counters(dst, [t for t, columns in schema.items() if "id" in columns])
    return counts


def _copy_table(src, dst, table: str, columns: list[str]) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    try:
        with closing(_batches(src, f"select {names} from {table}")) as batches:
            if not is_postgres(dst):
                for rows in batches:
                    insert_rows(dst, table, tuple(columns), rows)
                return
            # The target is empty: COPY straight into the table, one stream (no staging table
            # and conflict rule, as insert_rows needs for answers).
            with dst.raw.cursor() as out, out.copy(f"copy {table} ({names}) from stdin") as stream:
                for rows in batches:
                    for row in rows:
                        stream.write_row(row)
    except Exception as e:  # a value the target refuses: say where, roll back
        raise SpreadError(f"cannot copy {table}: {' '.join(str(e).split())}") from None


def _batches(db, sql: str) -> Iterator[list[tuple]]:
    """A query's rows, BATCH at a time; from PostgreSQL through a server-side cursor, so a
    large table is never held in memory whole."""
    if is_postgres(db):
        with db.raw.cursor(name="spread_copy") as cursor:
            cursor.execute(sql)
            while rows := cursor.fetchmany(BATCH):
                yield rows
        return
    cursor = db.execute(sql)
    while rows := cursor.fetchmany(BATCH):
        yield rows


def _count(db, table: str) -> int:
    return db.execute(f"select count(*) from {table}").fetchone()[0]


@contextmanager
def _snapshot(db) -> Iterator[None]:
    """Read the whole source as of one moment."""
    db.execute("begin isolation level repeatable read read only" if is_postgres(db) else "begin")
    try:
        yield
    finally:
        db.execute("rollback")


def _rows_held(target: str) -> tuple[str, int] | None:
    """The first table of the schema holding rows in `target`, read without migrating or
    creating it: a refused copy writes nothing."""
    if config.is_url(target):
        import psycopg

        try:
            with psycopg.connect(target, connect_timeout=10) as conn:
                return _first_holding(conn, "select table_name from information_schema.tables "
                                            "where table_schema = current_schema()")
        except psycopg.Error as e:
            raise SpreadError(f"cannot read {config.shown(target)}: {config.scrub(' '.join(str(e).split()), target)}"
                              ) from None
    if not Path(target).is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{Path(target).resolve()}?mode=ro", uri=True)
        try:
            return _first_holding(conn, "select name from sqlite_master where type = 'table'")
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise SpreadError(f"cannot read {target}: {e}") from None


def _first_holding(conn, tables_sql: str) -> tuple[str, int] | None:
    present = {row[0] for row in conn.execute(tables_sql)}
    for table in tables():
        if table in present and (rows := conn.execute(f"select count(*) from {table}").fetchone()[0]):
            return table, rows
    return None


def _same(source: str, target: str) -> bool:
    if config.is_url(source) or config.is_url(target):
        return source == target
    return Path(source).resolve() == Path(target).resolve()


def _move_id_counters(db, tables: list[str]) -> None:
    for table in tables:
        db.execute(f"select setval(pg_get_serial_sequence('{table}', 'id'), coalesce(max(id), 0) + 1, false) "
                   f"from {table}")

