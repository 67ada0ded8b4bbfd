"""The regression gate's decision: pass, fail, or inconclusive — from counts alone.

A gate is broken only when the data shows it: *fail* when the pass rate's interval lies
wholly below `min_pass_rate`, or when the drop against the baseline is larger than
`max_drop` and the exact stratified test (below) finds it unlikely under no change.
When the observed figure breaks a gate but sampling noise could explain it, the verdict
is *inconclusive* — never *pass*: the data cannot tell. Otherwise *pass*.

Sign convention: a change is candidate minus baseline, so a drop is a negative change
(`change` = −`drop`), in the headline and in every item's row alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as scipy_stats

from core.analyse import stats
from core.config import SpreadError

DEFAULT_ALPHA = 0.05
VERDICTS = ("pass", "fail", "inconclusive")


@dataclass
class Gates:
    min_pass_rate: float | None = None
    max_drop: float | None = None
    alpha: float = DEFAULT_ALPHA

    def check(self) -> None:
        for name, value in (("min pass rate", self.min_pass_rate), ("max drop", self.max_drop)):
            if value is not None and not 0 <= value <= 1:
                raise SpreadError(f"the {name} must be in 0..1 (got {value})")
        if not 0 < self.alpha < 1:
            raise SpreadError(f"alpha must be in (0, 1) (got {self.alpha})")


def overall(verdicts: list[str]) -> str:
    """One failed gate fails the run; else one that cannot tell makes it inconclusive."""
    return "fail" if "fail" in verdicts else "inconclusive" if "inconclusive" in verdicts else "pass"


# --- intervals ------------------------------------------------------------------------------

def pass_rate_interval(passes: list[int], samples: list[int], confidence: float = stats.CONFIDENCE
                       ) -> tuple[float, float, float]:
    """(mean of the items' pass rates, low, high).

    The interval is the wider of two: Student's t over items (samples of one item are
    not independent, so items are the unit) and Wilson's over all samples pooled (as if
    they were independent: the least a pass rate can be uncertain). The t interval alone
    collapses to "0% – 0%" when every item passes equally; 0 of n is never certain.
    """
    rates = [k / n for k, n in zip(passes, samples) if n]
    mean, low, high = stats.mean_interval(rates, confidence)
    pooled_low, pooled_high = stats.wilson(sum(passes), sum(samples), confidence)
    return mean, _min(low, pooled_low), _max(high, pooled_high)


def change_interval(candidate: list[tuple[int, int]], baseline: list[tuple[int, int]],
                    confidence: float = stats.CONFIDENCE) -> tuple[float, float, float]:
    """(mean change of the paired items' pass rates, low, high): candidate − baseline.

    As for the pass rate, the wider of the paired t interval over items and Newcombe's
    interval of the pooled difference, so equal changes everywhere never read as certain.
    """
    after = [k / n for k, n in candidate]
    before = [k / n for k, n in baseline]
    paired = stats.paired_difference(after, before, confidence)
    _, pooled_low, pooled_high = stats.share_difference(
        sum(k for k, _ in candidate), sum(n for _, n in candidate),
        sum(k for k, _ in baseline), sum(n for _, n in baseline), confidence)
    mean = float(np.mean(after) - np.mean(before))
    return (mean, max(-1.0, _min(paired["low"], pooled_low)), min(1.0, _max(paired["high"], pooled_high)))


def _min(a, b):
    return b if a is None or math.isnan(a) else min(a, b)


def _max(a, b):
    return b if a is None or math.isnan(a) else max(a, b)


# --- the tests ------------------------------------------------------------------------------

def stratified_p_value(strata: list[tuple[int, int, int, int]]) -> float:
    """One-sided exact p-value that the candidate passes no less often than the baseline.

    Each stratum (an item) is (candidate passes, candidate samples, baseline passes,
    baseline samples). Under no change, given an item's total passes, the candidate's
    share of them is hypergeometric; the p-value is P(total candidate passes ≤ observed),
    from the exact distribution of the sum (a convolution over items).
    """
    distribution = np.array([1.0])
    low = observed = 0
    for passes, samples, base_passes, base_samples in strata:
        total = passes + base_passes
        support = np.arange(max(0, total - base_samples), min(samples, total) + 1)
        pmf = scipy_stats.hypergeom.pmf(support, samples + base_samples, total, samples)
        distribution = np.convolve(distribution, pmf)
        low += int(support[0])
        observed += passes
    return float(min(1.0, distribution[: observed - low + 1].sum()))


# --- the verdicts ---------------------------------------------------------------------------

def min_pass_rate_verdict(pass_rate: float, high: float, threshold: float) -> str:
    """fail when even the interval's top is under the minimum; inconclusive when only the
    estimate is."""
    if pass_rate >= threshold:
        return "pass"
    return "fail" if high < threshold else "inconclusive"


def drop_verdict(drop: float, p_value: float, drop_low: float | None, max_drop: float, alpha: float) -> str:
    """fail on a drop larger than tolerated that sampling noise does not explain: the exact
    test rejects "no change" at alpha and, when some drop is tolerated, the drop's lower
    bound (one-sided, at 1 − alpha) is above it too; inconclusive when only the estimate is."""
    if drop <= max_drop:
        return "pass"
    beyond = max_drop == 0 or (drop_low is not None and drop_low > max_drop)
    return "fail" if p_value < alpha and beyond else "inconclusive"
