"""Repository of `provider_batches`: each provider batch a run created, until its answers are stored."""

from __future__ import annotations

import json

from core.store import now_iso, write


def record(db, run_id: int, model: str, batch_id: str, input_file_id: str, cells: dict[str, list]) -> int:
    """A batch the provider just created, with the cell of each of its requests (custom id -> cell)."""
    stamp = now_iso()
    with write(db):
        return db["provider_batches"].insert({
            "run_id": run_id, "model": model, "batch_id": batch_id, "input_file_id": input_file_id,
            "status": "validating", "total": len(cells), "completed": 0, "failed": 0,
            "cells": json.dumps(cells), "collected": 0, "submitted_at": stamp, "updated_at": stamp}).last_pk


def update(db, row_id: int, found: dict, *, collected: bool = False) -> None:
    with write(db):
        db.execute("update provider_batches set status = ?, total = coalesce(?, total), completed = coalesce(?, "
                   "completed), failed = coalesce(?, failed), collected = ?, updated_at = ? where id = ?",
                   [found["status"], found.get("total"), found.get("completed"), found.get("failed"),
                    int(collected), now_iso(), row_id])


def pending(db, run_id: int) -> list[dict]:
    """The run's batches whose answers are not stored yet (cells as custom id -> cell tuple)."""
    rows = list(db.query("select * from provider_batches where run_id = ? and collected = 0 order by id", [run_id]))
    for row in rows:
        row["cells"] = {k: tuple(v) for k, v in json.loads(row["cells"]).items()}
    return rows


def count(db, run_id: int) -> int:
    return db.execute("select count(*) from provider_batches where run_id = ?", [run_id]).fetchone()[0]


def waiting(db, run_ids: list[int] | None = None) -> dict[int, str]:
    """Per run with a batch not yet collected: "waiting for the provider's batch: submitted at …, n of m done"."""
    out: dict[int, str] = {}
    for row in db.query("select run_id, min(submitted_at) as submitted_at, sum(coalesce(completed, 0) + "
                        "coalesce(failed, 0)) as done, sum(total) as total from provider_batches where collected = 0 "
                        "group by run_id"):
        if run_ids is None or row["run_id"] in run_ids:
            out[row["run_id"]] = (f"waiting for the provider's batch: submitted at {row['submitted_at'][:19]}, "
                                  f"{row['done']} of {row['total']} done")
    return out
