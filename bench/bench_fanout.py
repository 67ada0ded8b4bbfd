"""Fan-out speed: `spread run` against a loopback OpenAI-compatible server that answers
every call after exactly L seconds, beside plain `asyncio.gather` over
`litellm.acompletion` in the same run (a measurement, not a test).

    .venv/bin/python bench/bench_fanout.py [--repeat 3] [--latency 0.2]

Workloads: M calls at concurrency C over two models × two temperatures (200 at 20,
2,000 at 100). Per repetition each contender runs once, in an order that rotates, so a
noisy neighbour hurts them alike. One JSON line per measurement, then one per workload
and contender with medians (bench/results/<stamp>-fanout.jsonl):

- wall_s: the engine's own clock (`spread run --json`'s wall_s; for the baseline, the
  gather): from the first call to the last answer stored, litellm already imported;
- process_wall_s: the whole command, imports included;
- ideal_s: ceil(M / C) × L; ratio: wall_s / ideal_s; calls_per_s: M / wall_s;
- cpu_s: user + system CPU of the command's whole process tree (sampler processes and
  their forkserver included); server_cpu_s: the loopback server's, same interval;
- peak_rss_mb: the tree's summed RSS at its peak (forked workers share pages: an upper
  bound); peak_in_flight: the most calls the server had open at once.

The server runs in its own process and shares the machine's cores with the client.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback import Loopback  # noqa: E402
from measure import ROOT, Results, become_subreaper, last_json, run_command  # noqa: E402

WORKLOADS = [(200, 20), (2000, 100)]
MODELS = ["openai/bench-a", "openai/bench-b"]
TEMPERATURES = ["0", "1"]


def spread_argv(db: str, calls: int, concurrency: int, api_base: str, stream: bool) -> list[str]:
    n = calls // (len(MODELS) * len(TEMPERATURES))
    argv = [sys.executable, "-m", "core.cli", "--db", db, "run", "--prompt", "What is the capital of France?",
            "--n", str(n), "--concurrency", str(concurrency), "--api-base", api_base, "--json"]
    for model in MODELS:
        argv += ["--model", model]
    for t in TEMPERATURES:
        argv += ["--temperature", t]
    return argv + ([] if stream else ["--no-stream"])


def plain_argv(calls: int, concurrency: int, api_base: str, stream: bool) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "plain_litellm.py"), "--api-base", api_base, "--calls", str(calls),
            "--concurrency", str(concurrency)] + (["--stream"] if stream else [])


def measure(server: Loopback, contender: str, calls: int, concurrency: int, tmp: str, env: dict) -> dict:
    stream = contender.endswith("stream") and not contender.endswith("no-stream")
    if contender.startswith("spread"):
        argv = spread_argv(f"{tmp}/{contender}-{calls}-{os.getpid()}.db", calls, concurrency, server.base_url, stream)
    else:
        argv = plain_argv(calls, concurrency, server.base_url, stream)
    before = server.reset()
    out = run_command(argv, env=env)
    after = server.stats()
    if out["returncode"] != 0:
        raise RuntimeError(f"{contender} failed: {out['stderr'][-2000:]}")
    summary = last_json(out["stdout"])
    ideal = math.ceil(calls / concurrency) * server.latency_s
    return {
        "workload": f"{calls}@{concurrency}", "contender": contender, "calls": calls, "concurrency": concurrency,
        "latency_s": server.latency_s, "stream": stream, "wall_s": summary["wall_s"],
        "process_wall_s": out["process_wall_s"], "ideal_s": round(ideal, 3),
        "ratio": round(summary["wall_s"] / ideal, 3), "calls_per_s": round(calls / summary["wall_s"], 1),
        "cpu_s": out["cpu_s"], "server_cpu_s": round(after["cpu_s"] - before["cpu_s"], 3),
        "peak_rss_mb": out["peak_rss_mb"], "peak_rss_one_process_mb": out["peak_rss_one_process_mb"],
        "processes": out["processes"], "peak_in_flight": after["peak_in_flight"], "server_requests": after["requests"],
        "answers": summary["responses"], "errors": summary["errors"],
    }


def medians(rows: list[dict]) -> dict:
    out = {k: rows[0][k] for k in ("workload", "contender", "calls", "concurrency", "latency_s", "stream", "ideal_s")}
    for key in ("wall_s", "process_wall_s", "ratio", "calls_per_s", "cpu_s", "server_cpu_s", "peak_rss_mb",
                "peak_rss_one_process_mb"):
        out[key] = round(statistics.median(r[key] for r in rows), 3)
    out["peak_in_flight_max"] = max(r["peak_in_flight"] for r in rows)
    out["peak_in_flight_min"] = min(r["peak_in_flight"] for r in rows)
    out["runs"] = len(rows)
    out["wall_s_all"] = [r["wall_s"] for r in rows]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workloads", default=",".join(f"{m}@{c}" for m, c in WORKLOADS),
                        help="comma-separated CALLS@CONCURRENCY")
    parser.add_argument("--contenders", default="spread-stream,spread-no-stream,plain-litellm")
    parser.add_argument("--results", help="append to this file instead of a new one")
    args = parser.parse_args()
    become_subreaper()
    results = Results("fanout", Path(args.results) if args.results else None)
    workloads = [tuple(int(x) for x in w.split("@")) for w in args.workloads.split(",")]
    contenders = args.contenders.split(",")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SPREAD_DB", None)
    with Loopback(latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        for calls, concurrency in workloads:
            rows: dict[str, list[dict]] = {c: [] for c in contenders}
            for rep in range(args.repeat):
                order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
                for contender in order:
                    row = measure(server, contender, calls, concurrency, tmp, env)
                    rows[contender].append(results.add({"kind": "run", "rep": rep, **row}))
            summary = {c: medians(r) for c, r in rows.items()}
            for contender, med in summary.items():
                baseline = summary.get("plain-litellm")
                if baseline and contender != "plain-litellm":
                    med["speedup_vs_plain_litellm"] = round(baseline["wall_s"] / med["wall_s"], 2)
                results.add({"kind": "median", **med})


if __name__ == "__main__":
    main()
