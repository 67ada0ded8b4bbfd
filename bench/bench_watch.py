"""A monitor's alarms at an hourly cadence, by simulation (a measurement, not a test).

A golden set of 20 items (true pass rates from Beta(4, 1), as bench_gate.py) is checked
every hour with K samples per item against a baseline drawn once per monitor with
4 × K samples per item (a `first` baseline, monitors.BASELINE_FACTOR). Measured:

1. the slow-slide test (core/watch/drift.py: CUSUM on the per-check pass rate, reference
   pooled from the baseline and the first WARMUP checks) on an unchanged model: alarms per
   30 days (after an alarm the CUSUM restarts, as the monitor's state would clear), and
   the share of monitors that alarm at least once in 30 days; for several thresholds H;
2. its detection delay for a 10-point drop in every item's pass rate that starts after
   the warm-up (median and 90th percentile, in checks = hours), and for 5 and 3 points;
3. the per-check gate (the exact stratified test, `--max-drop 0`, at the monitor's alpha)
   on an unchanged model: fails per 30 days, the baseline held fixed over the month as a
   monitor holds it.

    .venv/bin/python bench/bench_watch.py [--monitors 400] [--k 5]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.evaluate import gate  # noqa: E402
from core.watch import drift, monitors  # noqa: E402

ITEMS = 20
MONTH = 30 * 24  # hourly checks in 30 days
WARMUP_IN_USE = drift.WARMUP


def checks(rng, rates: np.ndarray, k: int, count: int) -> np.ndarray:
    """Per-check pass rates (mean over items of passes / k), shape (count,)."""
    return (rng.binomial(k, rates, size=(count, len(rates))) / k).mean(axis=1)


def cusum_alarms(history: np.ndarray, reference: float, se: float, h: float) -> list[int]:
    """Indexes at which the CUSUM alarms, restarting after each alarm."""
    value, alarms = 0.0, []
    for t, rate in enumerate(history):
        value = max(0.0, value + (reference - rate) / se - drift.K)
        if value > h:
            alarms.append(t)
            value = 0.0
    return alarms


def monitor_setup(rng, k: int):
    """True item rates, and the baseline's observed ones (a `first` baseline: BASELINE_FACTOR × k samples)."""
    rates = rng.beta(4, 1, ITEMS)
    kb = monitors.BASELINE_FACTOR * k
    baseline_items = rng.binomial(kb, rates) / kb
    return rates, baseline_items


def null_run(rng, k: int, h: float, months: int) -> tuple[int, bool]:
    rates, baseline_items = monitor_setup(rng, k)
    history = checks(rng, rates, k, drift.WARMUP + months * MONTH)
    reference = (baseline_items.mean() + history[:drift.WARMUP].sum()) / (drift.WARMUP + 1)
    se = drift.check_error(list(baseline_items), k)
    alarms = cusum_alarms(history[drift.WARMUP:], reference, se, h)
    return len(alarms), bool(alarms and alarms[0] < MONTH)


def delay_run(rng, k: int, h: float, drop: float, lead: int = 48, horizon: int = 24 * 14) -> int | None:
    rates, baseline_items = monitor_setup(rng, k)
    before = checks(rng, rates, k, drift.WARMUP + lead)
    after = checks(rng, np.clip(rates - drop, 0, 1), k, horizon)
    reference = (baseline_items.mean() + before[:drift.WARMUP].sum()) / (drift.WARMUP + 1)
    se = drift.check_error(list(baseline_items), k)
    alarms = cusum_alarms(np.concatenate([before[drift.WARMUP:], after]), reference, se, h)
    true_alarms = [t - lead for t in alarms if t >= lead]
    return true_alarms[0] + 1 if true_alarms else None


def gate_null(rng, k: int, alpha: float, checks_per_monitor: int) -> float:
    """Fails per check of the gate on an unchanged model, the baseline fixed per monitor."""
    rates = rng.beta(4, 1, ITEMS)
    kb = monitors.BASELINE_FACTOR * k
    base = rng.binomial(kb, rates)
    fails = 0
    for _ in range(checks_per_monitor):
        now = rng.binomial(k, rates)
        drop = (base / kb - now / k).mean()
        if drop <= 0:
            continue
        p = gate.stratified_p_value([(int(a), k, int(b), kb) for a, b in zip(now, base)])
        fails += gate.drop_verdict(drop, p, None, 0.0, alpha) == "fail"
    return fails / checks_per_monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=400)
    parser.add_argument("--months", type=int, default=3)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--thresholds", default="6,7,8,9,10")
    parser.add_argument("--drops", default="0.10,0.05,0.03", help="drops of every item's pass rate to detect")
    parser.add_argument("--gate-monitors", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=drift.WARMUP, help="checks pooled into the reference")
    args = parser.parse_args()
    drift.WARMUP = args.warmup
    started = time.perf_counter()
    rows = []
    for h in [float(x) for x in args.thresholds.split(",")]:
        rng = np.random.default_rng(1)
        null = [null_run(rng, args.k, h, args.months) for _ in range(args.monitors)]
        row = {"measurement": "watch_slow_slide", "items": ITEMS, "k": args.k, "allowance_k": drift.K,
               "threshold_h": h, "warmup": drift.WARMUP, "monitors": args.monitors,
               "false_alarms_per_30_days": round(sum(n for n, _ in null) / (args.monitors * args.months), 3),
               "share_alarming_within_30_days": round(sum(first for _, first in null) / args.monitors, 3),
               "in_use": h == drift.H and args.warmup == WARMUP_IN_USE}
        for drop in [float(x) for x in args.drops.split(",")]:
            delays = [delay_run(rng, args.k, h, drop) for _ in range(args.monitors)]
            found = sorted(d for d in delays if d is not None)
            points = f"{round(drop * 100)}pt"
            row.update({f"detected_within_14_days_{points}": round(len(found) / args.monitors, 3),
                        f"delay_checks_median_{points}": float(np.median(found)) if found else None,
                        f"delay_checks_p90_{points}": float(np.percentile(found, 90)) if found else None})
        rows.append(row)
        print(json.dumps(rows[-1]), flush=True)
    rng = np.random.default_rng(2)
    per_check = np.mean([gate_null(rng, args.k, monitors.DEFAULT_ALPHA, MONTH) for _ in range(args.gate_monitors)])
    rows.append({"measurement": "watch_gate_unchanged", "items": ITEMS, "k": args.k, "alpha": monitors.DEFAULT_ALPHA,
                 "monitors": args.gate_monitors, "fails_per_check": round(float(per_check), 5),
                 "fails_per_30_days_hourly": round(float(per_check) * MONTH, 3)})
    print(json.dumps(rows[-1]), flush=True)
    rows.append({"measurement": "watch_bench_wall_s", "wall_s": round(time.perf_counter() - started, 1),
                 "cores": os.cpu_count()})
    print(json.dumps(rows[-1]))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with (out / f"watch-{time.strftime('%Y%m%d-%H%M%S')}.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
