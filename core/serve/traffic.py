"""What the Serve page shows of `spread serve`'s traffic: per route, requests, how sure the
answers were, how often it abstained or fell back, and the time Spread added beyond the
calls it waited for. Rates carry 95% Wilson intervals (requests taken as independent)."""

from __future__ import annotations

import numpy as np

from core.store import Store
from core.analyse import stats
from core.store import serving

CONFIDENCE_BINS = 10


def summary(store: Store, *, since: str | None = None) -> list[dict]:
    """One row per route: traffic, rates and latency added, over requests since `since` (ISO)."""
    with store.connection() as db:
        rows = serving.requests(db, since=since)
    out = []
    for route in sorted({row["route"] for row in rows}):
        mine = [row for row in rows if row["route"] == route]
        n = len(mine)
        answered = [row for row in mine if row["k"]]
        abstained = sum(row["abstained"] for row in mine)
        fell_back = sum(row["fallback"] for row in mine)
        failed = sum(1 for row in mine if not row["k"])
        added = np.array([row["latency_ms"] - (row["slowest_call_ms"] or 0.0) for row in mine
                          if row["latency_ms"] is not None])
        costs = [row["cost_usd"] for row in mine]
        out.append({
            "route": route, "requests": n, "runs": len({row["run_id"] for row in mine}),
            "first": min(row["created_at"] for row in mine), "last": max(row["created_at"] for row in mine),
            "mean_confidence": round(float(np.mean([row["confidence"] for row in answered])), 4) if answered else None,
            **_rate("abstention", abstained, n), **_rate("fallback", fell_back, n), **_rate("failure", failed, n),
            "mean_k": round(float(np.mean([row["k"] for row in mine])), 2),
            "calls": int(sum(row["asked"] for row in mine)),
            "filtered": int(sum(row["filtered"] for row in mine)),
            "latency_added_p50_ms": round(float(np.percentile(added, 50)), 1) if len(added) else None,
            "latency_added_p95_ms": round(float(np.percentile(added, 95)), 1) if len(added) else None,
            "cost_usd": None if None in costs else round(sum(costs), 6),
        })
    return out


def _rate(name: str, count: int, n: int) -> dict:
    low, high = stats.wilson(count, n)
    return {f"{name}_rate": round(count / n, 4) if n else None, f"{name}_low": round(low, 4),
            f"{name}_high": round(high, 4)}


def confidence_histogram(store: Store, route: str, *, since: str | None = None) -> list[dict]:
    """How many requests of a route got each confidence, in tenths (calls that all failed left out)."""
    with store.connection() as db:
        rows = [row for row in serving.requests(db, route=route, since=since) if row["k"]]
    counts = [0] * CONFIDENCE_BINS
    for row in rows:
        counts[min(int(row["confidence"] * CONFIDENCE_BINS + 1e-9), CONFIDENCE_BINS - 1)] += 1
    return [{"confidence": f"{n / CONFIDENCE_BINS:.1f}–{(n + 1) / CONFIDENCE_BINS:.1f}", "requests": count}
            for n, count in enumerate(counts)]


def recent(store: Store, route: str, *, limit: int = 50) -> list[dict]:
    """The route's latest requests, as the page lists them (links to their run and input)."""
    with store.connection() as db:
        rows = serving.requests(db, route=route, limit=limit)
    return [{"request": row["id"], "at": (row["created_at"] or "")[:19].replace("T", " "), "run": row["run_id"],
             "input": row["input"], "confidence": row["confidence"], "k": row["k"], "meanings": row["clusters"],
             "filtered": row["filtered"], "failed": row["failed"], "abstained": bool(row["abstained"]),
             "fell back": bool(row["fallback"]), "status": row["status"],
             "added ms": None if row["latency_ms"] is None else round(row["latency_ms"] - (row["slowest_call_ms"] or 0), 1)}
            for row in rows]
