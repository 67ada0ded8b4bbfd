"""A reviewer's word on the meaning clusters: these two answers mean the same (merge), or
they do not (split). Decisions belong to a run and an input, name the answers by their
normalised text, and every later analysis of the run applies them after clustering, in
the order they were made. Deleting one undoes it.
"""

from __future__ import annotations

from core.analyse import embed, meaning
from core.config import SpreadError
from core.store import Store, decisions, runs

ACTIONS = ("merge", "split")


def record(store: Store, run_id: int, input_idx: int, action: str, text_a: str, text_b: str, *, reviewer: str) -> int:
    if action not in ACTIONS:
        raise SpreadError(f"a decision is merge or split (got {action!r})")
    if not (reviewer or "").strip():
        raise SpreadError("no reviewer: enter your name (or log in) before changing clusters", "reviewer")
    a, b = embed.normalise(text_a), embed.normalise(text_b)
    if a == b:
        raise SpreadError("those are the same answer")
    with store.connection() as db:
        if runs.get_run(db, run_id) is None:
            raise SpreadError(f"no run with id {run_id}")
        return decisions.add(db, run_id, input_idx, action, a, b, reviewer.strip())


def for_run(store: Store, run_id: int) -> list[dict]:
    with store.connection() as db:
        return decisions.cluster_decisions(db, run_id)


def undo(store: Store, decision_id: int) -> None:
    with store.connection() as db:
        decisions.remove(db, decision_id)


apply = meaning.apply_decisions  # what the analysis does with them: merge or split clusters


def _answers(store: Store, a_id: int, b_id: int) -> tuple[dict, dict, str]:
    """Two answers of the same run and input, and that input's prompts (the context)."""
    with store.connection() as db:
        rows = decisions.answers(db, [a_id, b_id])
        for rid in (a_id, b_id):
            if rid not in rows or rows[rid]["error_type"] is not None:
                raise SpreadError(f"no answer with id {rid}")
        a, b = rows[a_id], rows[b_id]
        if (a["run_id"], a["input"]) != (b["run_id"], b["input"]):
            raise SpreadError("the two answers must answer the same input of the same run")
        prompts = runs.rendered_prompts(db, a["run_id"])
    context = "\n".join(f"{s}\n{p}" for (v, i), (s, p) in sorted(prompts.items()) if i == a["input"])
    return a, b, context


def explain(store: Store, a_id: int, b_id: int, *, method: str | None = None, threshold: float | None = None):
    """Why two answers share a meaning cluster or not: meaning.explain on the pair, in their input's context."""
    from core.analyse import meaning

    a, b, context = _answers(store, a_id, b_id)
    return meaning.explain(a["text"] or "", b["text"] or "", context=context, method=method,
                           threshold=threshold or meaning.DEFAULT_THRESHOLD,
                           embedder=lambda texts, m: embed.cached(store, texts, m))


def decide(store: Store, a_id: int, b_id: int, action: str, *, reviewer: str) -> int:
    """Record that two answers mean the same (merge) or not (split)."""
    a, b, _ = _answers(store, a_id, b_id)
    return record(store, a["run_id"], a["input"], action, a["text"] or "", b["text"] or "", reviewer=reviewer)
