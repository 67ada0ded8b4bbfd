"""What the regression gate can and cannot see, by simulation.

`simulate()` draws many regress runs of a baseline and a candidate whose items pass
with known probabilities, and applies the gate's own test to each pair: with no real
change, the share of failed gates is the false-alarm rate (it must stay at or below
alpha); with a real drop, it is the power. `smallest_detectable_drop()` finds the
drop the gate catches 80% of the time for a given number of items and samples, so a
team can choose K knowing what it buys.
"""

from __future__ import annotations

import numpy as np

from core.analyse import stats
from core.evaluate.regress import DEFAULT_ALPHA, drop_fails, stratified_p_value


def item_rates(items: int, seed: int = 0) -> np.ndarray:
    """Realistic items: most pass often, a few are hard (Beta(4, 1): mean 0.8)."""
    return np.random.default_rng(seed).beta(4, 1, size=items)


def simulate(*, items: int = 20, k: int = 10, drop: float = 0.0, alpha: float = DEFAULT_ALPHA,
             max_drop: float = 0.0, runs: int = 500, seed: int = 0, rates: np.ndarray | None = None) -> dict:
    """The share of simulated candidate runs the drop gate fails, with its Wilson interval."""
    rng = np.random.default_rng(seed + 1)
    base = item_rates(items, seed) if rates is None else np.asarray(rates, dtype=float)
    after = np.clip(base - drop, 0.0, 1.0)
    alarms = 0
    for _ in range(runs):
        baseline = rng.binomial(k, base)
        candidate = rng.binomial(k, after)
        p_value = stratified_p_value([(int(c), k, int(b), k) for c, b in zip(candidate, baseline)])
        observed_drop = float((baseline - candidate).mean() / k)
        alarms += drop_fails(observed_drop, p_value, max_drop, alpha)
    low, high = stats.wilson(alarms, runs)
    return {"items": items, "k": k, "drop": drop, "alpha": alpha, "runs": runs, "alarms": alarms,
            "rate": round(alarms / runs, 4), "rate_low": round(low, 4), "rate_high": round(high, 4),
            "mean_base_rate": round(float(base.mean()), 4)}


def smallest_detectable_drop(*, items: int = 20, k: int = 10, alpha: float = DEFAULT_ALPHA, power: float = 0.8,
                             runs: int = 300, seed: int = 0, step: float = 0.01) -> dict:
    """The smallest drop in every item's pass rate that fails the gate at least `power` of the time."""
    for drop in np.arange(step, 0.5 + step / 2, step):
        result = simulate(items=items, k=k, drop=float(round(drop, 4)), alpha=alpha, runs=runs, seed=seed)
        if result["rate"] >= power:
            return result
    return simulate(items=items, k=k, drop=0.5, alpha=alpha, runs=runs, seed=seed)
