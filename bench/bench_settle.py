"""Sampling until settled: coverage of the reported intervals under optional stopping, and calls saved.

10,000 cells whose true consistencies are spread like real runs (70% ≥ 0.9, of which a
share agrees completely; 20% between 0.6 and 0.9; 10% below 0.6), each sampled in rounds
by core/run/settle.py's rule (first round 5, then 5 more while open) up to `--max-n`. For
each cell: the samples it took, whether it stopped by precision, and whether the interval
reported at its stop holds its true consistency (the share of its largest meaning).
Compared with a fixed design that samples every cell N=20 times.

    .venv/bin/python bench/bench_settle.py [--cells 10000] [--max-n 20 40] [--precision 0.3] [--peek]

`--peek` adds what no valid rule can beat by much, as a yardstick for the saving: the same
answers, each cell looked at after every single sample with a fixed-n 95% Wilson interval
(the narrowest interval in common use) and stopped at the first look where that interval
is narrower than W with its lower bound above 1/2. Peeking like this breaks the interval's
coverage (its row shows by how much); an anytime-valid rule is wider at every look, so it
saves less.

Meanings are drawn as categories: the largest with the cell's consistency, the rest split
evenly into smaller ones. The meaning judge is taken as exact here (the simulation
checks the statistics, not the clustering).
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.run import settle  # noqa: E402


def consistencies(rng: np.random.Generator, cells: int, all_agree: float) -> np.ndarray:
    kind = rng.choice(3, size=cells, p=[0.7, 0.2, 0.1])
    p = np.where(kind == 0, rng.uniform(0.9, 1.0, cells),
                 np.where(kind == 1, rng.uniform(0.6, 0.9, cells), rng.uniform(0.2, 0.6, cells)))
    p[(kind == 0) & (rng.random(cells) < all_agree)] = 1.0
    return p


def draw(rng: np.random.Generator, p_max: float, n: int) -> np.ndarray:
    rest = 1.0 - p_max
    parts = math.ceil(rest / p_max) + 1 if rest > 1e-12 else 0
    probs = np.array([p_max] + [rest / parts] * parts) if parts else np.array([1.0])
    return rng.choice(len(probs), size=n, p=probs / probs.sum())


def simulate(p: np.ndarray, rng: np.random.Generator, max_n: int, precision: float) -> dict:
    taken = np.zeros(len(p), dtype=int)
    covered = np.zeros(len(p), dtype=bool)
    by_precision = np.zeros(len(p), dtype=bool)
    widths = np.zeros(len(p))
    for k, p_max in enumerate(p):
        answers = draw(rng, p_max, max_n)
        n = 0
        while True:
            n = settle.next_samples(n, max_n).stop
            decision = settle.decide(list(answers[:n]), taken=n, precision=precision, max_n=max_n)
            if decision.stopped_by:
                break
        taken[k] = n
        by_precision[k] = decision.stopped_by == "precision"
        covered[k] = decision.low <= p_max <= decision.high
        widths[k] = decision.high - decision.low
    return {"taken": taken, "covered": covered, "by_precision": by_precision, "widths": widths}


def wilson(k: np.ndarray, n: np.ndarray, z: float = 1.959964) -> tuple[np.ndarray, np.ndarray]:
    share = k / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def peek(p: np.ndarray, rng: np.random.Generator, max_n: int, precision: float) -> dict:
    """The yardstick of `--peek`: a fixed-n Wilson interval looked at after every sample."""
    taken = np.full(len(p), max_n)
    covered = np.zeros(len(p), dtype=bool)
    by_precision = np.zeros(len(p), dtype=bool)
    widths = np.zeros(len(p))
    for k, p_max in enumerate(p):
        answers = draw(rng, p_max, max_n)
        counts = np.zeros(answers.max() + 1, dtype=int)
        for n, meaning in enumerate(answers, start=1):
            counts[meaning] += 1
            largest = counts.max()
            low, high = wilson(np.float64(largest), np.float64(n))
            if (largest / n > 0.5 and low > 0.5 and high - low < precision) or n == max_n:
                taken[k], by_precision[k] = n, n < max_n or (low > 0.5 and high - low < precision)
                covered[k], widths[k] = low <= p_max <= high, high - low
                break
    return {"taken": taken, "covered": covered, "by_precision": by_precision, "widths": widths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--max-n", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--precision", type=float, default=settle.DEFAULT_PRECISION)
    parser.add_argument("--all-agree", type=float, default=0.5,
                        help="share of the ≥ 0.9 cells whose answers all agree (consistency exactly 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--peek", action="store_true",
                        help="add the yardstick: a fixed-n Wilson interval peeked at after every sample")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    p = consistencies(rng, args.cells, args.all_agree)
    fixed_calls = 20 * args.cells
    rows = []
    designs = [(max_n, "until settled", simulate) for max_n in args.max_n]
    designs += [(max_n, "peeking Wilson (not valid)", peek) for max_n in args.max_n] if args.peek else []
    for max_n, design, sample in designs:
        started = time.perf_counter()
        out = sample(p, rng, max_n, args.precision)
        groups = {"all": np.ones(len(p), bool), "p = 1": p == 1.0, "0.9 ≤ p < 1": (p >= 0.9) & (p < 1),
                  "0.6 ≤ p < 0.9": (p >= 0.6) & (p < 0.9), "p < 0.6": p < 0.6}
        row = {"design": design, "max_n": max_n, "precision": args.precision, "cells": args.cells, "all_agree": args.all_agree,
               "calls": int(out["taken"].sum()), "fixed_n20_calls": fixed_calls,
               "saved_vs_fixed_n20": round(1 - out["taken"].sum() / fixed_calls, 3),
               "coverage": round(float(out["covered"].mean()), 4),
               "seconds": round(time.perf_counter() - started, 1), "groups": {}}
        for name, where in groups.items():
            row["groups"][name] = {
                "cells": int(where.sum()), "mean_n": round(float(out["taken"][where].mean()), 2),
                "stopped_by_precision": round(float(out["by_precision"][where].mean()), 3),
                "coverage": round(float(out["covered"][where].mean()), 4),
                "mean_width": round(float(out["widths"][where].mean()), 3)}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
