"""Every benchmark, in one command (`make bench`), in about 15 minutes on 2 cores; it
ends with the fan-out table (floor, Spread streaming and not, plain litellm, start-up).

    .venv/bin/python bench/run_all.py [--quick]

Prints one JSON line per measurement and appends them all to one file,
bench/results/<UTC stamp>-all.jsonl; every line carries the machine's core count and
load. The loopback server, the client and (for the app) the browser share the
machine's cores: on a machine with other work running, compare only figures measured
in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fanout  # noqa: E402
from measure import ROOT, Results  # noqa: E402

BENCH = ROOT / "bench"


def run(argv: list[str], timeout_s: float = 600) -> str:
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {result.stderr[-3000:]}")
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition each (a minute or two)")
    args = parser.parse_args()
    repeat = "1" if args.quick else "3"
    results = Results("all")
    path = str(results.path)
    start = time.perf_counter()
    # These write their JSON lines to the shared file themselves.
    subprocess.run([sys.executable, str(BENCH / "bench_fanout.py"), "--repeat", repeat, "--results", path],
                   cwd=ROOT, check=True)
    subprocess.run([sys.executable, str(BENCH / "bench_crash.py"), "--repeat", repeat, "--results", path],
                   cwd=ROOT, check=True)
    subprocess.run([sys.executable, str(BENCH / "bench_app.py"), "--calls", "2000" if args.quick else "10000",
                    "--close-starter", "--results", path], cwd=ROOT, check=True)
    subprocess.run([sys.executable, str(BENCH / "bench_store.py"), "--repeat", repeat, "--results", path],
                   cwd=ROOT, check=True)
    # These print one JSON object each: one line apiece here.
    for name, argv in [
        ("spread_analysis", [str(BENCH / "bench_spread.py"), "--repeat", repeat]),
        ("startup", [str(BENCH / "bench_startup.py"), "--repeat", repeat]),
        ("local_model", [str(BENCH / "bench_local_model.py"), "--repeat", repeat]),
        ("local_load", [str(BENCH / "bench_local_load.py"), "--repeat", repeat]),
    ]:
        results.add({"kind": "median", "case": name, **json.loads(run(argv))})
    # `spread serve` under load: one line per mode (always k, adaptive).
    for line in run([str(BENCH / "bench_serve.py"), "--requests", "100" if args.quick else "300"]).splitlines():
        results.add({"case": "serve", **json.loads(line)})
    results.add({"kind": "total", "case": "run_all", "seconds": round(time.perf_counter() - start, 1)})
    # The fan-out table again, last, where it cannot scroll away.
    lines = [json.loads(line) for line in results.path.read_text().splitlines()]
    print(bench_fanout.table([r for r in lines if r.get("bench") == "fanout" and r["kind"] == "median"],
                             next((r for r in lines if r.get("kind") == "startup"), {})))
    print(f"results: {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
