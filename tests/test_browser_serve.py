"""End to end: an application's request through `spread serve`, then the request on the
Serve and Runs pages of the app in a real headless Chromium."""

import os
import subprocess
import sys

import openai
import pytest
from serve_harness import Answers
from test_browser import CHROMIUM, goto, page, served_app, streamlit_server  # noqa: F401  (fixtures)

from conftest import ROOT

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                       reason="Debian's chromium is not installed (make test installs it)"),
]


def test_a_served_request_is_on_the_serve_and_runs_pages(served_app, page, stub):  # noqa: F811
    url, db_path = served_app
    stub.respond = Answers("Paris.", "Paris.", "Lyon.", "Paris.", "Paris.")
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--db", str(db_path), "serve", "--port", "0",
         "--route", "capitals=openai/stub-a", "--no-adaptive", "--api-base", stub.base_url, "--method", "exact"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        base = line.split("listening on ")[1].split()[0]
        completion = openai.OpenAI(base_url=base, api_key="unused", max_retries=0).chat.completions.create(
            model="capitals", messages=[{"role": "user", "content": "What is the capital of France?"}])
    finally:
        process.terminate()
        process.wait(30)
    assert completion.model_extra["spread"]["confidence"] == 0.8

    page.goto(url)
    goto(page, "Serve")
    page.get_by_role("heading", name="Confidence").wait_for(timeout=30_000)  # the route's histogram
    page.get_by_role("heading", name="Latest requests").wait_for(timeout=30_000)
    goto(page, "Runs")
    page.get_by_text("requests served on route capitals").first.wait_for(timeout=30_000)  # its wording
