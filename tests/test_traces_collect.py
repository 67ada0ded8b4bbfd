"""`spread collect`: the real OTLP/HTTP exporter of opentelemetry-exporter-otlp-proto-http
sends spans to the receiver on loopback; what it acknowledged is in the store."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult

from conftest import ROOT
from otel_traces import Recorder, current_chat, shared

from core import config
from core.formats.traces.collector import Collector
from core.store import Store
from core.store import traces as stored


@pytest.fixture
def collector():
    server = Collector(shared(), "127.0.0.1", 0, token="s3cret-token", quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stored_calls():
    with shared().connection() as db:
        return stored.calls(db)


def test_the_otlp_http_exporter_with_gzip_and_a_token_is_stored_before_it_is_acknowledged(collector):
    r = Recorder()
    for k in range(3):
        current_chat(r, f"Question {k}", f"Answer {k}")
    r.span("GET /", {"http.request.method": "GET"})
    exporter = OTLPSpanExporter(endpoint=collector.url, headers={"Authorization": "Bearer s3cret-token"},
                                compression=Compression.Gzip, timeout=10)
    assert exporter.export(r.exporter.get_finished_spans()) == SpanExportResult.SUCCESS
    calls = stored_calls()  # acknowledged: already in the store
    assert sorted(c["output_text"] for c in calls) == ["Answer 0", "Answer 1", "Answer 2"]
    assert {c["source"] for c in calls} == {"collector"} and collector.totals.skipped == 1
    assert exporter.export(r.exporter.get_finished_spans()) == SpanExportResult.SUCCESS  # a retry: nothing added
    assert len(stored_calls()) == 3 and collector.totals.duplicates == 3
    exporter.shutdown()


def test_a_wrong_token_is_refused_and_nothing_stored(collector):
    r = Recorder()
    current_chat(r, "Q", "A")
    exporter = OTLPSpanExporter(endpoint=collector.url, headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert exporter.export(r.exporter.get_finished_spans()) == SpanExportResult.FAILURE
    assert stored_calls() == []
    exporter.shutdown()


def post(url, body: bytes, content_type: str, **headers):
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": content_type, "Authorization": "Bearer s3cret-token", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_json_bodies_and_partial_success(collector):
    r = Recorder()
    current_chat(r, "Fine", "Yes")
    r.span("chat broken", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                           "gen_ai.output.messages": "{{nope"})
    status, body = post(collector.url, gzip.compress(r.json().encode()), "application/json",
                        **{"Content-Encoding": "gzip"})
    assert status == 200
    answer = json.loads(body)
    assert answer["partialSuccess"]["rejectedSpans"] == "1"
    assert "gen_ai.output.messages is not valid JSON" in answer["partialSuccess"]["errorMessage"]
    assert [c["output_text"] for c in stored_calls()] == ["Yes"]

    status, body = post(collector.url, r.protobuf(), "application/x-protobuf")
    response = ExportTraceServiceResponse.FromString(body)
    assert status == 200 and response.partial_success.rejected_spans == 1


@pytest.mark.parametrize("body, content_type, status", [
    (b"\x0a\xff\xff\x03", "application/x-protobuf", 400),  # truncated
    (b"{not json", "application/json", 400),
    (b'{"hello": 1}', "application/json", 400),
    (b"x", "text/plain", 415),
])
def test_bad_bodies_are_refused_with_a_status(collector, body, content_type, status):
    assert post(collector.url, body, content_type)[0] == status
    assert stored_calls() == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_spread_collect_serves_until_interrupted(tmp_path, stop):
    # PYTHONFAULTHANDLER: a collector that does not stop prints every thread's stack on SIGABRT.
    env = {**os.environ, "SPREAD_COLLECT_TOKEN": "tok-123456", "PYTHONFAULTHANDLER": "1"}
    process = subprocess.Popen([sys.executable, "-m", "core.cli", "--db", str(tmp_path / "c.db"), "collect",
                                "--port", "0", "--token-env", "SPREAD_COLLECT_TOKEN"], cwd=ROOT, env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert "receiving OTLP traces at http://127.0.0.1:" in line and "tok-123456" not in line
        url = line.split(" at ", 1)[1].split(" into ", 1)[0]
        r = Recorder()
        current_chat(r, "Q", "A")
        exporter = OTLPSpanExporter(endpoint=url, headers={"Authorization": "Bearer tok-123456"}, timeout=10)
        assert exporter.export(r.exporter.get_finished_spans()) == SpanExportResult.SUCCESS
        exporter.shutdown()
    finally:
        process.send_signal(stop)
        try:
            rest = process.communicate(timeout=60)[1]
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            pytest.fail(f"spread collect did not stop within 60 s of {stop.name}; its threads:\n"
                        f"{process.communicate(timeout=30)[1]}")
    assert process.returncode == 0 and "1 call(s) stored from 1 request(s)" in rest
    with Store(tmp_path / "c.db").connection() as db:
        assert stored.count(db) == 1


def test_a_missing_token_variable_is_one_line():
    result = subprocess.run([sys.executable, "-m", "core.cli", "collect", "--token-env", "NOT_SET_ANYWHERE"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "NOT_SET_ANYWHERE" in result.stderr
