"""The gate sampled until settled: looks after each round, with the false-alarm rate kept.

`spread regress --until-settled --max-k K` samples every item `ROUND` more times per look
(k = ROUND, 2·ROUND, … up to K) and applies the gate (core/evaluate/gate.py) at each look.

Looking after every round and stopping at the first "fail" would fail an unchanged
candidate more often than alpha. So the looks split alpha (Haybittle–Peto: J. L.
Haybittle, "Repeated assessment of results in clinical trials of cancer treatment", Br.
J. Radiol. 44, 1971; R. Peto et al., Br. J. Cancer 34, 1976): every look before the last
tests at a small level `EARLY_LEVEL` (at most alpha / (5·(J−1)), so the last keeps at least
80% of alpha), and the last look at alpha minus what the early ones spent. A false alarm at
any look is a rejection at that look's level, so by the union bound P(any false alarm) ≤
Σ levels = alpha, whatever the looks' correlation and wherever sampling stops (the looks are
fixed in advance by K and ROUND). The same split holds for the min-pass-rate gate (its
one-sided 2.5%).

A look ends the sampling early only when the data is beyond doubt at that look's level:
**fail** when a gate fails, **pass** when every gate passes confidently (the pass rate's
interval wholly above the minimum; the drop's upper bound below the tolerated drop). A
pass on the point estimate alone does not stop it (that would cost power against a real
drop that happened to look small early); at K the verdict is the gate's own, at the last
look's level, inconclusive as today when the data cannot tell.

Measured in bench/bench_gate.py (`gate_sequential`): false alarms on an unchanged
candidate, power on the existing drop cases, and calls used, against the fixed design.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import numpy as np

from core.analyse import stats
from core.evaluate import gate, scoring
from core.store import Store

ROUND = 5  # samples per item added at each look
EARLY_LEVEL = 0.001  # each early look's level (Haybittle–Peto), lowered when there are many looks
MIN_PASS_RATE_ALPHA = (1 - stats.CONFIDENCE) / 2  # the min-pass-rate gate's one-sided level in the fixed design


def looks(max_k: int, round_size: int = ROUND) -> list[int]:
    """The samples per item at each look: ROUND, 2·ROUND, …, and K itself last."""
    if max_k <= round_size:
        return [max_k]
    found = list(range(round_size, max_k + 1, round_size))
    return found if found[-1] == max_k else found + [max_k]


def levels(max_k: int, alpha: float, round_size: int = ROUND) -> list[float]:
    """Each look's level: the early ones small, the last one what is left of alpha."""
    count = len(looks(max_k, round_size))
    if count == 1:
        return [alpha]
    early = min(EARLY_LEVEL, alpha / (5 * (count - 1)))
    return [early] * (count - 1) + [alpha - early * (count - 1)]


def check(max_k: int) -> None:
    from core.config import SpreadError

    if max_k < ROUND:
        raise SpreadError(f"--max-k {max_k} is below the first round ({ROUND} samples per item)")


# --- simulation (bench/bench_gate.py) ------------------------------------------------------

def simulate(*, rates, candidate_rates, baseline_k: int, max_k: int, alpha: float = gate.DEFAULT_ALPHA,
             runs: int = 500, seed: int = 0, round_size: int = ROUND) -> dict:
    """Sequential regress runs of a candidate against a baseline sampled `baseline_k` times per
    item (the drop gate, max drop 0): the share that fail, pass and stay inconclusive, and
    the samples per item used."""
    rng = np.random.default_rng(seed + 1)
    base = np.asarray(rates, dtype=float)
    after = np.asarray(candidate_rates, dtype=float)
    steps, at = looks(max_k, round_size), levels(max_k, alpha, round_size)
    counts = {verdict: 0 for verdict in gate.VERDICTS}
    used = 0
    for _ in range(runs):
        baseline = rng.binomial(baseline_k, base)
        draws = rng.random((len(base), max_k)) < after[:, None]
        verdict = "inconclusive"
        for j, (k, level) in enumerate(zip(steps, at)):
            candidate = draws[:, :k].sum(axis=1)
            verdict = look_verdict(candidate, k, baseline, baseline_k, level, last=j == len(steps) - 1)
            if verdict != "inconclusive":
                break
        counts[verdict] += 1
        used += k
    low, high = stats.wilson(counts["fail"], runs)
    return {"items": len(base), "max_k": max_k, "baseline_k": baseline_k, "alpha": alpha, "runs": runs,
            "rate": round(counts["fail"] / runs, 4), "rate_low": round(low, 4), "rate_high": round(high, 4),
            "inconclusive_rate": round(counts["inconclusive"] / runs, 4),
            "pass_rate_of_verdicts": round(counts["pass"] / runs, 4),
            "mean_k_used": round(used / runs, 2), "calls_per_run": round(used / runs * len(base), 1)}


def look_verdict(candidate, k: int, baseline, baseline_k: int, level: float, *, last: bool = True) -> str:
    """The drop gate (max drop 0) at one look, at that look's level; an early look never
    passes (with no drop tolerated, a drop's upper bound is never below 0)."""
    observed_drop = float(np.mean(np.asarray(baseline) / baseline_k) - np.mean(np.asarray(candidate) / k))
    if observed_drop <= 0:
        return "pass" if last else "inconclusive"
    p_value = gate.stratified_p_value([(int(c), k, int(b), baseline_k) for c, b in zip(candidate, baseline)])
    return gate.drop_verdict(observed_drop, p_value, None, 0.0, level)


def simulate_fixed(*, rates, candidate_rates, baseline_k: int, k: int, alpha: float = gate.DEFAULT_ALPHA,
                   runs: int = 500, seed: int = 0) -> dict:
    """The fixed design on the same draws' footing: K samples per item, one look at alpha."""
    return simulate(rates=rates, candidate_rates=candidate_rates, baseline_k=baseline_k, max_k=k, alpha=alpha,
                    runs=runs, seed=seed, round_size=k)


# --- the looks of a regress run ------------------------------------------------------------

class Looks:
    """The engine's rounds (runner.execute's `rounds`) for a regress run sampled until
    settled: after each look's samples are stored, score them, apply the gate at the look's
    level, and stop, or ask for the next look's samples. `report` is the verdict it stopped on.

    `report_at(alpha)` is the gate's report on the samples stored so far at that level
    (regress.report, handed in by the regression that owns these looks, so this module
    does not import it back)."""

    def __init__(self, store: Store, run_id: int, gates, baseline: dict | None, max_k: int,
                 report_at: Callable[[float], dict]):
        self.store, self.run_id, self.gates, self.baseline = store, run_id, gates, baseline
        self.report_at = report_at
        self.steps, self.levels = looks(max_k), levels(max_k, gates.alpha)
        self.done = 0  # looks taken
        self.report: dict | None = None
        self.history: list[dict] = []

    async def first(self, todo: list) -> list:
        self._missing = set(todo)
        return [cell for cell in todo if cell[4] < self.steps[0]]

    async def next(self) -> list:
        await scoring.score_run(self.store, self.run_id)
        verdict = await asyncio.to_thread(self._look)
        if verdict is not None:
            return []
        low, high = self.steps[self.done - 1], self.steps[self.done]
        return [cell for cell in self._missing if low <= cell[4] < high]

    def summary(self) -> dict:
        """The looks taken, each with its samples per item, level and what it decided."""
        taken = self.history[-1]["k"] if self.history else 0
        return {"looks": self.history, "levels": [round(x, 6) for x in self.levels], "planned_looks": self.steps,
                "max_k": self.steps[-1], "k_used": taken, "stopped_early": taken < self.steps[-1]}

    def _look(self) -> str | None:
        """The gate at this look: its verdict if sampling stops here, else None."""
        j = self.done
        last = j == len(self.steps) - 1
        level = self.levels[j]
        report = self.report_at(level)
        verdict = self._verdict(report, level, last)
        self.history.append({"k": self.steps[j], "level": round(level, 6), "verdict": verdict or "continue",
                             "gate": report["gate"]})
        self.done += 1
        self.report = report
        if verdict is not None:
            report["gate"] = verdict
        return verdict

    def _verdict(self, report: dict, level: float, last: bool) -> str | None:
        """fail or pass when the data is beyond doubt at this look's level; at the last look,
        the gate's own verdict; else None (sample the next look)."""
        scored = [i for i in report["items"] if i["samples"]]
        verdicts = []
        for g in report["gates"]:
            if g["gate"] == "min-pass-rate":  # its one-sided 2.5%, split as alpha is
                pass_level = MIN_PASS_RATE_ALPHA * level / self.gates.alpha
                rate, low, high = gate.pass_rate_interval([i["passes"] for i in scored],
                                                          [i["samples"] for i in scored], 1 - 2 * pass_level)
                g["low"], g["high"] = stats.rounded(low), stats.rounded(high)
                if high < g["threshold"]:
                    g["verdict"] = "fail"
                elif low > g["threshold"] or (last and rate >= g["threshold"]):
                    g["verdict"] = "pass"
                else:
                    g["verdict"] = "inconclusive"
            elif not last and g["verdict"] != "fail":  # the drop gate, already tested at this look's level
                before = {i["key"]: i for i in self.baseline["result"]["items"] if i["samples"]}
                common = [i for i in scored if i["key"] in before]
                _, change_low, _ = gate.change_interval(
                    [(i["passes"], i["samples"]) for i in common],
                    [(before[i["key"]]["passes"], before[i["key"]]["samples"]) for i in common], 1 - 2 * level)
                g["verdict"] = "pass" if -change_low < g["threshold"] else "inconclusive"
            g["passed"] = g["verdict"] == "pass"
            verdicts.append(g["verdict"])
        if not verdicts:
            return None  # no gate set (refused before a run starts): nothing to settle
        found = gate.overall(verdicts)
        return found if last or found != "inconclusive" else None
