"""What the regression gate can and cannot see: by simulation, and how many samples would settle it.

`simulate()` draws many regress runs of a baseline and a candidate whose items pass
with known probabilities, and applies the gate's own verdict to each pair: with no
real change, the share of failed gates is the false-alarm rate (it must stay at or
below alpha) and the share of inconclusive ones is how often the data cannot tell;
with a real drop, the share of failed gates is the power. `smallest_detectable_drop()`
finds the drop the gate catches 80% of the time for a given number of items and
samples, so a team can choose K knowing what it buys.

When a verdict is inconclusive, `samples_for_drop()` and `samples_for_pass_rate()` say
roughly how many samples per item would settle it: the K at which the gate would fail
80% of the time if the observed rates were the true ones (normal approximations of the
gate's own tests; rough, as the verdict says).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats

from core.analyse import stats
from core.evaluate import gate

POWER = 0.8
MAX_SAMPLES = 10_000  # beyond this, more samples per item is not a useful answer


def item_rates(items: int, seed: int = 0) -> np.ndarray:
    """Realistic items: most pass often, a few are hard (Beta(4, 1): mean 0.8)."""
    return np.random.default_rng(seed).beta(4, 1, size=items)


def simulate(*, items: int = 20, k: int = 10, drop: float = 0.0, alpha: float = gate.DEFAULT_ALPHA,
             max_drop: float = 0.0, runs: int = 500, seed: int = 0, rates: np.ndarray | None = None,
             candidate_rates: np.ndarray | None = None) -> dict:
    """The share of simulated candidate runs the drop gate fails (`rate`, with its Wilson
    interval) and finds inconclusive (`inconclusive_rate`)."""
    rng = np.random.default_rng(seed + 1)
    base = item_rates(items, seed) if rates is None else np.asarray(rates, dtype=float)
    after = np.clip(base - drop, 0.0, 1.0) if candidate_rates is None else np.asarray(candidate_rates, dtype=float)
    counts = {verdict: 0 for verdict in gate.VERDICTS}
    for _ in range(runs):
        baseline = rng.binomial(k, base)
        candidate = rng.binomial(k, after)
        p_value = gate.stratified_p_value([(int(c), k, int(b), k) for c, b in zip(candidate, baseline)])
        observed_drop = float((baseline - candidate).mean() / k)
        drop_low = None
        if max_drop > 0 and observed_drop > max_drop:
            change, _, change_high = gate.change_interval([(int(c), k) for c in candidate],
                                                          [(int(b), k) for b in baseline], 1 - 2 * alpha)
            drop_low = -change_high
        counts[gate.drop_verdict(observed_drop, p_value, drop_low, max_drop, alpha)] += 1
    low, high = stats.wilson(counts["fail"], runs)
    return {"items": len(base), "k": k, "drop": drop, "alpha": alpha, "max_drop": max_drop, "runs": runs,
            "alarms": counts["fail"], "rate": round(counts["fail"] / runs, 4), "rate_low": round(low, 4),
            "rate_high": round(high, 4), "inconclusive": counts["inconclusive"],
            "inconclusive_rate": round(counts["inconclusive"] / runs, 4), "mean_base_rate": round(float(base.mean()), 4)}


def smallest_detectable_drop(*, items: int = 20, k: int = 10, alpha: float = gate.DEFAULT_ALPHA, power: float = POWER,
                             runs: int = 300, seed: int = 0, step: float = 0.01) -> dict:
    """The smallest drop in every item's pass rate that fails the gate at least `power` of the time."""
    for drop in np.arange(step, 0.5 + step / 2, step):
        result = simulate(items=items, k=k, drop=float(round(drop, 4)), alpha=alpha, runs=runs, seed=seed)
        if result["rate"] >= power:
            return result
    return simulate(items=items, k=k, drop=0.5, alpha=alpha, runs=runs, seed=seed)


# --- samples that would settle an inconclusive verdict ----------------------------------------

def samples_for_drop(baseline_rates, candidate_rates, *, max_drop: float = 0.0, alpha: float = gate.DEFAULT_ALPHA,
                     power: float = POWER) -> int | None:
    """Samples per item (in both runs) at which the drop gate would fail `power` of the time,
    were the observed rates the true ones; None when no number of samples would.

    The stratified test's statistic, sum over items of (candidate passes − half the item's
    passes), is about normal: mean K·Σ(c − b)/2, variance K·Σ(c(1−c) + b(1−b))/4, and
    K·Σ p̄(1−p̄)/2 under no change (p̄ the item's pooled rate); solving for the K where
    its power reaches `power`, with a continuity correction of ½ (the exact test is
    discrete, hence conservative), gives K from |m|·K − ½ = (z_α·√a₀ + z_β·√a₁)·√K.
    A tolerated drop shifts the effect by that much per item.
    """
    b, c = np.asarray(baseline_rates, dtype=float), np.asarray(candidate_rates, dtype=float)
    effect = float(np.sum(c - b + max_drop)) / 2
    if effect >= 0:
        return None
    pooled = (b + c) / 2
    null_var = float(np.sum(pooled * (1 - pooled))) / 2
    alt_var = float(np.sum(c * (1 - c) + b * (1 - b))) / 4
    z_alpha, z_beta = scipy_stats.norm.ppf(1 - alpha), scipy_stats.norm.ppf(power)
    spread = z_alpha * math.sqrt(null_var) + z_beta * math.sqrt(alt_var)
    root_k = (spread + math.sqrt(spread ** 2 + 2 * -effect)) / (2 * -effect)
    return _bounded(root_k ** 2)


def samples_for_pass_rate(rates, k: int, threshold: float, *, confidence: float = stats.CONFIDENCE,
                          power: float = POWER) -> int | None:
    """Samples per item at which the pass rate's interval would lie wholly below `threshold`
    `power` of the time, were the items' observed rates the true ones; None when more
    samples would not do it (the items differ too much among themselves: more items would).

    Both intervals of the pass rate must clear it: the t interval over items (its spread is
    the items' true spread plus sampling noise that shrinks as 1/K) and the pooled Wilson one.
    """
    rates = np.asarray([r for r in rates if r is not None], dtype=float)
    mean, n_items = float(rates.mean()), len(rates)
    if mean >= threshold:
        return None
    z_beta = scipy_stats.norm.ppf(power)
    noise = float(np.mean(rates * (1 - rates)))  # sampling variance of one item's rate, times K
    needed = 1
    if n_items >= 2:
        true_var = max(0.0, float(rates.var(ddof=1)) - noise / k)
        t = scipy_stats.t.ppf((1 + confidence) / 2, n_items - 1)
        allowed = ((threshold - mean) * math.sqrt(n_items) / (t + z_beta)) ** 2
        if true_var >= allowed:
            return None
        needed = noise / (allowed - true_var) if noise else 1
    # The pooled Wilson bound, at the count the candidate reaches or beats 80% of the time.
    pooled = next((size for size in _sizes() if stats.wilson(
        min(size * n_items, math.ceil(mean * size * n_items + z_beta * math.sqrt(size * n_items * noise))),
        size * n_items, confidence)[1] < threshold), None)
    if pooled is None:
        return None
    return _bounded(max(needed, pooled))


def _sizes():
    size = 1
    while size <= MAX_SAMPLES:
        yield size
        size = size + 1 if size < 20 else math.ceil(size * 1.1)


def _bounded(k: float) -> int | None:
    return None if k > MAX_SAMPLES else max(1, math.ceil(k))
