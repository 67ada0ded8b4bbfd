"""The statistics behind drift signals, on plain numbers (no database).

- `meaning_shift`: per item, do the answers fall into the meaning clusters in other
  shares than the baseline's? A permutation test of the chi-square statistic (valid for
  the handful of samples a check takes, where the chi-square approximation is not),
  Holm's correction over items; over the set, Fisher's combination of the items' p-values
  (`combined_p`).
- `rate_shift`: an error or refusal rate against the baseline's (Fisher's exact test,
  one-sided: higher).
- `quantile_interval` / `shifted`: p50 and p95 latency (and mean cost) with intervals;
  a shift is claimed only when the two intervals do not overlap.
- `Cusum`: a one-sided CUSUM on the per-check pass rate, for slow slides no single check
  can show. Its reference is the baseline pooled with the first checks (`WARMUP`), its
  scale the binomial standard error of one check; `H` is tuned in bench/bench_watch.py so
  that an unchanged model raises about one alarm a month at an hourly cadence.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from core.analyse import stats

PERMUTATIONS = 999
# CUSUM: allowance K (in standard errors of one check: it detects shifts of about 2K) and
# decision interval H; WARMUP checks pooled with the baseline before it may alarm.
K = 0.5
H = 8.0
WARMUP = 24


def meaning_shift(tables: dict[str, tuple[list, list]], alpha: float, *, seed: int = 0) -> list[dict]:
    """Per item: `tables[item] = (baseline clusters, check clusters)` (a cluster id per
    answer). Returns per item the shares on each side, the statistic, the permutation p
    and the Holm-adjusted p; `shifted` when the adjusted p is below alpha."""
    rng = np.random.default_rng(seed)
    rows = []
    for item, (before, after) in tables.items():
        if not before or not after:
            continue
        labels = np.array(list(before) + list(after))
        side = np.array([0] * len(before) + [1] * len(after))
        observed = _chi_square(labels, side)
        if len(set(labels.tolist())) < 2:
            p = 1.0
        else:
            hits = sum(_chi_square(labels, rng.permutation(side)) >= observed - 1e-12 for _ in range(PERMUTATIONS))
            p = (hits + 1) / (PERMUTATIONS + 1)
        rows.append({"item": item, "statistic": round(float(observed), 4), "p_value": round(p, 6),
                     "before": _shares(before), "after": _shares(after)})
    for row, adjusted in zip(rows, stats.holm([r["p_value"] for r in rows])):
        row["p_adjusted"] = round(float(adjusted), 6)
        row["shifted"] = bool(adjusted < alpha)
    return rows


def combined_p(rows: list[dict]) -> float | None:
    """Fisher's combination of the items' permutation p-values: whether the answers moved
    over the set as a whole, when each item has too few samples to show it alone (five
    samples a side cannot give an item a p below 1/126). Valid for p-values that are
    uniform or conservative under no change, as permutation p-values are."""
    if not rows:
        return None
    statistic = -2 * sum(math.log(r["p_value"]) for r in rows)
    return float(scipy_stats.chi2.sf(statistic, 2 * len(rows)))


def _chi_square(labels: np.ndarray, side: np.ndarray) -> float:
    values = np.unique(labels)
    table = np.array([[np.sum((labels == v) & (side == s)) for v in values] for s in (0, 1)], dtype=float)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.nansum((table - expected) ** 2 / expected))


def _shares(clusters: list) -> dict[str, float]:
    counts: dict[str, int] = {}
    for c in clusters:
        counts[str(c)] = counts.get(str(c), 0) + 1
    return {c: round(k / len(clusters), 4) for c, k in sorted(counts.items())}


def rate_shift(k_after: int, n_after: int, k_before: int, n_before: int, alpha: float) -> dict | None:
    """A rate (errors, refusals) against the baseline's: both with Wilson intervals, and
    Fisher's one-sided p that it rose. None without samples on either side."""
    if not n_after or not n_before:
        return None
    p = scipy_stats.fisher_exact([[k_after, n_after - k_after], [k_before, n_before - k_before]],
                                 alternative="greater").pvalue
    low, high = stats.wilson(k_after, n_after)
    b_low, b_high = stats.wilson(k_before, n_before)
    return {"rate": round(k_after / n_after, 4), "low": stats.rounded(low), "high": stats.rounded(high),
            "baseline_rate": round(k_before / n_before, 4), "baseline_low": stats.rounded(b_low),
            "baseline_high": stats.rounded(b_high), "p_value": round(float(p), 6), "rose": bool(p < alpha)}


def quantile_interval(values: list[float], q: float, confidence: float = 0.95) -> tuple[float, float, float] | None:
    """The q-quantile and a distribution-free interval from order statistics (binomial
    ranks); None when there are too few values for such an interval."""
    x = np.sort(np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float))
    n = len(x)
    if n < 5:
        return None
    tail = (1 - confidence) / 2
    lo_rank = int(scipy_stats.binom.ppf(tail, n, q))
    hi_rank = int(scipy_stats.binom.ppf(1 - tail, n, q)) + 1
    if lo_rank < 1 or hi_rank > n:
        return None
    return float(np.quantile(x, q)), float(x[lo_rank - 1]), float(x[hi_rank - 1])


def mean_interval(values: list[float]) -> tuple[float, float, float] | None:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if len(x) < 3:
        return None
    mean, low, high = stats.mean_interval(x, bounds=None)
    return float(mean), float(low), float(high)


def shifted(before: tuple | None, after: tuple | None) -> str | None:
    """"up" or "down" when the two intervals do not overlap, else None."""
    if before is None or after is None:
        return None
    if after[1] > before[2]:
        return "up"
    if after[2] < before[1]:
        return "down"
    return None


def check_error(item_rates: list[float], k: int) -> float:
    """The standard error of one check's pass rate (the mean of the items' rates, each over
    `k` samples), from the reference rates; each rate is pulled off 0 and 1 by half a sample
    so that a set that always passes still has a scale."""
    if not item_rates:
        return math.nan
    p = np.clip(np.asarray(item_rates, dtype=float), 0.5 / (k + 1), 1 - 0.5 / (k + 1))
    return float(math.sqrt(np.sum(p * (1 - p) / k)) / len(p))


class Cusum:
    """One-sided CUSUM for a drop in the per-check pass rate:
    S_t = max(0, S_{t-1} + (reference − rate_t) / se − K); alarm while S_t > H."""

    def __init__(self, reference: float, se: float, k: float = K, h: float = H):
        self.reference, self.se, self.k, self.h = reference, se, k, h
        self.value = 0.0

    def step(self, rate: float) -> bool:
        self.value = max(0.0, self.value + (self.reference - rate) / self.se - self.k)
        return self.value > self.h


def slow_slide(baseline_rate: float, item_rates: list[float], k: int, history: list[float],
               warmup: int = WARMUP, h: float = H) -> dict | None:
    """The CUSUM over a monitor's checks since its baseline (oldest first). The first
    `warmup` checks only settle the reference (pooled with the baseline); None before."""
    if len(history) <= warmup:
        return None
    se = check_error(item_rates, k)
    if not se or math.isnan(se):
        return None
    reference = (baseline_rate + sum(history[:warmup])) / (warmup + 1)
    cusum = Cusum(reference, se, h=h)
    alarmed = [cusum.step(rate) for rate in history[warmup:]]
    return {"statistic": round(cusum.value, 4), "threshold": h, "allowance": K, "reference": round(reference, 4),
            "standard_error": round(se, 5), "checks": len(history) - warmup, "alarm": alarmed[-1]}
