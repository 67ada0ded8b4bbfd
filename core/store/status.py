"""What a page says when the database fails, and what the server log says about it.

A database that is unreachable, refuses the login or is named by a bad URL is a state of
the server, not a bug of the page: the page shows one line for it (never a traceback,
never a password) and tries again every RETRY_S seconds; the log gets one line when the
state changes, not one per rerun of every open page.
"""

from __future__ import annotations

import sqlite3
import sys
import threading

from core import config
from core.store.database import LoginRefused, Store, unreachable

RETRY_S = 5

_last: str | None = None
_last_lock = threading.Lock()


def problem(error: BaseException) -> str | None:
    """The one line for a database failure, or None when `error` is not one."""
    if isinstance(error, config.InvalidDatabase):
        return f"SPREAD_DB is not a valid database URL: {error.reason}"
    if isinstance(error, LoginRefused):
        return (f"The database at {error.where} refused the login for user {error.user or '(none given)'}; "
                f"check the user and password in SPREAD_DB (retrying every {RETRY_S} s)")
    if isinstance(error, sqlite3.OperationalError) and unreachable(error):
        return f"The database file {_where()} is locked by another writer; retrying every {RETRY_S} s"
    if unreachable(error):
        return f"The database at {getattr(error, 'where', '') or _where()} is unreachable; retrying every {RETRY_S} s"
    return None


def retrying(error: BaseException) -> bool:
    """Whether waiting may fix it (a server coming back, a password changed on the server):
    a bad SPREAD_DB needs a restart with another value."""
    return not isinstance(error, config.InvalidDatabase)


def _where() -> str:
    try:
        target = config.db_path()
    except config.SpreadError:
        return "SPREAD_DB"
    return config.server(target) if config.is_url(target) else str(target)


def note(message: str | None) -> None:
    """Log `message` (None: the database answers) once per change of state, for this process."""
    global _last
    with _last_lock:
        if message == _last:
            return
        before, _last = _last, message
    if message is not None:
        print(f"spread: database: {message}", file=sys.stderr, flush=True)
    elif before is not None:
        print("spread: database: reachable again", file=sys.stderr, flush=True)


def reachable(store: Store | None) -> bool:
    """Whether the database answers now (for a page waiting to try again); None: the
    database could not even be named (a bad SPREAD_DB), so it cannot answer."""
    try:
        with (store or Store()).connection() as db:
            db.execute("select 1")
    except Exception as error:
        if problem(error) is None:
            raise
        note(problem(error))
        return False
    return True
