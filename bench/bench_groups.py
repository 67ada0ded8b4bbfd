"""A model group through litellm's Router against the same calls made directly (a
measurement, not a test): what routing costs a run.

    .venv/bin/python bench/bench_groups.py [--calls 400] [--concurrency 40] [--latency 0.1] [--repeat 3]
                                           [--no-stream]

Two loopback servers (bench/loopback.py, each answering after exactly L seconds, in
processes of their own). Contenders, in an order that rotates per repetition:
- direct: two catalogue endpoints, half the calls each;
- group: one endpoint, a model group of the two servers (simple-shuffle);
streamed (or whole with --no-stream), in this process, through `runner.execute`. Reported per contender, as
medians: wall_s (the engine's clock), calls_per_s, and cpu_s (this process's user +
system CPU over the run). Prints one JSON line per contender.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loopback import Loopback  # noqa: E402


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(models: list[str], calls: int, concurrency: int, stream: bool = True) -> dict:
    from core.run import plan, runner

    spec = plan.RunSpec(prompt="What is the capital of France?", models=models, temperatures=[1.0],
                        n=calls // len(models), concurrency=concurrency, stream=stream)
    from core.store import Store

    store = Store()
    run_id = plan.create(store, spec)
    before = cpu_s()
    summary = asyncio.run(runner.execute(store, run_id))
    assert summary["responses"] == calls and summary["errors"] == 0, summary
    return {"wall_s": summary["wall_s"], "cpu_s": cpu_s() - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=40)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-stream", action="store_true", help="whole answers instead of streamed ones")
    args = parser.parse_args()
    os.environ["SPREAD_DB"] = str(Path(tempfile.mkdtemp()) / "bench.db")
    os.environ["SPREAD_SAMPLER_PROCESSES"] = "0"
    from core.formats import litellm_config
    from core.models import endpoints
    from core.store import Store

    with Loopback(args.latency) as a, Loopback(args.latency) as b:
        endpoints.add(Store(), endpoints.Endpoint("direct-a", "openai/bench", api_base=a.base_url))
        endpoints.add(Store(), endpoints.Endpoint("direct-b", "openai/bench", api_base=b.base_url))
        litellm_config.apply(litellm_config.preview(
            "model_list:\n" + "".join(f"  - model_name: group\n    litellm_params: {{model: openai/bench, "
                                      f"api_base: \"{s.base_url}\"}}\n" for s in (a, b))))
        contenders = {"direct": ["direct-a", "direct-b"], "group": ["group"]}
        results: dict[str, list[dict]] = {name: [] for name in contenders}
        measure(["direct-a"], 20, 10)  # warm: imports and first connections
        for k in range(args.repeat):
            order = list(contenders)[k % 2:] + list(contenders)[:k % 2]
            for name in order:
                results[name].append(measure(contenders[name], args.calls, args.concurrency, not args.no_stream))
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        print(json.dumps({"contender": name, "calls": args.calls, "concurrency": args.concurrency,
                          "latency_s": args.latency, "repeat": args.repeat, "stream": not args.no_stream,
                          "wall_s": round(wall, 3),
                          "calls_per_s": round(args.calls / wall, 1),
                          "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3)}))


if __name__ == "__main__":
    main()
