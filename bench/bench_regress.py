"""The regression gate's false-alarm rate and power (a measurement, not a test).

End to end: a loopback stub answers each golden item right with a fixed probability
(the item's pass rate), `spread regress` samples the set, scores every sample by
meaning, and gates the candidate against a baseline regress run made the same way.
With nothing changed, the share of failed gates is the false-alarm rate (it must stay
at or below alpha), and the share of inconclusive ones how often the data cannot tell.
Each repetition draws a new baseline and a new candidate: against one fixed baseline
the alarms are not independent (a lucky baseline makes every candidate look worse),
and their share says little about the gate. Then, by simulation of the same test, the
smallest drop in every item's pass rate that the gate catches 80% of the time.

    .venv/bin/python bench/bench_regress.py [--runs 200] [--items 20] [--k 10]
"""

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from openai_stub import StubOpenAI  # noqa: E402

from core.analyse import stats  # noqa: E402
from core.evaluate import power, regress  # noqa: E402
from core.review import golden  # noqa: E402
from core.store import Store  # noqa: E402


def make_set(db: Path, items: int, seed: int) -> list[tuple[str, float]]:
    """A golden set of `items` questions, each with a right and a wrong answer and a pass rate."""
    rates = power.item_rates(items, seed)
    golden.create_set(Store(db), "bench")
    golden.add_items(Store(db), "bench", [golden.Item(prompt=f"What is the code word of item {i}?", reference=f"Word{i}",
                                           accepted=[f"Word{i}"], rejected=[f"Other{i}"], item_key=f"item{i}")
                               for i in range(items)])
    return [(f"item {i}?", float(rate)) for i, rate in enumerate(rates)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="baseline and candidate pairs of regress runs")
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    db = tmp / "bench.db"
    os.environ["SPREAD_DB"] = str(db)
    items = make_set(db, args.items, seed=0)
    rng = random.Random(1)

    def respond(body):
        prompt = body["messages"][-1]["content"]
        for i, (marker, rate) in enumerate(items):
            if prompt.endswith(marker):
                return f"Word{i}" if rng.random() < rate else f"Other{i}"
        return "?"

    candidate = regress.Candidate(model="openai/stub", temperature=1.0, n=args.k, concurrency=32)
    gates = regress.Gates(alpha=args.alpha)
    started = time.perf_counter()
    alarms = inconclusive = 0
    with StubOpenAI() as stub:
        stub.respond = respond
        candidate.api_base = stub.base_url
        for run in range(args.runs):
            baseline = asyncio.run(regress.regress(Store(db), "bench", candidate, regress.Gates()))
            result = asyncio.run(regress.regress(Store(db), "bench", candidate, gates,
                                                 baseline_id=baseline["regress_id"]))
            alarms += result["gate"] == "fail"
            inconclusive += result["gate"] == "inconclusive"
            if (run + 1) % 20 == 0:
                print(f"  {run + 1}/{args.runs} runs, {alarms} false alarms, {inconclusive} inconclusive",
                      file=sys.stderr)
    low, high = stats.wilson(alarms, args.runs)
    measured = {"measurement": "regress_false_alarm_rate", "end_to_end": True, "items": args.items, "k": args.k,
                "alpha": args.alpha, "runs": args.runs, "false_alarms": alarms,
                "rate": round(alarms / args.runs, 4), "rate_ci": [round(low, 4), round(high, 4)],
                "inconclusive": inconclusive, "inconclusive_rate": round(inconclusive / args.runs, 4),
                "wall_s": round(time.perf_counter() - started, 1), "cores": os.cpu_count()}
    print(json.dumps(measured))
    detectable = power.smallest_detectable_drop(items=args.items, k=args.k, alpha=args.alpha, runs=400)
    simulated_null = power.simulate(items=args.items, k=args.k, alpha=args.alpha, runs=2000)
    for name, row in (("regress_power_80", detectable), ("regress_false_alarm_simulated", simulated_null)):
        print(json.dumps({"measurement": name, **row}))
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    with (out / f"regress-{time.strftime('%Y%m%d-%H%M%S')}.jsonl").open("w") as f:
        for row in (measured, {"measurement": "regress_power_80", **detectable},
                    {"measurement": "regress_false_alarm_simulated", **simulated_null}):
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
