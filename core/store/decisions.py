"""The cluster_decisions and pair_judgements tables: reviewers' merge and split decisions
on a run's meaning clusters, and an LLM judge's verdicts on pairs of answers."""

from __future__ import annotations

from core.store.clock import now_iso
from core.store.database import write
from core.store.schema import Database


def cluster_decisions(db: Database, run_id: int) -> list[dict]:
    """Reviewers' merge and split decisions on a run's clusters, in the order they were made."""
    return list(db.query("select * from cluster_decisions where run_id = ? order by id", [run_id]))


def add(db: Database, run_id: int, input_idx: int, action: str, text_a: str, text_b: str, reviewer: str) -> int:
    with write(db):
        return db["cluster_decisions"].insert({
            "run_id": run_id, "input": input_idx, "action": action, "text_a": text_a, "text_b": text_b,
            "reviewer": reviewer, "created_at": now_iso()}).last_pk


def remove(db: Database, decision_id: int) -> None:
    with write(db):
        db.execute("delete from cluster_decisions where id = ?", [decision_id])


def answers(db: Database, ids: list[int]) -> dict[int, dict]:
    """(id, run_id, variant, input, text, error_type) of these answers, by id."""
    return {r["id"]: r for r in db.query(
        f"select id, run_id, variant, input, text, error_type from responses where id in ({','.join('?' * len(ids))})",
        list(ids))}


# --- a judge's verdicts on pairs of answers ------------------------------------------

def judged_same(db: Database, key: str) -> bool | None:
    row = db.execute("select same from pair_judgements where key = ?", [key]).fetchone()
    return None if row is None else bool(row[0])


def save_judgement(db: Database, key: str, model: str, same: bool) -> None:
    with write(db):
        db.execute("insert into pair_judgements (key, model, same, created_at) values (?, ?, ?, ?) "
                   "on conflict (key) do update set model = excluded.model, same = excluded.same, "
                   "created_at = excluded.created_at", [key, model, int(same), now_iso()])


def judged_keys(db: Database, model: str) -> list[str]:
    return [row[0] for row in db.execute("select key from pair_judgements where model = ?", [model])]
