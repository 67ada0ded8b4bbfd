"""What a crash loses, per mode (a measurement, not a test): a run is killed with SIGKILL
in full flight, and the answers the server had finished sending are compared with the
answers in the store; then `spread resume` completes the run, and every cell must hold
exactly one answer.

    .venv/bin/python bench/bench_crash.py [--repeat 3] [--calls 4000] [--concurrency 64] [--kill-at 1500]

Modes: "in-process" (`spread run`, every call in the engine's process), "sampler-processes"
(`spread run` with SPREAD_SAMPLER_PROCESSES=2: calls in two forked processes, rows handed
back over a socket), "app-worker" (`python -m core.execution.launch`, the process the app
starts for a run of 1,000 calls or more). The kill hits the run's main process only, as
a crash or the OOM killer would; its sampler processes then see their socket close and
exit.

Per kill: answered (the server's count of answers sent in full, read just before the
kill), stored (answers in the store after it), lost = answered - stored (an answer the
server finished in the last instants may still be in the kernel's socket buffer: no
client could have stored it), and, after the resume, rows, distinct cells and planned, and
asked_again = the server's requests minus planned: the calls paid twice (the calls in
flight at the kill and the answers received but not yet committed). A call holds its slot
until its answer is committed, so asked_again stays within --concurrency.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fanout import MODELS, spread_argv  # noqa: E402
from loopback import Loopback  # noqa: E402
from measure import ROOT, Results  # noqa: E402

MODES = ["in-process", "sampler-processes", "app-worker"]
TEMPERATURES = ["0", "1"]


def start(mode: str, db: str, api_base: str, calls: int, concurrency: int, env: dict) -> subprocess.Popen:
    n = calls // (len(MODELS) * len(TEMPERATURES))
    if mode == "app-worker":
        plan_one = (f"from core.run import plan; from core.store import Store; print(plan.create(Store(), plan.RunSpec(prompt='What is the capital of "
                    f"France?', models={MODELS!r}, temperatures={[float(t) for t in TEMPERATURES]!r}, n={n}, "
                    f"concurrency={concurrency}, api_base={api_base!r})))")
        run_id = subprocess.run([sys.executable, "-c", plan_one], env=dict(env, SPREAD_DB=db), cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split()[-1]
        argv = [sys.executable, "-m", "core.execution.launch", run_id]  # the database from SPREAD_DB
    else:
        argv = spread_argv(db, calls, concurrency, api_base, True, TEMPERATURES)
    processes = "2" if mode == "sampler-processes" else "0"
    return subprocess.Popen(argv, cwd=ROOT, env=dict(env, SPREAD_DB=db, SPREAD_SAMPLER_PROCESSES=processes),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def count(db: str, sql: str) -> int:
    """One count from the run's store: a SQLite file, or a PostgreSQL URL (--postgres)."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as conn:
            return conn.execute(sql).fetchone()[0]
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def stored(db: str) -> int:
    return count(db, "select count(*) from responses where error_type is null")


def one_kill(server: Loopback, mode: str, tmp: str, args, env: dict, k: int, postgres=None) -> dict:
    db = postgres.new_database() if postgres else f"{tmp}/{mode}-{k}.db"
    server.reset()
    process = start(mode, db, server.base_url, args.calls, args.concurrency, env)
    while server.stats()["answered"] < args.kill_at:
        if process.poll() is not None:
            raise RuntimeError(f"{mode}: the run ended before the kill")
        time.sleep(0.01)
    answered = server.stats()["answered"]
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(1.0)  # its sampler processes, if any, notice and exit
    kept = stored(db)
    resume = subprocess.run([sys.executable, "-m", "core.cli", "--db", db, "resume", "1", "--json"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    if resume.returncode != 0:
        raise RuntimeError(f"{mode}: resume failed: {resume.stderr[-2000:]}")
    rows = count(db, "select count(*) from responses")
    cells = count(db, "select count(*) from (select distinct variant, input, model, temperature, sample_idx "
                      "from responses) as c")
    return {"mode": mode, "store": "postgresql" if postgres else "sqlite", "rep": k, "answered": answered,
            "stored": kept, "lost": answered - kept,
            "asked_again": server.stats()["requests"] - args.calls,
            "after_resume_rows": rows, "after_resume_cells": cells, "planned": args.calls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--kill-at", type=int, default=1500, help="answers sent before the kill")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--postgres", action="store_true",
                        help="store on a PostgreSQL server of its own (tests/pg_server.py) instead of SQLite files")
    parser.add_argument("--results", help="append to this file")
    args = parser.parse_args()
    results = Results("crash", Path(args.results) if args.results else None)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SPREAD_DB", None)
    postgres = None
    if args.postgres:
        sys.path.insert(0, str(ROOT / "tests"))
        from pg_server import PostgresServer

        postgres = PostgresServer().init()
    try:
        with Loopback(latency_s=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
            for mode in args.modes.split(","):
                measure(results, server, mode, tmp, args, env, postgres)
    finally:
        if postgres:
            postgres.close()


def measure(results: Results, server: Loopback, mode: str, tmp: str, args, env: dict, postgres) -> None:
    rows = [results.add({"kind": "kill", **one_kill(server, mode, tmp, args, env, k, postgres)})
            for k in range(args.repeat)]
    results.add({"kind": "median", "mode": mode, "store": "postgresql" if postgres else "sqlite",
                 "calls": args.calls, "concurrency": args.concurrency,
                 "lost_median": statistics.median(r["lost"] for r in rows),
                 "lost_max": max(r["lost"] for r in rows), "lost_all": [r["lost"] for r in rows],
                 "asked_again_all": [r["asked_again"] for r in rows],
                 "complete_after_resume": all(r["after_resume_rows"] == r["after_resume_cells"] == r["planned"]
                                              for r in rows)})

if __name__ == "__main__":
    main()
