"""`spread db copy` of a 10,000-answer run (a measurement, not a test).

    .venv/bin/python bench/bench_copy.py [--answers 10000] [--repeat 3] [--no-postgres]

A SQLite file holding one run of N answers, a label on one answer in ten (with its
history) and an embedding per distinct text, copied file to file, and, when Debian's
PostgreSQL is installed, file to a fresh PostgreSQL database (a temporary server on a
loopback port, as the tests start) and back. One JSON line per case: seconds (median)
and rows per second.
"""

import argparse
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
from core.store import copy as store_copy


def populate(path: str, answers: int) -> None:
    with Store(path).connection() as db:
        run_id = runs.create_run(db, spec={"prompt": "Q", "models": ["m"], "temperatures": [1.0], "n": answers},
                                  planned=answers)
        responses.save_responses(db, [
            {"run_id": run_id, "model": "openai/bench-a", "temperature": 1.0, "sample_idx": i,
             "text": f"The capital of France is Paris ({i % 50}).", "finish_reason": "stop", "prompt_tokens": 12,
             "completion_tokens": 6, "latency_ms": 201.0, "ttft_ms": 200.5, "attempts": 1} for i in range(answers)])
        embeddings.save_embeddings(db, "minilm", {f"h{k}": bytes(384 * 4) for k in range(50)}, 384)
        with write(db):
            stamp = now_iso()
            for table in ("labels", "label_history"):
                db[table].insert_all({"response_id": i + 1, "reviewer": "ana", "verdict": "pass",
                                      **({"changed_at": stamp} if table == "label_history"
                                         else {"created_at": stamp, "updated_at": stamp})}
                                     for i in range(0, answers, 10))


def timed(source: str, target: str) -> tuple[float, int]:
    start = time.perf_counter()
    counts = store_copy.copy(source, target)
    return time.perf_counter() - start, sum(counts.values())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--results", help="append to this file")
    args = parser.parse_args()
    results = Results("copy", Path(args.results) if args.results else None)
    server = None
    if not args.no_postgres:
        from pg_server import PostgresServer

        try:
            server = PostgresServer().init()
        except RuntimeError:
            server = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            source = f"{tmp}/source.db"
            populate(source, args.answers)
            cases = {"sqlite_to_sqlite": lambda k: timed(source, f"{tmp}/copy{k}.db")}
            if server:
                cases["sqlite_to_postgres"] = lambda k: timed(source, server.new_database())
                cases["postgres_to_sqlite"] = lambda k: timed(pg_source, f"{tmp}/back{k}.db")
                pg_source = server.new_database()
                store_copy.copy(source, pg_source)
            for name, case in cases.items():
                runs = [case(k) for k in range(args.repeat)]
                seconds = statistics.median(s for s, _ in runs)
                results.add({"kind": "median", "case": name, "answers": args.answers, "rows": runs[0][1],
                             "seconds": round(seconds, 3), "rows_per_s": round(runs[0][1] / seconds),
                             "runs": len(runs)})
    finally:
        if server:
            server.close()


if __name__ == "__main__":
    main()
