"""App cold start (a measurement, not a test): from `streamlit run app.py` to the
Playground drawn in headless Chromium, medians of several starts.

    .venv/bin/python bench/bench_startup.py [--repeat 3]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_start(tmp: str) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port",
                               str(port)], cwd=ROOT, env=dict(os.environ, SPREAD_DB=f"{tmp}/s{port}.db"),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        healthy = time.perf_counter() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}")
            page.get_by_role("button", name="Run", exact=True).wait_for(timeout=60_000)
            drawn = time.perf_counter() - start
            browser.close()
    finally:
        server.terminate()
        server.wait()
    return healthy, drawn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [one_start(tmp) for _ in range(args.repeat)]
    print(json.dumps({
        "server_healthy_s_median": round(statistics.median(r[0] for r in results), 2),
        "playground_drawn_s_median": round(statistics.median(r[1] for r in results), 2),
        "all": [[round(a, 2), round(b, 2)] for a, b in results],
    }, indent=2))


if __name__ == "__main__":
    main()
