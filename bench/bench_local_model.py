"""Generation speed of the embedded model (a measurement, not a test).

    .venv/bin/python bench/bench_local_model.py [--tokens 64] [--repeat 3]

Prints the load time, then tokens/s for one request at a time and for four parallel
requests (the server's slots), then the same samples called directly and taken through
Spread (a run: streamed, stored) with the same settings, medians of several repetitions.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.run import local_llm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8, help="samples per comparison, direct and through Spread")
    args = parser.parse_args()
    start = time.perf_counter()
    local_llm.model_path()
    assembled = time.perf_counter() - start
    local_llm.server()
    loaded = time.perf_counter() - start - assembled
    local_llm.tokens_per_second(8)  # warm-up
    results = {"assemble_s": round(assembled, 2), "load_s": round(loaded, 2)}
    for parallel in (1, 4):
        runs = [local_llm.tokens_per_second(args.tokens, parallel) for _ in range(args.repeat)]
        results[f"tokens_per_s_parallel_{parallel}"] = round(statistics.median(runs), 1)
        results[f"tokens_per_s_parallel_{parallel}_all"] = [round(r, 1) for r in runs]
    direct, spread = [], []
    for k in range(args.repeat):
        direct.append(direct_tokens_per_second(args.tokens, args.samples, seed=k * 1000))
        spread.append(spread_tokens_per_second(args.tokens, args.samples, seed=k * 1000))
    results["samples"] = args.samples
    results["direct_tokens_per_s"] = round(statistics.median(direct), 1)
    results["through_spread_tokens_per_s"] = round(statistics.median(spread), 1)
    results["through_spread_over_direct"] = round(statistics.median(spread) / statistics.median(direct), 2)
    results["direct_all"] = [round(x, 1) for x in direct]
    results["through_spread_all"] = [round(x, 1) for x in spread]
    print(json.dumps(results, indent=2))


PROMPT = "Write a long story about a lighthouse keeper."


def direct_tokens_per_second(max_tokens: int, samples: int, seed: int) -> float:
    """The embedded model called directly, 4 at a time (its slots), Spread's default stops."""
    from concurrent.futures import ThreadPoolExecutor

    messages = [{"role": "user", "content": PROMPT}]
    start = time.perf_counter()
    with ThreadPoolExecutor(local_llm.PARALLEL_SLOTS) as pool:
        outs = list(pool.map(lambda i: local_llm.generate(messages, {"max_tokens": max_tokens, "temperature": 1.0,
                                                                     "seed": seed + i}), range(samples)))
    return sum(o["completion_tokens"] or 0 for o in outs) / (time.perf_counter() - start)


def spread_tokens_per_second(max_tokens: int, samples: int, seed: int) -> float:
    """The same samples as a Spread run (streamed, stored), timed by the engine."""
    import asyncio
    import os
    import tempfile

    from core import store
    from core.run import plan, runner

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "local.db")
        spec = plan.RunSpec(prompt=PROMPT, models=[local_llm.MODEL_ID], temperatures=[1.0], n=samples,
                            max_tokens=max_tokens, seed=seed, concurrency=local_llm.PARALLEL_SLOTS)
        summary = asyncio.run(runner.execute(plan.create(spec, db_path=db), db_path=db))
        with store.connect(db) as conn:
            tokens = sum(r["completion_tokens"] or 0 for r in store.responses(conn, summary["run_id"]))
    return tokens / summary["wall_s"]


if __name__ == "__main__":
    main()
