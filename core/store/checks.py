"""The check_results table: one row per answer and check — whether it passed, a score, why,
and what a judge cost. `check_key` is the check as canonical JSON, so a run's checks can
change without losing results."""

from __future__ import annotations

from core.store.clock import now_iso
from core.store.database import write
from core.store.schema import Database


def save(db: Database, rows: list[tuple]) -> None:
    """(response_id, check_key, type, passed, score, reason, judge_calls, judge_cost_usd) each;
    a result already there for that answer and check is replaced."""
    now = now_iso()
    with write(db):
        db.conn.executemany(
            "insert into check_results (response_id, check_key, type, passed, score, reason, "
            "judge_calls, judge_cost_usd, created_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "on conflict (response_id, check_key) do update set type = excluded.type, "
            "passed = excluded.passed, score = excluded.score, reason = excluded.reason, "
            "judge_calls = excluded.judge_calls, judge_cost_usd = excluded.judge_cost_usd, "
            "created_at = excluded.created_at",
            [(*row, now) for row in rows])


def of_run(db: Database, run_id: int) -> list[dict]:
    return list(db.query(
        "select check_results.* from check_results join responses on responses.id = check_results.response_id "
        "where responses.run_id = ? order by check_results.response_id, check_results.id", [run_id]))
