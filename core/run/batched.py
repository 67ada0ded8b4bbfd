"""A round of samples through the provider's batch API (`spread run --batch`), at batch price.

One batch per model per round (a run sampled until settled sends one per round), its id
stored the moment the provider creates it (core/store/batches.py): a restarted server or
`spread resume` polls the same batch and never submits its requests twice. The batch is
polled every `poll_s()` seconds ("waiting for the provider's batch: submitted at …, n of m
done" on Runs and in `spread runs`); once it is finished its answers are stored, each
priced at the batch discount (core/models/batch.py). A request that failed or expired in
the batch becomes an error row (error type `batch_…`): `spread resume --retry-errors`
samples those again, in a new batch. A cancel cancels the provider's batch and keeps what
it finished.
"""

from __future__ import annotations

import asyncio
import os

from core.store import Store

from core.store import responses
from core.models import batch
from core.store import batches

BATCH_POLL_S = 30.0


def poll_s() -> float:
    """Seconds between status reads (SPREAD_BATCH_POLL_S; a batch takes minutes to hours)."""
    try:
        return max(0.01, float(os.environ.get("SPREAD_BATCH_POLL_S", BATCH_POLL_S)))
    except ValueError:
        return BATCH_POLL_S


def _custom_id(cell: tuple) -> str:
    variant, input_idx, model, temperature, sample_idx = cell
    return f"{variant}:{input_idx}:{temperature!r}:{sample_idx}"


async def sample_round(store: Store, run_id: int, spec, todo: list[tuple], prompts: dict, keys, *, price, cancel) -> int:
    """Sample `todo` through batches (after collecting any of the run's pending ones); returns the rows stored."""
    calls = {m: spec.call_for(m) for m in spec.models}
    with store.connection() as db:
        waiting = batches.pending(db, run_id)
    covered = {cell for row in waiting for cell in row["cells"].values()}
    by_model: dict[str, list] = {}
    for cell in todo:
        if cell not in covered:
            by_model.setdefault(cell[2], []).append(cell)
    shapes_of = [variant.request() for variant in spec.all_variants()]
    for model, cells in by_model.items():
        if cancel.is_set():
            break
        ids = {_custom_id(cell): list(cell) for cell in cells}
        lines = [batch.line(custom_id, calls[model], prompts[tuple(cell[:2])], temperature=cell[3],
                            max_tokens=spec.max_tokens, seed=spec.seed_for(cell[4]), top_p=spec.top_p,
                            shape=shapes_of[cell[0]]) for custom_id, cell in ids.items()]
        batch_id, file_id = await batch.submit(calls[model], lines)
        with store.connection() as db:
            row_id = batches.record(db, run_id, model, batch_id, file_id, ids)
        waiting.append({"id": row_id, "model": model, "batch_id": batch_id,
                        "cells": {k: tuple(v) for k, v in ids.items()}})
    stored = 0
    cancelled: set[str] = set()
    while waiting:
        for row in list(waiting):
            call = calls[row["model"]]
            if cancel.is_set() and row["batch_id"] not in cancelled:
                cancelled.add(row["batch_id"])
                await batch.cancel(call, row["batch_id"])
            found = await batch.status(call, row["batch_id"])
            if found["status"] not in batch.DONE:
                await asyncio.to_thread(_update, store, row["id"], found)
                continue
            results = await batch.results(call, found)
            if found.get("completed") is None:  # a provider that reports progress, not counts (Together)
                found = found | {"completed": sum("body" in r for r in results.values()),
                                 "failed": sum("error" in r for r in results.values())}
            rows = _rows(run_id, spec, row, results, keys, price, found["status"])
            await asyncio.to_thread(_store, store, row["id"], found, rows)
            stored += len(rows)
            waiting.remove(row)
        if waiting:
            await asyncio.sleep(poll_s())
    return stored


def _rows(run_id: int, spec, row: dict, results: dict, keys, price, status: str) -> list[dict]:
    out = []
    for custom_id, cell in row["cells"].items():
        variant, input_idx, model, temperature, sample_idx = cell
        base = {"run_id": run_id, "variant": variant, "input": input_idx, "model": model, "temperature": temperature,
                "sample_idx": sample_idx, "seed": spec.seed_for(sample_idx)}
        found = results.get(custom_id)
        if found and "body" in found:
            answer = batch.answer(found["body"], spec.all_variants()[variant].response_format)
            cost = price(model, answer["prompt_tokens"], answer["completion_tokens"])
            out.append(base | answer | {"cost_usd": cost, "cache_key": keys.of(cell)})
        elif found is None and status == "cancelled":
            continue  # never asked: the cell stays empty, for a resume
        else:
            error_type, message = found["error"] if found else (f"batch_{status}", f"no answer: the batch {status}")
            out.append(base | {"error_type": error_type, "error_message": message, "attempts": 1})
    return out


def _update(store: Store, row_id: int, found: dict) -> None:
    with store.connection() as db:
        batches.update(db, row_id, found)


def _store(store: Store, row_id: int, found: dict, rows: list[dict]) -> None:
    """The batch's answers, then its end: a crash between leaves it pending, and collecting it again
    changes no stored answer (a good answer is never overwritten)."""
    with store.connection() as db:
        responses.save_responses(db, rows)
        batches.update(db, row_id, found, collected=True)
