"""Leases on runs: which worker samples a run, until when, and taking over a dead one's.

A run is a row that workers claim. The worker sampling a run holds its lease
(`runs.lease_owner`, `runs.lease_expires_at`, migration m015) and renews it at every
heartbeat (core/run/runner.py). A worker that dies stops renewing; once its lease has
expired, any other worker (`spread worker`, one per app server: core/execution/service.py)
claims the run and samples the cells still missing. The unique key of `responses`
makes a duplicate impossible whoever writes last.

On PostgreSQL a worker looking for work reads with FOR UPDATE SKIP LOCKED: workers
polling at once never wait on, nor take, the same row. On SQLite the claim is one
BEGIN IMMEDIATE transaction (one writer at a time). Times are the database's clock,
so servers whose clocks differ agree on when a lease ends.
"""

from __future__ import annotations

import os
import secrets
import socket
import time

from core.config import SpreadError
from core.store import runs
from core.store.clock import now_iso
from core.store.database import is_postgres, write

LEASE_ENV = "SPREAD_LEASE_S"
# Long enough to ride out a database restart (the worker keeps its run), short enough
# that a dead server's run is taken over within half a minute.
DEFAULT_LEASE_S = 30.0
# When a worker's process stops (SIGTERM: a redeploy, `docker stop`), the calls in flight
# get this long to end before they are dropped; then what arrived is committed and the run
# handed back. With the commit and the hand-back the process is gone within about 8 s,
# inside Docker's default stop grace of 10 s.
STOP_WAIT_S = 6.0
# Statuses of a run someone is (or was, if the lease expired) sampling.
HELD = ("pending", "running", "cancelling")


def lease_s() -> float:
    """The lease length in seconds, from SPREAD_LEASE_S (default 30)."""
    text = os.environ.get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_S
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value >= 1:  # also refuses nan
        raise SpreadError(f"{LEASE_ENV} must be a number of seconds, at least 1 (got {text!r})")
    return value


def heartbeat_s() -> float:
    """How often a worker renews its lease: often enough that two missed beats never lose it."""
    return min(2.0, lease_s() / 3)


def new_owner() -> str:
    """An owner for one claim: host:pid (as `runs.worker`) and a token, unique per claim."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _process_of(owner: str) -> str:
    return owner.rsplit(":", 1)[0]


def carried_by_workers(db) -> bool:
    """Whether the app leaves its runs to workers (PostgreSQL: any server's worker claims
    them) rather than sampling them itself (SQLite: one server owns the file, so its own
    background loop samples them)."""
    return is_postgres(db)


def db_now(db) -> float:
    """Seconds since the epoch on the database's clock."""
    sql = ("select extract(epoch from clock_timestamp())" if is_postgres(db)
           else "select (julianday('now') - 2440587.5) * 86400.0")
    return float(db.execute(sql).fetchone()[0])


def claim(db, run_id: int, owner: str) -> dict:
    """Take one run's lease for `owner` (the engine, before it samples the run). Returns the
    run's status before the claim and its queued `retry_errors`. Refuses (SpreadError) a
    run whose lease another live worker holds; a lease whose process is gone from this
    host is taken at once, without waiting for it to expire."""
    with write(db):
        row = db.execute("select status, lease_owner, lease_expires_at, retry_errors from runs where id = ?"
                         + (" for update" if is_postgres(db) else ""), [run_id]).fetchone()
        if row is None:
            raise SpreadError(f"no run with id {run_id}")
        status, holder, expires, retry_errors = row
        now = db_now(db)
        if holder not in (None, owner) and (expires or 0) > now and not runs._worker_is_dead(_process_of(holder)):
            raise _busy(run_id, holder, expires - now)
        _take(db, run_id, owner, now, "cancelling" if status == "cancelling" else "running")
    return {"status": status, "retry_errors": bool(retry_errors)}


def claim_next(db, owner: str) -> tuple[int, bool] | None:
    """Claim one run for a worker: a queued run, or one whose worker died: its lease has
    expired, or its holder's process is gone from this host (the test `spread runs` uses
    to show a run interrupted), which needs no wait. Returns (run id, retry errors), or
    None when there is nothing to do. A run whose worker died while cancelling it is
    marked cancelled here, not sampled."""
    while True:
        with write(db):
            now = db_now(db)
            row = db.execute(
                "select id, status, retry_errors from runs "
                "where (status = 'queued' and coalesce(lease_expires_at, 0) < ?) "
                f"or (status in ({', '.join('?' * len(HELD))}) and lease_expires_at < ?) order by id limit 1"
                + _skip_locked(db), [now, *HELD, now]).fetchone() or _orphaned(db, now)
            if row is None:
                return None
            run_id, status, retry_errors = row
            if status != "cancelling":
                _take(db, run_id, owner, now, "running")
                return run_id, bool(retry_errors)
            _end(db, run_id, "cancelled")


def _skip_locked(db) -> str:
    return " for update skip locked" if is_postgres(db) else ""


def _orphaned(db, now: float) -> tuple | None:
    """A run whose lease has not expired but whose holder's process is gone from this host."""
    held = db.execute(f"select id, lease_owner from runs where status in ({', '.join('?' * len(HELD))}) "
                      "and lease_expires_at >= ? order by id", [*HELD, now]).fetchall()
    for run_id, holder in held:
        if holder and runs._worker_is_dead(_process_of(holder)):
            row = db.execute("select id, status, retry_errors from runs where id = ? and lease_owner = ?"
                             + _skip_locked(db), [run_id, holder]).fetchone()
            if row is not None:
                return row
    return None


def next_expiry_s(db) -> float | None:
    """Seconds until the first lease held by a live worker ends (None: no run is held)."""
    row = db.execute(f"select min(lease_expires_at) from runs where status in ({', '.join('?' * len(HELD))}) "
                     "and lease_expires_at is not null", list(HELD)).fetchone()
    return None if row is None or row[0] is None else max(0.0, float(row[0]) - db_now(db))


def _busy(run_id: int, holder: str, left_s: float) -> SpreadError:
    return SpreadError(f"run {run_id} is being sampled by {_process_of(holder)}; if that worker is gone, "
                       f"any worker takes the run over when its lease ends in {left_s:.0f} s")


def _take(db, run_id: int, owner: str, now: float, status: str) -> None:
    db.execute("update runs set status = ?, started_at = ?, finished_at = null, heartbeat_at = ?, worker = ?, "
               "lease_owner = ?, lease_expires_at = ? where id = ?",
               [status, now_iso(), time.time(), _process_of(owner), owner, now + lease_s(), run_id])


def _end(db, run_id: int, status: str) -> None:
    """The lease ends; a run handed back (`queued`) keeps its resume's choice to retry errors."""
    handed_back = status == "queued"
    db.execute("update runs set status = ?, finished_at = ?, heartbeat_at = ?, lease_owner = null, "
               "lease_expires_at = null" + ("" if handed_back else ", retry_errors = 0") + " where id = ?",
               [status, None if handed_back else now_iso(), time.time(), run_id])


def renew(db, run_id: int, owner: str) -> str | None:
    """The heartbeat: extend `owner`'s lease. Returns the run's status (`cancelling` when a
    cancel was asked from anywhere), or None if the lease is no longer ours (another
    worker took the run over while this one could not reach the database)."""
    with write(db):
        updated = db.execute("update runs set heartbeat_at = ?, lease_expires_at = ? where id = ? and lease_owner = ?",
                             [time.time(), db_now(db) + lease_s(), run_id, owner]).rowcount
        if not updated:
            return None
        return db.execute("select status from runs where id = ?", [run_id]).fetchone()[0]


def release(db, run_id: int, owner: str, status: str) -> bool:
    """End `owner`'s lease with the run's final status; False (and nothing written) if the
    lease is no longer ours."""
    with write(db):
        held = db.execute("select 1 from runs where id = ? and lease_owner = ?", [run_id, owner]).fetchone()
        if held:
            _end(db, run_id, status)
        return bool(held)


def drop(db, run_id: int, owner: str) -> None:
    """Give `owner`'s lease up and leave the status as it is: no worker takes the run over."""
    with write(db):
        db.execute("update runs set lease_owner = null, lease_expires_at = null where id = ? and lease_owner = ?",
                   [run_id, owner])


def queue(db, run_id: int, *, retry_errors: bool = False) -> None:
    """Put a run back for any worker to claim (a resume where workers carry runs)."""
    with write(db):
        row = db.execute("select lease_owner, lease_expires_at from runs where id = ?", [run_id]).fetchone()
        if row is None:
            raise SpreadError(f"no run with id {run_id}")
        holder, expires = row
        now = db_now(db)
        if holder is not None and (expires or 0) > now:
            raise _busy(run_id, holder, expires - now)
        db.execute("update runs set status = 'queued', finished_at = null, retry_errors = ? where id = ?",
                   [int(retry_errors), run_id])


def cancel_queued(db, run_id: int) -> bool:
    """Cancel a run still waiting in the queue (no worker to tell); False if it is not queued."""
    with write(db):
        queued = db.execute("select 1 from runs where id = ? and status = 'queued' and "
                            "coalesce(lease_expires_at, 0) < ?", [run_id, db_now(db)]).fetchone()
        if queued:
            _end(db, run_id, "cancelled")
        return bool(queued)
