"""Pass, fail or inconclusive: what the gate's verdict means, by simulation (a measurement, not a test).

1. The issue's case: a baseline at 12% (three items at 1 of 5, two at 0 of 5) and a
   candidate at 0 of 25, `--max-drop 0`: the verdict on those counts, and the share of
   verdicts over many draws from those true rates.
2. An unchanged candidate (20 items × K=10, pass rates from Beta(4, 1); also with a
   tolerated drop, and fewer samples): how often the gate fails (a false alarm: at most
   alpha) and how often it cannot tell.
3. The samples per item an inconclusive verdict names: at that K, how often the gate
   then fails (the aim is 80%).
4. Sampled until settled (core/evaluate/sequential.py), against the fixed design on the
   same cases: false alarms on an unchanged candidate, power on each drop case (at the
   fixed design's K, and with one more round), and the samples per item used.

    .venv/bin/python bench/bench_gate.py [--runs 2000]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.evaluate import gate, power, sequential  # noqa: E402

ISSUE_BASELINE = [0.2, 0.2, 0.2, 0.0, 0.0]
ISSUE_CANDIDATE = [0.0] * 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=gate.DEFAULT_ALPHA)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = []

    strata = [(0, 5, round(rate * 5), 5) for rate in ISSUE_BASELINE]
    p_value = gate.stratified_p_value(strata)
    rows.append({"measurement": "gate_issue_case_observed", "baseline": "3/25 (12%)", "candidate": "0/25",
                 "p_value": round(p_value, 4), "verdict": gate.drop_verdict(0.12, p_value, None, 0.0, args.alpha),
                 "samples_to_settle": power.samples_for_drop(ISSUE_BASELINE, ISSUE_CANDIDATE, alpha=args.alpha)})
    issue = power.simulate(k=5, rates=ISSUE_BASELINE, candidate_rates=ISSUE_CANDIDATE, alpha=args.alpha,
                           runs=args.runs, seed=11)
    rows.append({"measurement": "gate_issue_case_simulated", **issue,
                 "pass_rate_of_verdicts": round(1 - issue["rate"] - issue["inconclusive_rate"], 4)})

    for items, k, max_drop in ((20, 10, 0.0), (20, 10, 0.02), (20, 10, 0.05), (20, 5, 0.0), (5, 5, 0.0)):
        null = power.simulate(items=items, k=k, max_drop=max_drop, alpha=args.alpha, runs=args.runs)
        rows.append({"measurement": "gate_unchanged_candidate", **null})

    for name, base, after in (("one item 20% -> 0%", [0.2], [0.0]), ("issue case", ISSUE_BASELINE, ISSUE_CANDIDATE),
                              ("20 items, each 5 points worse", power.item_rates(20),
                               (power.item_rates(20) - 0.05).clip(0, 1)),
                              ("10 items 90% -> 80%", [0.9] * 10, [0.8] * 10)):
        k = power.samples_for_drop(base, after, alpha=args.alpha)
        at_k = power.simulate(k=k, rates=base, candidate_rates=after, alpha=args.alpha, runs=min(args.runs, 1000),
                              seed=5)
        rows.append({"measurement": "gate_samples_to_settle", "case": name, "samples_named": k,
                     "fails_at_that_k": at_k["rate"], "inconclusive_at_that_k": at_k["inconclusive_rate"],
                     "runs": at_k["runs"]})

    for name, base, after in (("unchanged 20 items", power.item_rates(20), power.item_rates(20)),
                              ("unchanged 5 items", power.item_rates(5), power.item_rates(5)),
                              ("one item 20% -> 0%", [0.2], [0.0]), ("issue case", ISSUE_BASELINE, ISSUE_CANDIDATE),
                              ("20 items, each 5 points worse", power.item_rates(20),
                               (power.item_rates(20) - 0.05).clip(0, 1)),
                              ("10 items 90% -> 80%", [0.9] * 10, [0.8] * 10),
                              ("10 items 90% -> 40%", [0.9] * 10, [0.4] * 10)):
        k = 10 if name.startswith("unchanged") or "40%" in name else power.samples_for_drop(base, after,
                                                                                               alpha=args.alpha)
        runs = min(args.runs, 1000)
        fixed = sequential.simulate_fixed(rates=base, candidate_rates=after, baseline_k=k, k=k, alpha=args.alpha,
                                          runs=runs, seed=5)
        for max_k in (k, k + sequential.ROUND):
            adaptive = sequential.simulate(rates=base, candidate_rates=after, baseline_k=k, max_k=max_k,
                                           alpha=args.alpha, runs=runs, seed=5)
            rows.append({"measurement": "gate_sequential", "case": name, "baseline_k": k, "max_k": max_k,
                         "fixed_fail_rate": fixed["rate"], "sequential_fail_rate": adaptive["rate"],
                         "fixed_calls_per_run": fixed["calls_per_run"],
                         "sequential_calls_per_run": adaptive["calls_per_run"],
                         "sequential_mean_k": adaptive["mean_k_used"],
                         "sequential_inconclusive_rate": adaptive["inconclusive_rate"], "runs": runs})

    for row in rows:
        row.update(cores=os.cpu_count())
        print(json.dumps(row))
    print(json.dumps({"measurement": "gate_bench_wall_s", "wall_s": round(time.perf_counter() - started, 1)}))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with (out / f"gate-{time.strftime('%Y%m%d-%H%M%S')}.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
