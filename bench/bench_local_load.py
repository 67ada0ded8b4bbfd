"""Remote latency beside the embedded model (a measurement, not a test).

    .venv/bin/python bench/bench_local_load.py [--repeat 3] [--n 24] [--latency-ms 50] [--no-app]

The loopback server (bench/loopback.py, its own process) answers every call after
`--latency-ms`. A run samples it N times, with `spread run`: alone; then beside the
embedded model (N samples of SmolLM2 in the same run), its remote calls in the engine's
process next to the local model's threads (SPREAD_SAMPLER_PROCESSES=0), and in a sampler
process of their own (the default for such a run). Then the same mixed run started from
the Playground (the app, headless Chromium; the loopback server as an endpoint of the
Models page, the plan from the draft): it runs in a process of its own. For each case,
the medians over the repetitions of the remote model's latency as stored (p50, p90,
max, ms): what is above `--latency-ms` is this machine's, not the provider's.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_app import CHROMIUM, serve_app  # noqa: E402
from loopback import Loopback  # noqa: E402
from measure import ROOT  # noqa: E402

from core.store import Store, embeddings, now_iso, responses, runs, write  # noqa: E402
from core.models import endpoints, local_llm  # noqa: E402
from core.run import drafts  # noqa: E402

REMOTE = "bench-remote"  # the loopback server as an endpoint
CLI_CASES = {  # name: (models besides the remote one, SPREAD_SAMPLER_PROCESSES)
    "cli_alone": ([], None),
    "cli_beside_embedded_same_process": ([local_llm.DEFAULT_MODEL], "0"),
    "cli_beside_embedded_sampler_process": ([local_llm.DEFAULT_MODEL], None),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n", type=int, default=24, help="samples per model")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--no-app", action="store_true", help="the command-line cases only")
    args = parser.parse_args()
    results = {"remote_latency_ms": args.latency_ms, "n": args.n, "load_avg_1m": round(os.getloadavg()[0], 2)}
    cases = {**CLI_CASES, **({} if args.no_app else {"app_beside_embedded": None})}
    with Loopback(latency_s=args.latency_ms / 1000) as server, tempfile.TemporaryDirectory() as home:
        for case, how in cases.items():
            runs = []
            for k in range(args.repeat):
                db = str(Path(home) / f"{case}-{k}.db")
                endpoints.add(Store(db), endpoints.Endpoint(REMOTE, "openai/bench-a", api_base=server.base_url))
                if how is None:
                    app_run(db, args.n, Path(home) / f"{case}-{k}.log")
                else:
                    cli_run(db, args.n, *how)
                runs.append(remote_latency(db))
            results[case] = {key: round(statistics.median(r[key] for r in runs)) for key in runs[0]}
    print(json.dumps(results, indent=2))


def cli_run(db: str, n: int, models: list[str], processes: str | None) -> None:
    argv = [sys.executable, "-m", "core.cli", "--db", db, "run", "--prompt", "Name a famous city in France.",
            "--model", REMOTE, *[a for m in models for a in ("--model", m)], "--temperature", "1", "--n", str(n),
            "--max-tokens", "48", "--concurrency", "8", "--json"]
    env = {k: v for k, v in os.environ.items() if k != "SPREAD_SAMPLER_PROCESSES"}
    subprocess.run(argv, cwd=ROOT, env=env | ({"SPREAD_SAMPLER_PROCESSES": processes} if processes else {}),
                   check=True, capture_output=True)


def app_run(db: str, n: int, log: Path) -> None:
    """The same plan from the Playground: the draft fills it, a click runs it."""
    from playwright.sync_api import sync_playwright

    drafts.save(Store(db), "", {"variants": [0], "variant_seq": 1, "prompt_0": "Name a famous city in France.",
                     "inputs_source": "none", "models": [local_llm.DEFAULT_MODEL, REMOTE], "temperatures": "1",
                     "n": n, "max_tokens": 48, "concurrency": 8})
    process, url = serve_app(db, str(log))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_text(f"{2 * n} calls").wait_for(timeout=120_000)
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Run 1: done").wait_for(timeout=600_000)
            browser.close()
    finally:
        process.terminate()
        process.wait(timeout=30)


def remote_latency(db: str) -> dict:
    with Store(db).connection() as conn:
        latencies = sorted(r["latency_ms"] for r in conn.query(
            "select latency_ms from responses where model = ? and error_type is null", [REMOTE]))
    return {"p50_ms": statistics.median(latencies), "p90_ms": latencies[int(0.9 * (len(latencies) - 1))],
            "max_ms": latencies[-1]}


if __name__ == "__main__":
    main()
