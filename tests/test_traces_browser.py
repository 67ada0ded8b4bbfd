"""End to end in a real headless Chromium: an app's OTLP exporter sends its LLM spans to
`spread collect`, and the Traces page of a running server shows how production answered."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from conftest import ROOT
from otel_traces import Recorder, current_chat
from test_browser import goto, page, pytestmark, served_app  # noqa: F401 (fixtures and the skip)


def test_spans_sent_to_collect_show_on_the_traces_page(served_app, page):  # noqa: F811
    url, db_path = served_app
    env = {**os.environ, "COLLECT_TOKEN": "tok-browser-1"}
    collector = subprocess.Popen([sys.executable, "-m", "core.cli", "--db", str(db_path), "collect", "--port", "0",
                                  "--token-env", "COLLECT_TOKEN"], cwd=ROOT, env=env, stderr=subprocess.PIPE,
                                 text=True)
    try:
        endpoint = collector.stderr.readline().split(" at ", 1)[1].split(" into ", 1)[0]
        app = Recorder(service="shop-api")
        for k in range(4):
            current_chat(app, "What is the capital of France?", "Paris." if k < 3 else "<b>Lyon</b> is the capital.")
        exporter = OTLPSpanExporter(endpoint=endpoint, headers={"Authorization": "Bearer tok-browser-1"}, timeout=10)
        assert exporter.export(app.exporter.get_finished_spans()) == SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        collector.send_signal(signal.SIGTERM)
        collector.communicate(timeout=20)

    page.goto(url)
    goto(page, "Traces")
    page.get_by_text("How production's answers spread").wait_for(timeout=30_000)
    page.get_by_text("75%", exact=True).first.wait_for(timeout=90_000)  # 3 of 4 answers share the top meaning
    page.get_by_text("1 answers (25%)").click()
    page.get_by_text("<b>Lyon</b> is the capital.").first.wait_for(timeout=15_000)  # text, never markup
    assert page.locator("b", has_text="Lyon").count() == 0
