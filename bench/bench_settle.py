"""Sampling until settled: coverage of the reported intervals under optional stopping, and calls saved.

10,000 cells whose true consistencies are spread like real runs (70% ≥ 0.9, of which a
share agrees completely; 20% between 0.6 and 0.9; 10% below 0.6), each sampled in rounds
by core/run/settle.py's rule (first round 5, then 5 more while open) up to `--max-n`. For
each cell: the samples it took, whether it stopped by precision, and whether the interval
reported at its stop holds its true consistency (the share of its largest meaning).
Compared with a fixed design that samples every cell N=20 times.

    .venv/bin/python bench/bench_settle.py [--cells 10000] [--max-n 20 40] [--precision 0.3]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--max-n", type=int, nargs="+", default=[20, 40])
    parser.add_argument("--precision", type=float, default=settle.DEFAULT_PRECISION)
    parser.add_argument("--all-agree", type=float, default=0.5,
                        help="share of the ≥ 0.9 cells whose answers all agree (consistency exactly 1)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    p = consistencies(rng, args.cells, args.all_agree)
    fixed_calls = 20 * args.cells
    rows = []
    for max_n in args.max_n:
        started = time.perf_counter()
        out = simulate(p, rng, max_n, args.precision)
        groups = {"all": np.ones(len(p), bool), "p = 1": p == 1.0, "0.9 ≤ p < 1": (p >= 0.9) & (p < 1),
                  "0.6 ≤ p < 0.9": (p >= 0.6) & (p < 0.9), "p < 0.6": p < 0.6}
        row = {"max_n": max_n, "precision": args.precision, "cells": args.cells, "all_agree": args.all_agree,
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
