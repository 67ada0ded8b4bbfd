"""PostgreSQL behind the same small API the code uses on SQLite.

Spread's queries are written once, in the SQL both engines accept, against sqlite-utils'
`Database` (`execute`, `query`, `db["table"].insert(...)`, `create`, `add_column`, …).
`PostgresDatabase` offers that API over a psycopg 3 connection, so every query, every
migration and `sqlite_utils.Migrations` itself run unchanged on a team's PostgreSQL:
- `?` placeholders become psycopg's `%s` (and a literal `%` becomes `%%`);
- `db["t"].create(...)` writes PostgreSQL types (an `int` primary key `id` is an identity
  column), with sqlite-utils' index names, so both engines end with the same schema;
- numeric results (PostgreSQL's `sum` of integers) come back as int or float, not Decimal.
Connections run in autocommit; `transaction()` (used by `store.write`) makes a unit of
work one transaction. Connections are pooled (`open_pool`, one pool per Store): opening one
costs milliseconds that a page pays many times per rerun.
"""

from __future__ import annotations

import functools
import logging
import re
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

import psycopg
from psycopg.adapt import Loader
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout  # noqa: F401 (what Store catches)

# The pool logs every failed connection attempt, with libpq's text; Spread says an outage
# once, in one line without secrets (core/store/status.py), so the pool stays quiet.
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)

TYPES = {int: "bigint", str: "text", float: "double precision", bytes: "bytea", bool: "bigint"}


class _NumberLoader(Loader):
    """`numeric` as SQLite would give it: int when whole (a sum of counts), else float."""

    def load(self, data):
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else float(text)


@functools.lru_cache(maxsize=4096)
def to_psycopg(sql: str) -> str:
    """`?` outside quotes becomes `%s`; every `%` is doubled, as psycopg reads them as
    placeholders once parameters are given."""
    parts = re.split(r"('(?:[^']|'')*'|\"[^\"]*\")", sql)
    out = []
    for k, part in enumerate(parts):
        part = part.replace("%", "%%")
        out.append(part if k % 2 else part.replace("?", "%s"))
    return "".join(out)


def _configure(conn: psycopg.Connection) -> None:
    """Once per new connection: numbers as SQLite gives them, and the set of COPY staging
    tables made on it (temporary tables live as long as the connection)."""
    conn.adapters.register_loader("numeric", _NumberLoader)
    conn.staging_tables = set()


def open_pool(url: str, *, max_size: int, connect_timeout: float) -> ConnectionPool:
    """A bounded pool of autocommit connections to `url`, each checked before it is handed
    out (the server may have restarted since it was last used)."""
    return ConnectionPool(url, min_size=0, max_size=max_size, open=True, configure=_configure,
                          check=ConnectionPool.check_connection, max_idle=300, reconnect_timeout=0,
                          kwargs={"autocommit": True, "connect_timeout": connect_timeout})


class _Connection:
    """What the code reaches through `db.conn`: executemany, commit, rollback."""

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw

    def executemany(self, sql: str, rows: Iterable) -> None:
        rows = list(rows)
        if rows:
            with self.raw.cursor() as cursor:
                cursor.executemany(to_psycopg(sql), rows)

    def commit(self) -> None:  # autocommit: a statement outside transaction() is committed
        pass

    def rollback(self) -> None:
        pass


class PostgresDatabase:
    engine = "postgresql"

    def __init__(self, raw: psycopg.Connection):
        self.raw = raw
        self.conn = _Connection(raw)

    def execute(self, sql: str, params: Iterable | None = None) -> psycopg.Cursor:
        cursor = self.raw.cursor()
        return cursor.execute(to_psycopg(sql), list(params)) if params else cursor.execute(sql)

    def query(self, sql: str, params: Iterable | None = None) -> Iterator[dict]:
        with self.raw.cursor(row_factory=dict_row) as cursor:
            cursor.execute(to_psycopg(sql), list(params)) if params else cursor.execute(sql)
            yield from cursor.fetchall() if cursor.description else []

    def copy_insert(self, table: str, columns: tuple[str, ...], rows: list[list], on_conflict: str = "") -> None:
        """Rows through COPY into this connection's staging table, then into `table` with the
        caller's `on conflict` clause (which COPY itself cannot apply), in one transaction."""
        if self.raw.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            with self.transaction():
                return self.copy_insert(table, columns, rows, on_conflict)
        staging = _quote(f"incoming_{table}")
        names = ", ".join(map(_quote, columns))
        with self.raw.cursor() as cursor:
            if staging not in self.raw.staging_tables:
                cursor.execute(f"create temp table if not exists {staging} on commit delete rows as "
                               f"select * from {_quote(table)} with no data")
                self.raw.staging_tables.add(staging)
            with cursor.copy(f"copy {staging} ({names}) from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
            cursor.execute(f"insert into {_quote(table)} ({names}) select {names} from {staging} {on_conflict}")
            cursor.execute(f"delete from {staging}")  # a second batch in this transaction starts empty

    @contextmanager
    def transaction(self) -> Iterator["PostgresDatabase"]:
        with self.raw.transaction():
            yield self

    atomic = transaction  # the name sqlite_utils.Migrations uses

    def __getitem__(self, name: str) -> "PostgresTable":
        return PostgresTable(self, name)

    def table_names(self) -> list[str]:
        return [row[0] for row in self.execute(
            "select table_name from information_schema.tables where table_schema = current_schema() "
            "order by table_name").fetchall()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresTable:
    def __init__(self, db: PostgresDatabase, name: str):
        self.db, self.name, self.last_pk = db, name, None

    # --- schema --------------------------------------------------------------------

    def exists(self) -> bool:
        return self.name in self.db.table_names()

    @property
    def columns_dict(self) -> dict[str, type]:
        back = {"bigint": int, "integer": int, "text": str, "double precision": float, "bytea": bytes}
        return {name: back.get(kind, str) for name, kind in self.db.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = current_schema() and table_name = ? order by ordinal_position",
            [self.name]).fetchall()}

    @property
    def pks(self) -> list[str]:
        return [row[0] for row in self.db.execute(
            "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
            "and a.attnum = any(i.indkey) where i.indrelid = ?::regclass and i.indisprimary "
            "order by array_position(i.indkey::int2[], a.attnum)",
            [self.name]).fetchall()]

    def create(self, columns: dict[str, type], pk: str | tuple | None = None, foreign_keys=(),
               not_null: Iterable[str] = ()) -> "PostgresTable":
        references = {column: (table, other) for column, table, other in foreign_keys}
        lines = []
        for column, kind in columns.items():
            line = f"{_quote(column)} {TYPES[kind]}"
            if column == pk and kind is int:
                line += " generated by default as identity"
            if column in not_null:
                line += " not null"
            if column in references:
                table, other = references[column]
                line += f" references {_quote(table)}({_quote(other)})"
            lines.append(line)
        keys = [pk] if isinstance(pk, str) else list(pk or [])
        if keys:
            lines.append(f"primary key ({', '.join(map(_quote, keys))})")
        self.db.execute(f"create table {_quote(self.name)} ({', '.join(lines)})")
        return self

    def add_column(self, name: str, kind: type, not_null_default=None) -> "PostgresTable":
        sql = f"alter table {_quote(self.name)} add column {_quote(name)} {TYPES[kind]}"
        if not_null_default is not None:
            sql += f" not null default {_literal(not_null_default)}"
        self.db.execute(sql)
        return self

    def create_index(self, columns: list[str], unique: bool = False, index_name: str | None = None,
                     if_not_exists: bool = False) -> "PostgresTable":
        name = index_name or f"idx_{self.name.replace(' ', '_')}_{'_'.join(columns)}"
        self.db.execute(f"create {'unique ' if unique else ''}index {'if not exists ' if if_not_exists else ''}"
                        f"{_quote(name)} on {_quote(self.name)} ({', '.join(map(_quote, columns))})")
        return self

    # --- rows ----------------------------------------------------------------------

    @property
    def count(self) -> int:
        return self.db.execute(f"select count(*) from {_quote(self.name)}").fetchone()[0]

    def rows_where(self, where: str | None = None, where_args: Iterable = (), order_by: str | None = None
                   ) -> Iterator[dict]:
        sql = f"select * from {_quote(self.name)}"
        if where:
            sql += f" where {where}"
        if order_by:  # SQLite's insertion order (rowid) is the identity column's here
            sql += f" order by {'id' if order_by == 'rowid' else order_by}"
        return self.db.query(sql, list(where_args))

    def insert(self, row: dict, pk=None, replace: bool = False, ignore: bool = False) -> "PostgresTable":
        """sqlite-utils' insert, with the options Spread uses; any other is a TypeError, not
        silently ignored. `pk` names the key sqlite-utils would use: here the table's own."""
        columns = list(row)
        sql = (f"insert into {_quote(self.name)} ({', '.join(map(_quote, columns))}) "
               f"values ({', '.join(['%s'] * len(columns))})")
        keys = self.pks
        if replace or ignore:
            updates = [c for c in columns if c not in keys]
            sql += f" on conflict ({', '.join(map(_quote, keys))}) do " + (
                "update set " + ", ".join(f"{_quote(c)} = excluded.{_quote(c)}" for c in updates)
                if replace and updates else "nothing")
        if keys == ["id"]:
            sql += " returning id"
        with self.db.raw.cursor() as cursor:
            cursor.execute(sql, [row[c] for c in columns])
            found = cursor.fetchone() if keys == ["id"] else None
        self.last_pk = found[0] if found else (row.get(keys[0]) if len(keys) == 1 else tuple(row.get(k) for k in keys))
        return self

    def insert_all(self, rows: Iterable[dict]) -> "PostgresTable":
        rows = list(rows)
        if not rows:
            return self
        columns = list(rows[0])
        sql = (f"insert into {_quote(self.name)} ({', '.join(map(_quote, columns))}) "
               f"values ({', '.join(['%s'] * len(columns))})")
        with self.db.raw.cursor() as cursor:
            cursor.executemany(sql, [[row.get(c) for c in columns] for row in rows])
        return self

    def upsert(self, row: dict, pk=None) -> "PostgresTable":
        return self.insert(row, replace=True)

    def update(self, pk_value, updates: dict) -> "PostgresTable":
        keys = self.pks
        values = pk_value if isinstance(pk_value, (list, tuple)) else [pk_value]
        self.db.raw.execute(
            f"update {_quote(self.name)} set {', '.join(f'{_quote(c)} = %s' for c in updates)} "
            f"where {' and '.join(f'{_quote(k)} = %s' for k in keys)}", [*updates.values(), *values])
        self.last_pk = pk_value
        return self


def _literal(value: Any) -> str:
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"
