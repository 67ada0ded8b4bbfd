"""`spread serve` under load: the latency it adds beyond the calls it waits for, requests per
second, and the calls adaptive k saves when answers agree (a measurement, not a test).

    .venv/bin/python bench/bench_serve.py [--latency 0.2] [--k 5] [--clients 50] [--requests 500] [--workers 1] [--stagger]

Set-up: the loopback server (bench/loopback.py, its own process) answers every call after
exactly L seconds with one of five wordings of "Paris"; `spread serve` runs as a command
(its own process, a fresh SQLite file) with one route of k samples of that server; C
clients (one aiohttp session each, in this process) send chat requests back to back.

Per mode (`--no-adaptive`: always k calls; adaptive: 3 first, the rest only when they
disagree), one JSON line with:
- added_p50_ms, added_p95_ms: a request's time at the client minus L (the k calls run
  in parallel, so L is the k-th slowest call's floor): everything Spread adds, HTTP in
  and out, the upstream calls' own overhead, checks, the vote, the one transaction
  that stores the request;
- server_added_p50_ms, server_added_p95_ms: from `serve_requests`: sampling and deciding
  minus the slowest call of each round, as Spread measures it (before storing);
- requests_per_s: requests / wall time; calls_per_request: calls made per request;
- calls_saved: 1 - calls made / (k × requests);
- serve_cpu_ms_per_request: `spread serve`'s own CPU time per request (user + system, all its
  `--workers` processes):
  what bounds its requests per second on a given core, whatever else runs beside it.
The results go to bench/results/<stamp>-serve.jsonl. The three processes share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from loopback import Loopback  # noqa: E402
from measure import machine  # noqa: E402

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def start_serve(base_url: str, db: str, k: int, adaptive: bool, workers: int = 1) -> tuple[subprocess.Popen, str, list[int]]:
    """`spread serve` on a free port, once every one of its `workers` processes answers;
    returns the first process, the base URL and the process ids of all of them."""
    args = [sys.executable, "-m", "core.cli", "--db", db, "serve", "--port", "0", "--route", "bench=openai/bench",
            "--k", str(k), "--api-base", base_url, "--concurrency", "1024", "--workers", str(workers)]
    if not adaptive:
        args.append("--no-adaptive")
    process = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = process.stderr.readline()
    if "listening on" not in line:
        process.kill()
        raise RuntimeError(f"spread serve did not start: {line}")
    pids, ready = [process.pid], threading.Event()

    # Its log (a line per request) is read as a deployment's collector would: a full pipe
    # would stop the server at its next line (about 500 requests in).
    def read_log():
        for line in process.stderr:
            if " answering on port " in line:
                pids.append(int(line.split("worker ")[1].split()[0]))
                if len(pids) == workers:
                    ready.set()

    threading.Thread(target=read_log, daemon=True).start()
    if workers > 1 and not ready.wait(120):
        process.kill()
        raise RuntimeError("spread serve's workers did not start")
    return process, line.split("listening on ")[1].split()[0], pids


async def load(base: str, clients: int, requests: int, stagger_s: float = 0.0) -> tuple[list[float], float]:
    """C clients sending back to back; with `stagger_s`, client i starts i/C of it late, so
    that they do not all send within the same milliseconds for the whole run."""
    import aiohttp

    latencies: list[float] = []
    left = [requests]

    async def client(i: int):
        await asyncio.sleep(stagger_s * i / clients)
        async with aiohttp.ClientSession() as session:
            while left[0] > 0:
                left[0] -= 1
                began = time.perf_counter()
                async with session.post(f"{base}/chat/completions", json={"model": "bench", "messages": QUESTION}) as r:
                    body = await r.json()
                    assert r.status == 200, body
                latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, time.perf_counter() - began


def cpu_s(pid: int) -> float:
    """A process's user + system CPU seconds so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="spread serve --workers W")
    parser.add_argument("--stagger", action="store_true",
                        help="start the clients spread over one call's latency instead of all at once")
    args = parser.parse_args()
    results = []
    with Loopback(latency_s=args.latency) as server:
        for adaptive in (False, True):
            with tempfile.TemporaryDirectory() as tmp:
                db = str(Path(tmp) / "serve.db")
                process, base, pids = start_serve(server.base_url, db, args.k, adaptive, args.workers)
                try:
                    asyncio.run(load(base, 4, 20))  # warm: connections, the meaning model's first batches
                    server.reset()
                    cpu_before = sum(cpu_s(pid) for pid in pids)
                    latencies, wall = asyncio.run(load(base, args.clients, args.requests,
                                                       args.latency if args.stagger else 0.0))
                    serve_cpu = sum(cpu_s(pid) for pid in pids) - cpu_before
                    calls = server.stats()["requests"]
                finally:
                    process.terminate()
                    process.wait(60)
                rows = sqlite3.connect(db).execute(
                    "select latency_ms - slowest_call_ms from serve_requests order by id").fetchall()[-args.requests:]
            added = [(t - args.latency) * 1000 for t in latencies]
            server_added = [row[0] for row in rows]
            result = {
                "kind": "serve", "adaptive": adaptive, "k": args.k, "latency_s": args.latency,
                "clients": args.clients, "requests": args.requests, "workers": args.workers,
                "stagger": args.stagger,
                "added_p50_ms": round(percentile(added, 50), 1), "added_p95_ms": round(percentile(added, 95), 1),
                "server_added_p50_ms": round(percentile(server_added, 50), 1),
                "server_added_p95_ms": round(percentile(server_added, 95), 1),
                "requests_per_s": round(args.requests / wall, 1), "calls_per_request": round(calls / args.requests, 2),
                "calls_saved": round(1 - calls / (args.k * args.requests), 3),
                "serve_cpu_ms_per_request": round(serve_cpu / args.requests * 1000, 1), **machine(),
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    out = ROOT / "bench" / "results" / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-serve.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in results))


if __name__ == "__main__":
    main()
