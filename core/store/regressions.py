"""The regress_runs table: a golden set re-sampled on a candidate (its run), the settings,
the whole report as JSON and the gate's verdict with the pass rate and its interval."""

from __future__ import annotations

from core.store.clock import now_iso
from core.store.database import write
from core.store.schema import Database

SUMMARY = ("id, set_name, set_version, run_id, model, prompt_version, temperature, n, baseline_id, gate, "
           "pass_rate, pass_rate_low, pass_rate_high, created_at, created_by, settings")


def insert(db: Database, columns: dict) -> int:
    with write(db):
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
