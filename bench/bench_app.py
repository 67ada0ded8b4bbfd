"""The fan-out through the app, and whether the app stays responsive meanwhile (a
measurement, not a test).

    .venv/bin/python bench/bench_app.py [--calls 10000] [--concurrency 100] [--latency 0.2]

Starts the loopback server and `streamlit run app.py` (headless Chromium drives it),
records a small finished run, then:
- idle: opens the Runs page on that small run several times (open to drawn);
- starts a run of M calls from the Playground (two models × five temperatures, "Calls
  in flight" C, API base the loopback server) and, while it is in flight, opens the
  same Runs page again and again: its render time must stay within 1.5× of idle;
- reports the run's own wall time (started_at to finished_at in the store), the ideal
  ceil(M / C) × L, the ratio and the peak concurrency the server saw;
- then runs the same grid with `spread run` against the same server, and reports the
  app's wall over the CLI's, both by the store's clock (app_over_cli).
One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback import Loopback  # noqa: E402
from measure import ROOT, Results  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
TEMPERATURES = ["0", "0.5", "1", "1.5", "2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_app(db: str, log_path: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(log_path, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=dict(os.environ, SPREAD_DB=db), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("streamlit did not start")


def small_run(db: str, api_base: str) -> None:
    subprocess.run([sys.executable, "-m", "core.cli", "--db", db, "run", "--prompt", "What is the capital of France?",
                    "--model", "openai/bench-a", "--temperature", "1", "--n", "8", "--api-base", api_base, "--json"],
                   cwd=ROOT, check=True, capture_output=True)


def render_s(page, url: str) -> float:
    """Open the Runs page on run 1 and wait until it is drawn."""
    start = time.perf_counter()
    page.goto(f"{url}/runs?run=1")
    page.get_by_text("Run 1: done").wait_for(timeout=120_000)
    return time.perf_counter() - start


def start_run_from_playground(page, url: str, api_base: str, calls: int, concurrency: int) -> None:
    page.goto(url)
    page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of France?")
    models = page.get_by_role("combobox").first
    # Replace the preselected embedded model by the two loopback models.
    page.get_by_role("button", name="Clear all").first.click()
    for model in ("openai/bench-a", "openai/bench-b"):
        models.fill(model)
        models.press("Enter")
    page.keyboard.press("Escape")
    # Two models × five temperatures: N stays within its cap of 1,000 up to 10,000 calls.
    page.get_by_role("textbox", name="Temperatures").fill(", ".join(TEMPERATURES))
    page.get_by_role("spinbutton", name="Samples (N)").fill(str(calls // (2 * len(TEMPERATURES))))
    page.get_by_role("textbox", name="API base (OpenAI-compatible server)").fill(api_base)
    page.get_by_role("spinbutton", name="Calls in flight").fill(str(concurrency))
    page.get_by_role("button", name="Run", exact=True).click()


def store_wall_s(row: dict) -> float:
    """A run's wall by the store's clock: started_at (the engine began) to finished_at."""
    return (datetime.fromisoformat(row["finished_at"]) - datetime.fromisoformat(row["started_at"])).total_seconds()


def cli_run(db: str, api_base: str, calls: int, concurrency: int) -> dict:
    """`spread run` of the Playground run's grid: its own wall_s, and the store's clock as for the app's run."""
    argv = [sys.executable, "-m", "core.cli", "--db", db, "run", "--prompt", "What is the capital of France?",
            "--n", str(calls // (2 * len(TEMPERATURES))), "--concurrency", str(concurrency), "--api-base", api_base,
            "--model", "openai/bench-a", "--model", "openai/bench-b", "--json"]
    for t in TEMPERATURES:
        argv += ["--temperature", t]
    out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True)
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": summary["wall_s"], "store_wall_s": round(store_wall_s(run_row(db, summary["run_id"])), 3)}


def run_row(db: str, run_id: int) -> dict | None:
    try:
        with sqlite3.connect(db) as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("select status, started_at, finished_at, planned from runs where id = ?",
                               [run_id]).fetchone()
            received = conn.execute("select count(*) from responses where run_id = ?", [run_id]).fetchone()[0]
    except sqlite3.Error:
        return None
    return dict(row) | {"received": received} if row else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--idle-renders", type=int, default=5)
    parser.add_argument("--close-starter", action="store_true",
                        help="close the page that started the run (else it shows the live progress throughout)")
    parser.add_argument("--results", help="append to this file")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    results = Results("app", Path(args.results) if args.results else None)
    with tempfile.TemporaryDirectory() as tmp, Loopback(latency_s=args.latency) as server:
        db = f"{tmp}/app.db"
        small_run(db, server.base_url)
        app, url = serve_app(db, f"{tmp}/streamlit.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-gpu", "--no-first-run",
                                                  "--disable-background-networking"])
                viewer = browser.new_page(viewport={"width": 1400, "height": 1000})
                starter = browser.new_page(viewport={"width": 1400, "height": 1000})
                # A first small run from the Playground: the app server imports litellm once
                # (to check model ids), as it does for its first run of the day.
                start_run_from_playground(starter, url, server.base_url, 10, 4)
                while (run_row(db, 2) or {}).get("status") not in ("done", "cancelled"):
                    time.sleep(0.2)
                render_s(viewer, url)  # first open: imports, caches
                idle = [render_s(viewer, url) for _ in range(args.idle_renders)]
                server.reset()
                start_run_from_playground(starter, url, server.base_url, args.calls, args.concurrency)
                if args.close_starter:
                    starter.get_by_text("Run 3:").first.wait_for(timeout=60_000)
                    starter.close()  # the run goes on without its page
                busy, row = [], None
                deadline = time.time() + 900
                while time.time() < deadline:
                    row = run_row(db, 3)
                    if row and row["status"] in ("done", "cancelled"):
                        break
                    if row and row["status"] == "running" and row["received"] < row["planned"] * 0.9:
                        busy.append(render_s(viewer, url))
                    else:
                        time.sleep(0.2)
                browser.close()
        finally:
            app.terminate()
            app.wait(timeout=30)
        stats = server.stats()
        cli = cli_run(db, server.base_url, args.calls, args.concurrency)  # the same grid, beside it
    wall = store_wall_s(row)
    ideal = math.ceil(args.calls / args.concurrency) * args.latency
    idle_s, busy_s = statistics.median(idle), statistics.median(busy) if busy else None
    results.add({"kind": "median", "case": "playground_run", "calls": args.calls, "concurrency": args.concurrency,
                 "latency_s": args.latency, "status": row["status"], "answers": row["received"],
                 "wall_s": round(wall, 3), "ideal_s": round(ideal, 3), "ratio": round(wall / ideal, 3),
                 "peak_in_flight": stats["peak_in_flight"], "server_cpu_s": stats["cpu_s"]})
    results.add({"kind": "median", "case": "cli_run_same_grid", "calls": args.calls, "concurrency": args.concurrency,
                 "wall_s": cli["wall_s"], "store_wall_s": cli["store_wall_s"],
                 "app_over_cli": round(wall / cli["store_wall_s"], 3)})
    results.add({"kind": "median", "case": "runs_page_render", "idle_s": round(idle_s, 3),
                 "in_flight_s": round(busy_s, 3) if busy_s else None,
                 "in_flight_over_idle": round(busy_s / idle_s, 2) if busy_s else None,
                 "idle_s_all": [round(x, 3) for x in idle], "in_flight_s_all": [round(x, 3) for x in busy]})


if __name__ == "__main__":
    main()
