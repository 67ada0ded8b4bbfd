"""The regress_runs table: a golden set re-sampled on a candidate (its run), the settings,
the whole report as JSON and the gate's verdict with the pass rate and its interval; and
regress_requests: a regression asked for, kept with its run until someone judges it."""

from __future__ import annotations

from core.store.clock import now_iso
from core.store.database import write
from core.store.schema import Database

SUMMARY = ("id, set_name, set_version, run_id, model, prompt_version, temperature, n, baseline_id, gate, "
           "pass_rate, pass_rate_low, pass_rate_high, created_at, created_by, settings")


def insert(db: Database, columns: dict) -> int:
    with write(db):
        return insert_in_transaction(db, columns)


def insert_in_transaction(db: Database, columns: dict) -> int:
    return db["regress_runs"].insert(columns | {"created_at": now_iso()}).last_pk


def row(db: Database, regress_id: int) -> dict | None:
    rows = list(db.query("select * from regress_runs where id = ?", [regress_id]))
    return rows[0] if rows else None


def id_for_run(db: Database, run_id: int) -> int | None:
    found = db.execute("select id from regress_runs where run_id = ?", [run_id]).fetchone()
    return found[0] if found else None


def of_set(db: Database, set_name: str) -> list[dict]:
    """Every regress run of a set, oldest first, without its report."""
    return list(db.query(f"select {SUMMARY} from regress_runs where set_name = ? order by id", [set_name]))


# --- requests: asked for, not yet judged ---------------------------------------------------

def add_request(db: Database, run_id: int, columns: dict) -> None:
    """Inside the transaction that records the run (runs.create_run's `along`)."""
    db["regress_requests"].insert(columns | {"run_id": run_id, "created_at": now_iso()})


def request(db: Database, run_id: int) -> dict | None:
    rows = list(db.query("select * from regress_requests where run_id = ?", [run_id]))
    return rows[0] if rows else None


def set_request_error(db: Database, run_id: int, error: str | None) -> None:
    db.execute("update regress_requests set error = ? where run_id = ?", [error, run_id])


def unjudged(db: Database, set_name: str) -> list[dict]:
    """A set's requests without a verdict yet, oldest first."""
    return list(db.query(
        "select * from regress_requests q where q.set_name = ? "
        "and not exists (select 1 from regress_runs g where g.run_id = q.run_id) order by q.run_id", [set_name]))
