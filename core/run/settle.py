"""Sample each cell until it is settled: the stopping rule and its anytime-valid interval.

A run planned with `until_settled` samples its cells in rounds (`FIRST_ROUND` samples,
then `ROUND` more at a time) instead of N at once. After each round every open cell's
answers are clustered by meaning exactly as the Spread page clusters them (the run's
method, threshold, extract mode and reviewers' decisions: the judge is handed in by the
caller, since clustering lives in core/analyse), and a cell stops when

- the interval of its consistency (the share of its largest meaning) is narrower than
  the run's precision W, **and** that meaning holds a majority both in the answers and
  with confidence (lower bound > 1/2): a cell the Spread page shows as split (no
  meaning with a majority) never stops early; or
- it has `max_n` samples (`stopped_by = "max_n"`; `settled` is then whether it met the
  precision rule anyway).

The interval: a cell's answers X_1, X_2, … are its meanings in sample order. Y_t is 1 when
X_t has the meaning most of X_1 … X_{t-1} had (ties: the earliest seen), so that the
reference is fixed before X_t is seen; E[Y_t | past] = p_{R_t} ≤ p_max (the consistency),
and p_{R_t} = p_max once the reference is the true largest meaning. For the share of
Y we use Robbins' mixture martingale (H. Robbins, "Statistical methods related to the
law of the iterated logarithm", Ann. Math. Statist. 41, 1970; as a confidence sequence in
Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric, nonasymptotic confidence
sequences", Ann. Statist. 49, 2021, §3): for each candidate share m,

    M_t(m) = ∫ Π_i (θ/m)^{Y_i} ((1-θ)/(1-m))^{1-Y_i} dπ(θ)

is a nonnegative martingale with mean 1 when the share is m, so by Ville's inequality
P(∃t: M_t(m) ≥ 1/α) ≤ α, and {m : M_t(m) < 1/α} covers m at every t at once: at a
stopping time chosen from the data too, which is what adaptive stopping needs. The
prior π puts weight `PRIOR_ON_AGREEMENT` on "every answer agrees" (θ = 1) and the rest on
a uniform θ: most cells of real runs agree completely, and this lets such a cell settle
at 10 samples instead of about 15, at the price of a wider interval for the others.
Coverage under this optional stopping is checked by simulation in bench/bench_settle.py
and tests/test_settle.py.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from core.store import Store, responses, runs, settling

LEVEL = 0.95
FIRST_ROUND = 5  # samples every cell takes before any may stop
ROUND = 5  # samples an open cell takes in each later round
DEFAULT_PRECISION = 0.3
PRIOR_ON_AGREEMENT = 0.9
_GRID = np.linspace(0.0005, 0.9995, 1000)  # candidate shares; bounds are rounded outwards to it


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    n: int  # the comparisons it rests on (answers after the first)

    @property
    def width(self) -> float:
        return self.high - self.low


def agreement(meanings: Sequence[Hashable]) -> np.ndarray:
    """Y_t for t ≥ 2: 1 where answer t has the meaning most earlier answers had (the
    earliest seen wins a tie), else 0. The reference is fixed before answer t is seen."""
    counts: dict = {}
    first_seen: dict = {}
    out = []
    for t, meaning in enumerate(meanings):
        if counts:
            reference = max(counts, key=lambda k: (counts[k], -first_seen[k]))
            out.append(1 if meaning == reference else 0)
        counts[meaning] = counts.get(meaning, 0) + 1
        first_seen.setdefault(meaning, t)
    return np.array(out, dtype=np.int64)


def _log_mixture(successes: np.ndarray, trials: np.ndarray, grid: np.ndarray, prior_on_one: float) -> np.ndarray:
    """log M_t(m) for each (successes, trials) row and each grid share m: shape (rows, grid)."""
    from scipy.special import betaln

    s = successes[:, None].astype(float)
    t = trials[:, None].astype(float)
    m = grid[None, :]
    log_null = s * np.log(m) + (t - s) * np.log1p(-m)
    uniform = math.log1p(-prior_on_one) + betaln(s + 1, t - s + 1) - log_null
    if prior_on_one <= 0:
        return uniform
    all_agree = np.where(s == t, math.log(prior_on_one) - t * np.log(m), -np.inf)
    return np.logaddexp(uniform, all_agree)


def interval(y: Sequence[int], *, level: float = LEVEL, prior_on_one: float = PRIOR_ON_AGREEMENT) -> Interval:
    """The confidence sequence's interval for the share of Y after these observations."""
    y = np.asarray(y, dtype=np.int64)
    low, high = intervals(np.array([y.sum()]), np.array([len(y)]), level=level, prior_on_one=prior_on_one)
    return Interval(float(low[0]), float(high[0]), len(y))


def intervals(successes: np.ndarray, trials: np.ndarray, *, level: float = LEVEL,
              prior_on_one: float = PRIOR_ON_AGREEMENT) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised `interval` over many (successes, trials) at once: (lows, highs)."""
    successes, trials = np.asarray(successes), np.asarray(trials)
    inside = _log_mixture(successes, trials, _GRID, prior_on_one) < math.log(1 / (1 - level))
    step = _GRID[1] - _GRID[0]
    any_inside = inside.any(axis=1)
    first = np.argmax(inside, axis=1)
    last = len(_GRID) - 1 - np.argmax(inside[:, ::-1], axis=1)
    low = np.where(any_inside, np.maximum(_GRID[first] - step, 0.0), 0.0)
    high = np.where(any_inside, np.minimum(_GRID[last] + step, 1.0), 1.0)
    low = np.where(first == 0, 0.0, low)  # the CS reaches the grid's edge: reach the edge of [0, 1]
    high = np.where(last == len(_GRID) - 1, 1.0, high)
    return low, high


@dataclass(frozen=True)
class Decision:
    n: int  # samples taken (answers and errors)
    settled: bool
    stopped_by: str | None  # "precision", "max_n", or None while the cell is still open
    consistency: float | None  # the share of the largest meaning in the answers
    low: float
    high: float

    def as_dict(self) -> dict:
        return {"n": self.n, "settled": self.settled, "stopped_by": self.stopped_by, "consistency": self.consistency,
                "consistency_low": self.low, "consistency_high": self.high}


def decide(meanings: Sequence[Hashable], *, taken: int, precision: float, max_n: int,
           level: float = LEVEL) -> Decision:
    """Whether a cell stops, from its answers' meanings in sample order (errors left out)
    and the samples taken so far (errors included)."""
    y = agreement(meanings)
    bounds = interval(y, level=level)
    consistency = None
    if meanings:
        counts: dict = {}
        for meaning in meanings:
            counts[meaning] = counts.get(meaning, 0) + 1
        consistency = max(counts.values()) / len(meanings)
    # Never stop a split cell: its largest meaning must hold a majority, in the answers and
    # beyond doubt, before a narrow interval may end its sampling.
    settled = (consistency is not None and consistency > 0.5 and bounds.low > 0.5
               and bounds.width < precision)
    stopped_by = "precision" if settled else ("max_n" if taken >= max_n else None)
    return Decision(taken, settled, stopped_by, consistency, bounds.low, bounds.high)


def next_samples(taken: int, max_n: int) -> range:
    """The sample indices an open cell takes in its next round."""
    end = FIRST_ROUND if taken < FIRST_ROUND else taken + ROUND
    return range(taken, min(end, max_n))


def check_options(precision: float, max_n: int) -> None:
    """One line for each bad setting, before anything is written."""
    from core.config import SpreadError

    if not 0 < precision < 1:
        raise SpreadError(f"--precision must be in (0, 1), not {precision:g}")
    if max_n < FIRST_ROUND:
        raise SpreadError(f"--max-n {max_n} is below the first round ({FIRST_ROUND} samples per cell)")


# --- the engine's rounds --------------------------------------------------------------


class Rounds:
    """What the engine samples next in a run planned `until_settled` (runner.execute's
    `rounds`): every cell's first round, then, after each round is stored, one more round
    of each cell still open. Decisions are stored as they are made (core/store/settling.py):
    a cell once stopped stays stopped, on a resume too."""

    def __init__(self, store: Store, run_id: int, spec, judge):
        # judge(store, run_id) -> per cell (variant, input, model, temperature), its answers'
        # meanings in sample order, clustered as the Spread page clusters them
        # (core/analyse/settled.py, handed in by whoever runs the engine: analysis comes
        # after the engine in the packages' order).
        self.store, self.run_id, self.spec, self.judge = store, run_id, spec, judge
        self.rounds = 0

    async def first(self, todo: list) -> list:
        """The cells to sample now, from the plan's missing ones."""
        return await asyncio.to_thread(self._plan, set(todo))

    async def next(self, todo: list | None = None) -> list:
        return await asyncio.to_thread(self._plan, set(todo) if todo is not None else None)

    def _plan(self, missing: set | None) -> list:
        spec = self.spec
        with self.store.connection() as db:
            stopped = {key: d for key, d in settling.load(db, self.run_id).items() if d["stopped_by"]}
            taken = settling.samples_taken(db, self.run_id)
            if missing is None:
                missing = set(c for c in spec.cells(runs.get_run(db, self.run_id)["spec"]["n_inputs"])
                              if c not in responses.done_cells(db, self.run_id))
        meanings = self.judge(self.store, self.run_id) if taken else {}
        missing_of: dict[tuple, set] = {}
        for cell in missing:
            missing_of.setdefault(cell[:4], set()).add(cell[4])
        keys = sorted(set(missing_of) | set(taken), key=repr)
        decisions, todo = {}, []
        for key in keys:
            if key in stopped:
                continue
            n = taken.get(key, 0)
            absent = missing_of.get(key, set())
            gaps = sorted(s for s in absent if s < n)  # samples lost to a crash, or errors retried
            if n:
                decision = decide(meanings.get(key, []), taken=n, precision=spec.precision, max_n=spec.n)
                decisions[key] = decision.as_dict()
                if decision.stopped_by:
                    continue
            todo += [(*key, s) for s in gaps] + [(*key, s) for s in next_samples(n, spec.n) if s in absent]
        with self.store.connection() as db:
            settling.save(db, self.run_id, decisions)
        self.rounds += 1
        return todo


def fewest_samples(precision: float, max_n: int) -> int:
    """The fewest samples a cell can stop at: one whose answers all agree, round by round."""
    n = 0
    while n < max_n:
        n = next_samples(n, max_n).stop
        if decide([0] * n, taken=n, precision=precision, max_n=max_n).stopped_by:
            return n
    return max_n


def expected_range(spec) -> dict:
    """Before a run sampled until settled: the calls it makes at fewest (every cell agrees
    from the start) and at most (no cell settles before N)."""
    cells = spec.planned() // spec.n
    fewest = fewest_samples(spec.precision, spec.n)
    return {"samples_per_cell_fewest": fewest, "samples_per_cell_most": spec.n,
            "calls_fewest": cells * fewest, "calls_most": cells * spec.n, "precision": spec.precision}
