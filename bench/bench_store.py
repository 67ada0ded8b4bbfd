"""Store writes per second (a measurement, not a test).

    .venv/bin/python bench/bench_store.py [--rows 5000] [--repeat 3] [--postgres]

- one_per_transaction: what the engine did before core/run/writer.py, one connection
  and one transaction per answer;
- writer_burst: core/run/writer.py with every row queued at once (its ceiling);
- writer_paced: the writer fed at 500 answers/s, as a fast run delivers them: the
  transactions it needs and the longest an answer waited in memory before its commit
  (what a SIGKILL could lose).
One JSON line per measurement (median of the repetitions). With --postgres, the same
cases against a temporary PostgreSQL server on a loopback port (as the tests start one),
each repetition in a fresh database.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from measure import Results  # noqa: E402

from core.store import Store, embeddings, now_iso, responses, runs, write  # noqa: E402
from core.run.writer import Writer  # noqa: E402


def new_run(db: str, rows: int) -> int:
    with Store(db).connection() as conn:
        return runs.create_run(conn, spec={"prompt": "Q", "models": ["m"], "temperatures": [1.0], "n": rows},
                                planned=rows)


def row(run_id: int, i: int) -> dict:
    return {"run_id": run_id, "model": "openai/bench-a", "temperature": 1.0, "sample_idx": i,
            "text": "The capital of France is Paris.", "finish_reason": "stop", "prompt_tokens": 12,
            "completion_tokens": 6, "latency_ms": 201.0, "ttft_ms": 200.5, "attempts": 1,
            "provider_model": "bench-a-bench"}


def one_per_transaction(db: str, rows: int) -> dict:
    run_id = new_run(db, rows)
    start = time.perf_counter()
    for i in range(rows):
        with Store(db).connection() as conn:
            responses.save_response(conn, row(run_id, i))
    return {"rows_per_s": rows / (time.perf_counter() - start), "transactions": rows}


def writer(db: str, rows: int, per_s: float | None) -> dict:
    run_id = new_run(db, rows)

    async def feed():
        w = Writer(Store(db))
        start = time.perf_counter()
        for i in range(rows):
            if per_s:
                delay = start + i / per_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            w.put(row(run_id, i))
        await w.close()
        return w, time.perf_counter() - start

    w, elapsed = asyncio.run(feed())
    assert w.written == rows
    return {"rows_per_s": rows / elapsed, "transactions": w.transactions, "max_lag_ms": w.max_lag_ms}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--results", help="append to this file")
    parser.add_argument("--postgres", action="store_true", help="measure on PostgreSQL instead of a SQLite file")
    args = parser.parse_args()
    results = Results("store", Path(args.results) if args.results else None)
    server = None
    if args.postgres:
        from pg_server import PostgresServer

        server = PostgresServer().init()
    cases = {
        "one_per_transaction": lambda db: one_per_transaction(db, min(args.rows, 2000)),
        "writer_burst": lambda db: writer(db, args.rows, None),
        "writer_paced_500_per_s": lambda db: writer(db, min(args.rows, 2000), 500.0),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, case in cases.items():
                runs = [case(server.new_database() if server else f"{tmp}/{name}{k}.db") for k in range(args.repeat)]
                out = {"kind": "median", "case": name, "engine": "postgresql" if server else "sqlite",
                       "runs": len(runs)}
                for key in runs[0]:
                    out[key] = round(statistics.median(r[key] for r in runs), 2)
                out["rows_per_s_all"] = [round(r["rows_per_s"]) for r in runs]
                results.add(out)
    finally:
        if server:
            server.close()


if __name__ == "__main__":
    main()
