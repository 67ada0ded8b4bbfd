"""`Store`: one database, a SQLite file or a team's PostgreSQL, chosen by what names it.

Everything that reads or writes takes the Store and asks it for a connection for one unit
of work (`connection()`) or for one logical change (`transaction()`). Nothing else opens
a connection, so the rules below hold everywhere:
- SQLite: a new connection per unit of work (sqlite3 connections refuse other threads),
  WAL and a busy timeout on each; a write that reads first holds the write lock from its
  start (BEGIN IMMEDIATE), as a deferred BEGIN that reads then writes fails at once when
  another writer holds the lock.
- PostgreSQL: a bounded `psycopg_pool.ConnectionPool` per Store, each connection checked
  before it is handed out (the server may have restarted meanwhile); autocommit outside
  `transaction()`.
- Migrations run once per Store, on its first connection, under a lock that makes two
  processes opening a new database at once take turns.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core import config
from core.store.schema import Database, migrate_postgres, migrate_sqlite

BUSY_TIMEOUT_MS = 30_000
# Connections one process may hold on a PostgreSQL server: the fan-out's writer, the
# workers' heartbeats and every page session's unit of work share them.
POOL_MAX = int(os.environ.get("SPREAD_DB_POOL", "20"))
# How long a unit of work waits for a pooled connection before the outage is diagnosed
# with one direct attempt (a pool that cannot connect would otherwise wait its whole timeout).
POOL_WAIT_S = 3.0
CONNECT_TIMEOUT_S = 10


class Unreachable(config.SpreadError):
    """The PostgreSQL server could not be reached (stopped, restarting, refusing connections).
    `where` is its HOST:PORT, `user` the user the URL logs in as: what a page may show."""

    def __init__(self, message: str, *, where: str = "", user: str = ""):
        super().__init__(message)
        self.where, self.user = where, user


class LoginRefused(config.SpreadError):
    """The PostgreSQL server refused the login (a wrong password, an unknown user): waiting
    does not fix it, the URL does."""

    def __init__(self, message: str, *, where: str = "", user: str = ""):
        super().__init__(message)
        self.where, self.user = where, user


def unreachable(error: BaseException) -> bool:
    """An error that says the database cannot be reached for now (a PostgreSQL server
    stopping or restarting, a dropped connection, a SQLite file locked past the busy
    timeout): the work is worth retrying, not abandoning."""
    if isinstance(error, Unreachable):
        return True
    if isinstance(error, sqlite3.OperationalError):
        return "locked" in str(error)
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(error, psycopg.OperationalError)


class Store:
    """The database `target` names: a SQLite file path, or a `postgresql://` URL (read the
    one strict way `config.database` reads it); by default `SPREAD_DB`, else
    data/spread.db. Cheap to make; the PostgreSQL pool opens on first use."""

    def __init__(self, target: str | Path | None = None):
        self.target = config.database(target) if target else config.db_path()
        self.engine = "postgresql" if config.is_url(self.target) else "sqlite"
        self._pool = None
        self._pool_lock = threading.Lock()  # a server's page threads and its worker open it at once
        self._migrated = False

    def __repr__(self) -> str:
        return f"Store({self.shown!r})"

    @property
    def shown(self) -> str:
        """The database as a page or a log may name it: no user, no password."""
        return config.shown(self.target) if self.engine == "postgresql" else str(self.target)

    @property
    def is_postgres(self) -> bool:
        return self.engine == "postgresql"

    @property
    def exists(self) -> bool:
        """Whether there is a database to read (a URL's is the server's: assumed so)."""
        return config.db_exists(self.target)

    @property
    def absolute(self) -> str:
        """The database as another process (a worker, a run's own process) must name it."""
        return config.absolute(self.target)

    # --- units of work ---------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[Database]:
        """One connection for one unit of work; statements outside `transaction()` commit
        one by one."""
        if self.is_postgres:
            with self._postgres() as db:
                yield db
        else:
            with self._sqlite() as db:
                yield db

    @contextmanager
    def transaction(self, *, lock: str | None = None) -> Iterator[Database]:
        """One logical change as one transaction, holding the write lock from the start.
        `lock` names what two writers that read then write must take turns on (a reviewer's
        label, a golden set): SQLite's BEGIN IMMEDIATE already holds the whole file,
        PostgreSQL takes a transaction-scoped advisory lock on the name."""
        with self.connection() as db, write(db):
            if lock is not None:
                hold(db, lock)
            yield db

    def close(self) -> None:
        """Close the pooled connections (PostgreSQL); a later unit of work opens a new pool.
        A connection still out goes back to the pool it came from, which closes it."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    # --- engines ---------------------------------------------------------------------

    @contextmanager
    def _sqlite(self) -> Iterator[Database]:
        path = Path(self.target)
        if path.is_dir():
            raise config.SpreadError(f"database path {path} is a folder, not a file")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as e:
            raise config.SpreadError(f"cannot open database {path}: {e}") from None
        db = Database(conn)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA foreign_keys = ON")
            if not self._migrated:
                migrate_sqlite(db, lambda: write(db))
                self._migrated = True
            yield db
        except sqlite3.DatabaseError as e:
            if "file is not a database" in str(e):
                raise config.SpreadError(f"{path} is not a SQLite database") from None
            raise
        finally:
            conn.close()

    @contextmanager
    def _postgres(self) -> Iterator[Database]:
        from core.store import postgres

        with self._pool_lock:  # one pool per Store, however many threads ask first
            if self._pool is None:
                self._pool = postgres.open_pool(self.target, max_size=POOL_MAX, connect_timeout=CONNECT_TIMEOUT_S)
            pool = self._pool
        try:
            raw = pool.getconn(timeout=POOL_WAIT_S)
        except postgres.PoolTimeout:
            raise self._diagnose() from None
        db = postgres.PostgresDatabase(raw)
        try:
            if not self._migrated:
                migrate_postgres(db)
                self._migrated = True
            yield db
        finally:
            pool.putconn(raw)  # to the pool it came from, even if the Store was closed meanwhile

    def _diagnose(self) -> config.SpreadError:
        """Why no pooled connection came: one direct attempt says whether the server is
        unreachable or refuses the login; if it connects, the pool is full."""
        from core.store import postgres

        try:
            postgres.psycopg.connect(self.target, connect_timeout=CONNECT_TIMEOUT_S).close()
        except postgres.psycopg.Error as e:
            return opening_failed(e, self.target)
        return Unreachable(f"cannot open database {self.shown}: all {POOL_MAX} pooled connections stayed busy "
                           f"for {POOL_WAIT_S:g} s (SPREAD_DB_POOL sets how many)",
                           where=config.server(self.target), user=config.user(self.target))


@contextmanager
def write(db: Database) -> Iterator[Database]:
    """One logical change as one transaction, holding the write lock from the start
    (on PostgreSQL a plain transaction: row locks, unique keys and `hold()` do that work)."""
    if is_postgres(db):
        with db.transaction():
            yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.conn.rollback()
        raise
    else:
        db.conn.commit()


def hold(db: Database, name: str) -> None:
    """Inside a transaction: hold `name` until it ends (see `Store.transaction`)."""
    if is_postgres(db):
        db.execute("select pg_advisory_xact_lock(hashtext(?))", [name])


def is_postgres(db) -> bool:
    return getattr(db, "engine", "sqlite") == "postgresql"


@contextmanager
def commits_without_waiting_for_disk(db: Database) -> Iterator[Database]:
    """For this connection, while inside: a commit returns once the database has it, before
    it is on disk (an operating-system crash, not a killed process, can take the last back)."""
    db.execute("set synchronous_commit = off" if is_postgres(db) else "PRAGMA synchronous = NORMAL")
    try:
        yield db
    finally:
        if is_postgres(db):  # the connection goes back to the pool: labels keep full syncs
            db.execute("reset synchronous_commit")


def _first_line(error: Exception, url: str | None = None) -> str:
    """An error's first line, scrubbed of the database's secrets (libpq quotes URLs,
    conninfo strings and the token it could not parse)."""
    return config.scrub((str(error).strip().splitlines() or [type(error).__name__])[0], url)


# libpq's words for a login the server refused (no SQLSTATE is given before a session exists).
_LOGIN_REFUSED = ("authentication failed", "no password supplied", "pg_hba.conf", "password is required",
                  "not permitted to log in")


def opening_failed(error: Exception, url: str) -> config.SpreadError:
    """What a failed PostgreSQL connection means, as one line without secrets: the server is
    unreachable (worth retrying), it refused the login, or the URL cannot be read."""
    why = _first_line(error, url)
    message = f"cannot open database {config.shown(url)}: {why}"
    where, who = config.server(url), config.user(url)
    if any(words in why for words in _LOGIN_REFUSED) or ('role "' in why and "does not exist" in why):
        return LoginRefused(message, where=where, user=who)
    if "connection option" in why or "URI" in why or "connection info string" in why:
        return config.InvalidDatabase(config.shown(url), why)
    if "does not exist" in why:  # the database named: a fix for the operator, not a wait
        return config.SpreadError(message)
    psycopg = sys.modules.get("psycopg")
    if psycopg is not None and isinstance(error, psycopg.OperationalError):
        return Unreachable(message, where=where, user=who)
    return config.SpreadError(message)
