"""The cluster_decisions and pair_judgements tables: reviewers' merge and split decisions
on a run's meaning clusters, and an LLM judge's verdicts on pairs of answers."""

from __future__ import annotations

from core.store.schema import Database


def cluster_decisions(db: Database, run_id: int) -> list[dict]:
    """Reviewers' merge and split decisions on a run's clusters, in the order they were made."""
    return list(db.query("select * from cluster_decisions where run_id = ? order by id", [run_id]))
