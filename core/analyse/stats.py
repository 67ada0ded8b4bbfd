"""The statistics Spread reports: every rate comes with its interval.

Samples of one input are not independent of each other (an input the model finds hard
fails in all of them), so a rate over many inputs is a mean over inputs with an
interval from the spread *between* inputs, not a pooled share.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import special
from scipy import stats as scipy_stats

CONFIDENCE = 0.95


@functools.lru_cache(maxsize=65536)
def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval for a share estimated from n independent samples. Kept per
    count: `spread serve` asks it for every request, always of a few small counts, and
    statsmodels' normal quantile costs more than the rest of the reply."""
    if n == 0:
        return (0.0, 1.0)
    low, high = wilson_many(np.array([successes]), np.array([n]), confidence)
    return float(low[0]), float(high[0])


def wilson_many(successes: np.ndarray, n: np.ndarray, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """wilson() for arrays at once (statsmodels, vectorised): a grid has thousands of cells."""
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(np.asarray(successes), np.asarray(n), alpha=1 - confidence, method="wilson")
    return np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def share_difference(k1: int, n1: int, k2: int, n2: int, confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """Difference of two shares with Newcombe's hybrid score interval (built on Wilson's)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, confidence)
    l2, u2 = wilson(k2, n2, confidence)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff, low, high


def mean_interval(values, confidence: float = CONFIDENCE, bounds: tuple[float, float] | None = (0.0, 1.0)
                  ) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval of a mean over independent units (inputs),
    clipped to `bounds`. One unit gives no interval: (mean, nan, nan)."""
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if values.size == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(values.mean())
    if values.size < 2:
        return (mean, math.nan, math.nan)
    half = float(scipy_stats.t.ppf((1 + confidence) / 2, values.size - 1) * values.std(ddof=1) / math.sqrt(values.size))
    low, high = mean - half, mean + half
    if bounds is not None:
        low, high = max(bounds[0], low), min(bounds[1], high)
    return mean, low, high


def paired_difference(a, b, confidence: float = CONFIDENCE) -> dict:
    """A − B over paired units (the same inputs): mean difference, its t interval, and the
    p-value of the paired t test (scipy). Units missing on either side are left out."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None
             and not math.isnan(x) and not math.isnan(y)]
    diffs = np.array([x - y for x, y in pairs], dtype=float)
    result = {"pairs": len(pairs), "difference": None, "low": None, "high": None, "p_value": None}
    if not len(pairs):
        return result
    mean, low, high = mean_interval(diffs, confidence, bounds=(-1.0, 1.0))
    result.update(difference=round(mean, 4))
    if len(pairs) >= 2:
        result.update(low=round(low, 4), high=round(high, 4))
        if np.any(diffs != diffs[0]):
            result["p_value"] = float(scipy_stats.ttest_rel([x for x, _ in pairs], [y for _, y in pairs]).pvalue)
        else:
            result["p_value"] = 1.0 if diffs[0] == 0 else 0.0
    return result


def entropy(counts) -> float:
    """Shannon entropy (nats) of a distribution given by counts."""
    counts = np.asarray(counts, dtype=float)
    total = counts.sum()
    # scipy.stats.entropy's own: -sum p log p (entr), without its per-call overhead (0.5 ms,
    # paid once per input and model at every threshold).
    return float(special.entr(counts / total).sum()) if total > 0 else 0.0


def rounded(value, digits: int = 4):
    """A float for JSON: rounded, None for NaN or None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else round(value, digits)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (as statsmodels' multipletests(method="holm"), which
    costs a full garbage collection per call: half a second in a big process)."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()
