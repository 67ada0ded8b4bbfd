"""The decision on one request's answers: set aside what fails the route's checks, group the
rest by meaning, and take the largest meaning.

Meaning is Spread's one rule (core/analyse/spread.py `meanings`, the clusters the Spread
page shows): text by its facts and embeddings, a JSON answer by its parsed value, tool
calls by the functions called and their parsed arguments, whatever the argument order.

The figures, over the k answers that came back (calls that failed are not answers; the
k reported is the lower one):
- `confidence`: the largest acceptable meaning's share of all k answers (answers set
  aside by the checks count in k and in no meaning), 0 when none is acceptable;
- `shares`: each acceptable meaning's share of k, largest first;
- `semantic_entropy`: the entropy (nats) of the acceptable answers over their meanings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import cachetools
import numpy as np

from core.analyse import embed, spread, stats
from core.evaluate import scoring


class CachedEmbedder:
    """Model embeddings kept in memory per method and text: served answers repeat ("Paris."),
    and embedding is most of a decision's time. The lexical methods (exact, tfidf) give
    vectors that depend on the whole batch, so they are never cached. Thread-safe."""

    def __init__(self, size: int = 50_000):
        self._cache: cachetools.LRUCache = cachetools.LRUCache(size)
        self._lock = threading.Lock()

    def __call__(self, texts: list[str], method: str) -> np.ndarray:
        if method in ("exact", "tfidf"):
            return embed.embed(texts, method)
        with self._lock:
            found = {text: self._cache.get((method, text)) for text in texts}
        missing = list(dict.fromkeys(text for text, vector in found.items() if vector is None))
        if missing:
            vectors = embed.embed(missing, method)
            with self._lock:
                for text, vector in zip(missing, vectors):
                    self._cache[(method, text)] = found[text] = vector
        return np.stack([found[text] for text in texts]) if texts else np.zeros((0, 1), np.float32)


@dataclass
class Outcome:
    """One check's verdict on one answer (stored with the answer, as a run's checks are)."""

    sample: int
    key: str
    type: str
    passed: bool | None
    score: float | None
    reason: str


@dataclass
class Decision:
    asked: int  # calls made
    k: int  # answers that came back
    failed: int  # calls that gave no answer
    filtered: int  # answers set aside by the checks
    confidence: float
    shares: list[float]
    semantic_entropy: float | None
    chosen: int | None  # the sample index of the answer returned (the largest meaning's representative)
    meanings: list[list[int]] = field(default_factory=list)  # sample indices per meaning, largest first
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def clusters(self) -> int:
        return len(self.meanings)

    def agrees(self) -> bool:
        """Every call answered, every answer is acceptable, and all mean one thing."""
        return self.k == self.asked and self.filtered == 0 and len(self.meanings) == 1


def check_answers(rows: list[dict], route_checks, variant: dict) -> list[Outcome]:
    """The route's checks on every answer (rows with an error have none). `variant` holds
    the request's tools and response format, which `is-json` and the tool checks read."""
    outcomes = []
    for row in rows:
        if row.get("error_type") is not None:
            continue
        for check in route_checks:
            result = scoring.outcome_of(check, row, {}, variant)
            outcomes.append(Outcome(row["sample_idx"], check.key(), check.type, result.passed, result.score,
                                    result.reason))
    return outcomes


def decide(rows: list[dict], *, route_checks=(), variant: dict | None = None, method: str | None = None,
           context: str = "", embedder=None) -> Decision:
    """The decision on these answers (store-shaped rows with `sample_idx`; error rows count
    as failed calls)."""
    variant = variant or {}
    outcomes = check_answers(rows, route_checks, variant)
    rejected = {o.sample for o in outcomes if o.passed is False}
    good = [row for row in rows if row.get("error_type") is None]
    acceptable = [row for row in good if row["sample_idx"] not in rejected]
    k = len(good)
    found = []
    if acceptable:
        # Ids stand for sample indices here: the answers are not stored yet.
        found = spread.meanings([{**row, "id": row["sample_idx"], "input": 0, "variant": 0} for row in acceptable],
                                method=method, context=context, embedder=embedder)
    sizes = [cluster.size for cluster in found]
    return Decision(
        asked=len(rows), k=k, failed=len(rows) - k, filtered=len(good) - len(acceptable),
        confidence=sizes[0] / k if sizes and k else 0.0,
        shares=[size / k for size in sizes],
        semantic_entropy=stats.entropy(sizes) if sizes else None,
        chosen=found[0].representative_id if found else None,
        meanings=[sorted(int(i) for i in cluster.member_ids) for cluster in found],
        outcomes=outcomes,
    )
