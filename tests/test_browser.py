"""The whole app in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

`make test` installs Chromium with apt-get; Playwright never downloads a browser here.
A failing test leaves a screenshot in tests/artifacts/.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (make test installs it)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_app(spread_home):
    """`streamlit run app.py` on a free loopback port, with its own database."""
    port = free_port()
    env = dict(os.environ, SPREAD_DB=str(spread_home / "browser.db"))
    log = open(spread_home / "streamlit.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
         "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        process.kill()
        pytest.fail("streamlit did not start: " + (spread_home / "streamlit.log").read_text()[-2000:])
    yield url, spread_home / "browser.db"
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture
def page(request):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield page
        if getattr(request.node, "failed", False):
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
        browser.close()


@pytest.mark.local_model
def test_newcomer_runs_a_small_grid_on_the_local_model(served_app, page):
    url, db_path = served_app
    page.goto(url)
    page.get_by_role("textbox", name="Prompt", exact=True).fill("What is the capital of France?")
    temperatures = page.get_by_role("textbox", name="Temperatures")
    temperatures.fill("0, 1")
    samples = page.get_by_role("spinbutton", name="Samples (N)")
    samples.fill("2")
    page.get_by_role("spinbutton", name="Max tokens").fill("12")
    page.get_by_role("button", name="Run").click()

    page.get_by_text("Run 1: running").or_(page.get_by_text("Run 1: done")).first.wait_for(timeout=60_000)
    page.get_by_text("Run 1: done").wait_for(timeout=120_000)
    page.get_by_text("4/4 samples").wait_for(timeout=10_000)

    import sqlite3

    with sqlite3.connect(db_path) as db:
        rows = db.execute("select model, temperature, error_type, text from responses").fetchall()
    assert len(rows) == 4
    assert all(model == "local/gemma-3-270m" and error is None for model, _, error, _ in rows)

    page.get_by_text("Open run 1").click()
    page.get_by_text("Run 1: done").wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "runs-page.png"), full_page=True)
