"""Fan-out speed: `spread run` against a loopback OpenAI-compatible server that answers
every call after exactly L seconds, beside the floor (a bare aiohttp client, bench/floor.py)
and plain `asyncio.gather` over `litellm.acompletion`, in the same run (a measurement,
not a test); and Spread's start-up, measured at the same server.

    .venv/bin/python bench/bench_fanout.py [--repeat 3] [--latency 0.2] [--workloads 2000@100,10000@500]

Workloads: M calls at concurrency C over two models × five temperatures (2,000 at 100,
10,000 at 500). Per repetition each contender runs once, in an order that rotates, so a
noisy neighbour hurts them alike. One JSON line per measurement, then one per workload
and contender with medians, then the start-up figures (bench/results/<stamp>-fanout.jsonl),
and a table of it all as ratios to the floor:

- wall_s: the contender's own clock (`spread run --json`'s wall_s; for the floor and plain
  litellm, the gather): from the first call to the last answer (stored, for Spread),
  imports done;
- ratio_to_floor: wall_s / the floor's median wall_s (the floor: POST, parse the JSON
  answer); ratio_to_floor_stream: the same against the floor that streams (parses every
  event), for the contenders that stream;
- process_wall_s: the whole command, imports included;
- ideal_s: ceil(M / C) × L; ratio: wall_s / ideal_s; calls_per_s: M / wall_s;
- cpu_s: user + system CPU of the command's whole process tree (sampler processes
  included); server_cpu_s: the loopback server's, same interval;
- peak_rss_mb: the tree's summed RSS at its peak (forked workers share pages: an upper
  bound); peak_in_flight: the most calls the server had open at once.

Start-up (kind "startup", medians of --repeat): `spread run` of one call, from the command
to its request at the server (first_request_s); `spread --help` and `spread runs`, the
whole command; the app's run worker for a large run (`python -m core.execution.launch`, what
the Playground starts for 1,000 calls or more), from the command to its first request.

The server runs in its own process and shares the machine's cores with the client.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback import Loopback  # noqa: E402
from measure import ROOT, Results, become_subreaper, last_json, run_command  # noqa: E402

WORKLOADS = [(2000, 100), (10000, 500)]
MODELS = ["openai/bench-a", "openai/bench-b"]
TEMPERATURES = ["0", "0.5", "1", "1.5", "2"]
CONTENDERS = "floor,floor-stream,spread-stream,spread-no-stream,plain-litellm"
PLAIN_LITELLM_MAX_CALLS = 2000  # beyond, plain litellm takes minutes per repetition


def spread_argv(db: str, calls: int, concurrency: int, api_base: str, stream: bool,
                temperatures: list[str] = TEMPERATURES) -> list[str]:
    """`spread run` of `calls` calls over both models and the given temperatures."""
    n = calls // (len(MODELS) * len(temperatures))
    argv = [sys.executable, "-m", "core.cli", "--db", db, "run", "--prompt", "What is the capital of France?",
            "--n", str(n), "--concurrency", str(concurrency), "--api-base", api_base, "--json"]
    for model in MODELS:
        argv += ["--model", model]
    for t in temperatures:
        argv += ["--temperature", t]
    return argv + ([] if stream else ["--no-stream"])


def client_argv(script: str, calls: int, concurrency: int, api_base: str, stream: bool) -> list[str]:
    argv = [sys.executable, str(ROOT / "bench" / script), "--api-base", api_base, "--calls", str(calls),
            "--concurrency", str(concurrency)] + (["--stream"] if stream else [])
    for model in MODELS:
        argv += ["--model", model]
    for t in TEMPERATURES:
        argv += ["--temperature", t]
    return argv


def measure(server: Loopback, contender: str, calls: int, concurrency: int, tmp: str, env: dict) -> dict:
    stream = contender.endswith("stream") and not contender.endswith("no-stream")
    if contender.startswith("spread"):
        argv = spread_argv(f"{tmp}/{contender}-{calls}-{os.getpid()}.db", calls, concurrency, server.base_url, stream)
    else:
        script = "floor.py" if contender.startswith("floor") else "plain_litellm.py"
        argv = client_argv(script, calls, concurrency, server.base_url, stream)
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


def startup(server: Loopback, tmp: str, env: dict, repeat: int) -> dict:
    """Spread's start-up at the server (medians): see the module's docstring."""
    spread = [sys.executable, "-m", "core.cli"]
    db = f"{tmp}/startup-{os.getpid()}.db"
    rows = []
    for _ in range(repeat):
        row = {}
        server.reset()
        started = time.time()
        out = run_command(spread + ["--db", db, "run", "--prompt", "What is the capital of France?", "--model",
                                    MODELS[0], "--temperature", "1", "--n", "1", "--api-base", server.base_url,
                                    "--json"], env=env)
        if out["returncode"] != 0:
            raise RuntimeError(f"spread run failed: {out['stderr'][-2000:]}")
        row["run_first_request_s"] = server.stats()["first_request_at"] - started
        row["run_process_wall_s"] = out["process_wall_s"]
        row["help_s"] = run_command(spread + ["--help"], env=env)["process_wall_s"]
        row["runs_s"] = run_command(spread + ["--db", db, "runs"], env=env)["process_wall_s"]
        # The app's worker for a large run: plan one (not timed), then start its process.
        plan_one = (f"from core.run import plan; from core.store import Store; print(plan.create(Store(), plan.RunSpec(prompt='Hi', models={MODELS!r}, "
                    f"temperatures=[1.0], n=500, concurrency=100, api_base={server.base_url!r})))")
        run_id = subprocess.run([sys.executable, "-c", plan_one], env=dict(env, SPREAD_DB=db), cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split()[-1]
        server.reset()
        started = time.time()
        out = run_command([sys.executable, "-m", "core.execution.launch", run_id], env=dict(env, SPREAD_DB=db))
        if out["returncode"] != 0:
            raise RuntimeError(f"the detached run failed: {out['stderr'][-2000:]}")
        row["worker_first_request_s"] = server.stats()["first_request_at"] - started
        rows.append(row)
    out = {key: round(statistics.median(r[key] for r in rows), 3) for key in rows[0]}
    return out | {"runs": len(rows), "all": [{k: round(v, 3) for k, v in r.items()} for r in rows]}


def table(medians: list[dict], start: dict) -> str:
    """The issue's table: each contender's median wall and its ratio to the floor."""
    names = list(dict.fromkeys(m["contender"] for m in medians))
    lines = ["workload      " + "".join(f"{name:>22}" for name in names)]
    for workload in dict.fromkeys(m["workload"] for m in medians):
        cells = {m["contender"]: m for m in medians if m["workload"] == workload}
        row = f"{workload:<14}"
        for name in names:
            m = cells.get(name)
            row += f"{'—':>22}" if m is None else f"{m['wall_s']:>9.2f} s ({m['ratio_to_floor']:.2f}×) "
        lines.append(row)
    if start:
        lines.append(f"start-up: spread run -> first request {start['run_first_request_s']:.2f} s, "
                     f"app run worker -> first request {start['worker_first_request_s']:.2f} s, "
                     f"spread --help {start['help_s']:.2f} s, spread runs {start['runs_s']:.2f} s")
    lines.append(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--workloads", default=",".join(f"{m}@{c}" for m, c in WORKLOADS),
                        help="comma-separated CALLS@CONCURRENCY")
    parser.add_argument("--contenders", default=CONTENDERS)
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up measurements")
    parser.add_argument("--results", help="append to this file instead of a new one")
    args = parser.parse_args()
    become_subreaper()
    results = Results("fanout", Path(args.results) if args.results else None)
    workloads = [tuple(int(x) for x in w.split("@")) for w in args.workloads.split(",")]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SPREAD_DB", None)
    all_medians, start = [], {}
    with Loopback(latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        for calls, concurrency in workloads:
            contenders = [c for c in args.contenders.split(",")
                          if c != "plain-litellm" or calls <= PLAIN_LITELLM_MAX_CALLS]
            rows: dict[str, list[dict]] = {c: [] for c in contenders}
            for rep in range(args.repeat):
                order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
                for contender in order:
                    row = measure(server, contender, calls, concurrency, tmp, env)
                    rows[contender].append(results.add({"kind": "run", "rep": rep, **row}))
            summary = {c: medians(r) for c, r in rows.items()}
            for contender, med in summary.items():
                for floor, key in (("floor", "ratio_to_floor"), ("floor-stream", "ratio_to_floor_stream")):
                    if floor in summary and (key == "ratio_to_floor" or med["stream"]):
                        med[key] = round(med["wall_s"] / summary[floor]["wall_s"], 3)
                baseline = summary.get("plain-litellm")
                if baseline and contender != "plain-litellm":
                    med["speedup_vs_plain_litellm"] = round(baseline["wall_s"] / med["wall_s"], 2)
                all_medians.append(results.add({"kind": "median", **med}))
        if not args.no_startup:
            start = results.add({"kind": "startup", **startup(server, tmp, env, args.repeat)})
    print(table(all_medians, start))


if __name__ == "__main__":
    main()
