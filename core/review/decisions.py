"""A reviewer's word on the meaning clusters: these two answers mean the same (merge), or
they do not (split). Decisions belong to a run and an input, name the answers by their
normalised text, and every later analysis of the run applies them after clustering, in
the order they were made. Deleting one undoes it.
"""

from __future__ import annotations


from core import store
from core.analyse import embed, meaning
from core.config import SpreadError

ACTIONS = ("merge", "split")


def record(run_id: int, input_idx: int, action: str, text_a: str, text_b: str, *, reviewer: str,
           db_path=None) -> int:
    if action not in ACTIONS:
        raise SpreadError(f"a decision is merge or split (got {action!r})")
    if not (reviewer or "").strip():
        raise SpreadError("no reviewer: enter your name (or log in) before changing clusters", "reviewer")
    a, b = embed.normalise(text_a), embed.normalise(text_b)
    if a == b:
        raise SpreadError("those are the same answer")
    with store.connect(db_path) as db:
        if store.get_run(db, run_id) is None:
            raise SpreadError(f"no run with id {run_id}")
        with store.write(db):
            return db["cluster_decisions"].insert({
                "run_id": run_id, "input": input_idx, "action": action, "text_a": a, "text_b": b,
                "reviewer": reviewer.strip(), "created_at": store.now_iso()}).last_pk


def for_run(run_id: int, *, db_path=None) -> list[dict]:
    with store.connect(db_path) as db:
        return store.cluster_decisions(db, run_id)


def undo(decision_id: int, *, db_path=None) -> None:
    with store.connect(db_path) as db:
        with store.write(db):
            db.execute("delete from cluster_decisions where id = ?", [decision_id])


apply = meaning.apply_decisions  # what the analysis does with them: merge or split clusters


def _answers(a_id: int, b_id: int, db_path) -> tuple[dict, dict, str]:
    """Two answers of the same run and input, and that input's prompts (the context)."""
    with store.connect(db_path) as db:
        rows = {r["id"]: r for r in db.query(
            "select id, run_id, variant, input, text, error_type from responses where id in (?, ?)", [a_id, b_id])}
        for rid in (a_id, b_id):
            if rid not in rows or rows[rid]["error_type"] is not None:
                raise SpreadError(f"no answer with id {rid}")
        a, b = rows[a_id], rows[b_id]
        if (a["run_id"], a["input"]) != (b["run_id"], b["input"]):
            raise SpreadError("the two answers must answer the same input of the same run")
        prompts = store.rendered_prompts(db, a["run_id"])
    context = "\n".join(f"{s}\n{p}" for (v, i), (s, p) in sorted(prompts.items()) if i == a["input"])
    return a, b, context


def explain(a_id: int, b_id: int, *, method: str | None = None, threshold: float | None = None, db_path=None):
    """Why two answers share a meaning cluster or not: meaning.explain on the pair, in their input's context."""
    from core.analyse import meaning

    a, b, context = _answers(a_id, b_id, db_path)
    return meaning.explain(a["text"] or "", b["text"] or "", context=context, method=method,
                           threshold=threshold or meaning.DEFAULT_THRESHOLD,
                           embedder=lambda texts, m: embed.cached(texts, m, db_path=db_path))


def decide(a_id: int, b_id: int, action: str, *, reviewer: str, db_path=None) -> int:
    """Record that two answers mean the same (merge) or not (split)."""
    a, b, _ = _answers(a_id, b_id, db_path)
    return record(a["run_id"], a["input"], action, a["text"] or "", b["text"] or "", reviewer=reviewer,
                  db_path=db_path)
