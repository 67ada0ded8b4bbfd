"""`spread import-traces`: trace files made by the real OpenTelemetry SDK (and Langfuse /
OpenAI log files) into `llm_calls`, on a real SQLite file (and PostgreSQL)."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys

import pytest
import sqlite_utils

from conftest import ROOT
from otel_traces import Recorder, current_chat, shared

from core import config, store
from core.config import SpreadError
from core.formats import traces
from core.store import Store
from core.store import traces as stored

SECRET_KEY = "sk-proj-Zq8v3LmN4pR7sT1uW5xY9aBcDeFgHiJk"
SECRET_HEADER = "Bearer eyJhbGciOiJIUzI1NiJ9.secretpayload42"


def spread(*args, env=None):
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env)


def all_layouts() -> Recorder:
    """One LLM call in each layout seen in the wild, plus spans that are not LLM calls."""
    r = Recorder()
    current_chat(r, "Where is my order 1234?", "It ships tomorrow.")
    r.span("openai.chat", {  # OpenLLMetry's indexed attributes, a tool call answered
        "llm.request.type": "chat", "gen_ai.system": "OpenAI", "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.prompt.0.role": "system", "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user", "gen_ai.prompt.1.content": "Weather in Paris?",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.finish_reason": "tool_calls",
        "gen_ai.completion.0.tool_calls.0.id": "call_1",
        "gen_ai.completion.0.tool_calls.0.name": "get_weather",
        "gen_ai.completion.0.tool_calls.0.arguments": '{"city": "Paris", "unit": "C"}',
        "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5,
        "llm.request.functions.0.name": "get_weather", "llm.request.functions.0.parameters": '{"type": "object"}',
        "traceloop.prompt.key": "weather", "traceloop.prompt.version": 3})
    r.span("chat claude", {"gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",  # span events
                           "gen_ai.request.model": "claude-3-5-haiku"},
           events=[("gen_ai.system.message", {"gen_ai.event.content": json.dumps({"content": "Answer in French."})}),
                   ("gen_ai.user.message", {"gen_ai.event.content": json.dumps({"content": "Hello"})}),
                   ("gen_ai.choice", {"gen_ai.event.content": json.dumps(
                       {"index": 0, "finish_reason": "stop", "message": {"content": "Bonjour"}})})])
    r.span("ChatOpenAI", {  # OpenInference
        "openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini", "llm.provider": "openai",
        "llm.invocation_parameters": json.dumps({"temperature": 0.2}),
        "llm.input_messages.0.message.role": "system", "llm.input_messages.0.message.content": "Classify.",
        "llm.input_messages.1.message.role": "user", "llm.input_messages.1.message.content": "I love it",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": '{"label": "positive"}',
        "llm.tools.0.tool.json_schema": json.dumps({"type": "function", "function": {"name": "noop"}}),
        "llm.token_count.prompt": 7, "llm.token_count.completion": 4, "llm.cost.total": 0.00012,
        "llm.prompt_template.template": "Classify: {text}", "llm.prompt_template.variables": '{"text": "I love it"}'})
    r.span("GET /orders", {"http.request.method": "GET"})  # not LLM calls
    r.span("embeddings", {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3"})
    return r


def test_every_layout_from_sdk_protobuf_is_one_call_each_and_other_spans_are_counted(tmp_path):
    path = tmp_path / "traces.pb"
    path.write_bytes(all_layouts().protobuf())
    report = traces.import_files(shared(), [path])
    assert (report.imported, report.skipped, report.rejected) == (4, 2, 0)
    assert report.formats == {str(path): "otlp-protobuf"}
    with shared().connection() as db:
        found = stored.calls(db)
    rows = {r["model_requested"]: r for r in found if r["format"] == "otlp"}
    current = rows["gpt-4o-mini"]
    assert current["messages"] == [{"role": "system", "content": "You are a helpful shop assistant."},
                                   {"role": "user", "content": "Where is my order 1234?"}]
    assert current["model_reported"] == "gpt-4o-mini-2024-07-18" and current["service"] == "shop-api"
    assert current["parameters"] == {"temperature": 0.7, "max_tokens": 200}
    assert (current["input_tokens"], current["output_tokens"], current["finish_reason"]) == (25, 9, "stop")
    assert len(current["span_id"]) == 16 and len(current["trace_id"]) == 32 and current["latency_ms"] >= 0
    indexed = rows["gpt-4o"]
    assert indexed["output_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "C"}}]
    assert indexed["output_text"] is None and indexed["tools"][0]["function"]["name"] == "get_weather"
    assert (indexed["prompt_name"], indexed["prompt_version"]) == ("weather", "3")
    events = rows["claude-3-5-haiku"]
    assert [m["content"] for m in events["messages"]] == ["Answer in French.", "Hello"]
    assert events["output_text"] == "Bonjour" and events["finish_reason"] == "stop"
    (inference,) = [r for r in found if r["format"] == "openinference"]
    assert inference["output_json"] == {"label": "positive"} and inference["cost_usd"] == pytest.approx(0.00012)
    assert inference["prompt_variables"] == {"text": "I love it"} and inference["parameters"] == {"temperature": 0.2}
    assert inference["tools"] == [{"type": "function", "function": {"name": "noop"}}]


def test_otlp_json_of_the_same_spans_adds_nothing_and_the_cli_prints_the_contract(tmp_path):
    recorder = all_layouts()
    (tmp_path / "t.pb").write_bytes(recorder.protobuf())
    (tmp_path / "t.json").write_text(recorder.json())
    db = str(tmp_path / "cli.db")
    first = spread("--db", db, "import-traces", str(tmp_path / "t.json"), "--json")
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert {k: result[k] for k in ("imported", "skipped", "rejected")} == {"imported": 4, "skipped": 2, "rejected": 0}
    again = spread("--db", db, "import-traces", str(tmp_path / "t.pb"), str(tmp_path / "t.json"), "--json")
    result = json.loads(again.stdout.strip().splitlines()[-1])
    assert (result["imported"], result["duplicates"], result["rejected_items"]) == (0, 8, [])
    assert sqlite3.connect(db).execute("select count(*) from llm_calls").fetchone()[0] == 4


def test_collector_file_exporter_lines_and_malformed_spans_are_listed_and_skipped(tmp_path):
    good = Recorder()
    current_chat(good, "Q1", "A1")
    bad = Recorder()
    bad.span("chat x", {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
                        "gen_ai.input.messages": "[{not json"})
    bad_span = bad.exporter.get_finished_spans()[0].context.span_id.to_bytes(8, "big").hex()
    path = tmp_path / "export.jsonl"
    path.write_text(good.json() + "\n" + bad.json() + "\n" + "{truncated\n")
    report = traces.import_files(shared(), [path])
    assert (report.imported, report.rejected) == (1, 2)
    assert report.rejected_items[0]["where"] == f"span {bad_span}"
    assert "gen_ai.input.messages is not valid JSON" in report.rejected_items[0]["reason"]
    assert report.rejected_items[1]["where"] == "line 3"


def test_dry_run_writes_nothing_and_counts_the_same(tmp_path):
    path = tmp_path / "t.pb"
    path.write_bytes(all_layouts().protobuf())
    report = traces.import_files(shared(), [path], dry_run=True)
    assert (report.imported, report.skipped, report.dry_run) == (4, 2, True)
    with shared().connection() as db:
        assert stored.count(db) == 0


def test_filters_by_time_service_and_model(tmp_path):
    r = Recorder(service="billing")
    day = 1_780_000_000 * 10**9  # 2026-05-28
    current_chat(r, "Q early", "A", start=day, end=day + 10**9)
    current_chat(r, "Q late", "A", model="gpt-4.1", start=day + 86400 * 10**9, end=day + 86401 * 10**9)
    path = tmp_path / "t.pb"
    path.write_bytes(r.protobuf())
    since = traces.parse_time("2026-05-29", "--since")
    report = traces.import_files(shared(), [path], selection=traces.Selection(since=since))
    assert (report.imported, report.filtered_out) == (1, 1)
    report = traces.import_files(shared(), [path], selection=traces.Selection(model="gpt-4o-mini"))
    assert (report.imported, report.duplicates) == (1, 0)
    db = config.db_path()
    nothing = spread("--db", str(db), "import-traces", str(path), "--service", "shop")
    assert nothing.returncode == 2 and nothing.stderr.count("\n") == 1 and "no LLM call matches" in nothing.stderr


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b'{"hello": "world"}', "is JSON but not a trace"),
    (b"just some words\n", "is not JSON"),
    (b"[1, 2", "is JSON but not a trace"),
])
def test_a_file_that_is_not_a_trace_is_one_line_exit_2_and_nothing_written(tmp_path, content, message):
    good = tmp_path / "good.pb"
    good.write_bytes(all_layouts().protobuf())
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    db = tmp_path / "x.db"
    result = spread("--db", str(db), "import-traces", str(good), str(bad))
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not db.exists() or sqlite3.connect(db).execute("select count(*) from llm_calls").fetchone()[0] == 0


def test_a_truncated_protobuf_keeps_the_spans_before_the_cut_and_rejects_the_rest(tmp_path):
    r = Recorder()
    for k in range(5):
        current_chat(r, f"Q{k}", f"A{k}")
    data = r.protobuf()
    path = tmp_path / "cut.pb"
    path.write_bytes(data[: len(data) - 40])
    report = traces.import_files(shared(), [path])
    assert report.rejected == 1 and "truncated protobuf" in report.rejected_items[0]["reason"]
    assert report.imported < 5


def test_a_truncated_json_document_is_counted_as_rejected(tmp_path):
    r = Recorder()
    current_chat(r, "Q", "A")
    text = json.dumps(json.loads(r.json()), indent=1)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) - 30])
    report = traces.import_files(shared(), [path])
    assert report.rejected == 1 and "not valid JSON" in report.rejected_items[0]["reason"]


def langfuse_observations() -> list[dict]:
    return [
        {"id": "obs-1", "traceId": "tr-1", "type": "GENERATION", "name": "answer",
         "startTime": "2026-12-01T10:00:00.000Z", "endTime": "2026-12-01T10:00:01.500Z",
         "completionStartTime": "2026-12-01T10:00:00.300Z", "model": "gpt-4o",
         "modelParameters": {"temperature": 0.5},
         "input": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"}],
         "output": {"role": "assistant", "content": "Hello!"},
         "usageDetails": {"input": 12, "output": 3}, "costDetails": {"total": 0.0004},
         "promptName": "greeter", "promptVersion": 2, "metadata": {"tenant": "a"}},
        {"id": "obs-2", "traceId": "tr-1", "type": "SPAN", "name": "retrieval"},
        {"id": "obs-3", "traceId": "tr-2", "type": "GENERATION", "model": "gpt-4o", "startTime": "nonsense"},
    ]


@pytest.mark.parametrize("shape", ["json", "jsonl", "csv", "api"])
def test_langfuse_exports(tmp_path, shape):
    observations = langfuse_observations()
    path = tmp_path / f"langfuse.{'json' if shape == 'api' else shape}"
    if shape == "json":
        path.write_text(json.dumps(observations, indent=2))
    elif shape == "api":
        path.write_text(json.dumps({"data": observations, "meta": {"page": 1}}, indent=2))
    elif shape == "jsonl":
        path.write_text("\n".join(json.dumps(o) for o in observations))
    else:
        columns = sorted({k for o in observations for k in o})
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            for o in observations:
                writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in o.items()})
    report = traces.import_files(shared(), [path])
    assert (report.imported, report.skipped, report.rejected) == (1, 1, 1), report.rejected_items
    assert report.formats[str(path)] == "langfuse"
    with shared().connection() as db:
        (call,) = stored.calls(db)
    assert call["messages"][1] == {"role": "user", "content": "Hi"} and call["output_text"] == "Hello!"
    assert (call["prompt_name"], call["prompt_version"], call["input_tokens"]) == ("greeter", "2", 12)
    assert call["latency_ms"] == pytest.approx(1500) and call["ttft_ms"] == pytest.approx(300)
    assert call["cost_usd"] == pytest.approx(0.0004)


def openai_line(question: str, answer: str, **response) -> dict:
    return {"request": {"model": "gpt-4o-mini", "temperature": 1.0,
                        "messages": [{"role": "user", "content": question}]},
            "response": {"id": "chatcmpl-1", "object": "chat.completion", "created": 1780000000,
                         "model": "gpt-4o-mini-2024-07-18",
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": answer}}],
                         "usage": {"prompt_tokens": 5, "completion_tokens": 2}, **response}}


def test_openai_logs_with_a_line_of_another_format_rejected_by_line(tmp_path):
    lines = [json.dumps(openai_line("2+2?", "4")), json.dumps(openai_line("3+3?", "6")),
             json.dumps(langfuse_observations()[0]), "not json",
             json.dumps({"request": {"model": "m", "messages": [{"role": "user", "content": "x"}]},
                         "response": {"status_code": 200, "body": {"choices": [{"message": {
                             "role": "assistant", "content": None, "tool_calls": [{
                                 "id": "c1", "type": "function",
                                 "function": {"name": "add", "arguments": '{"a": 1}'}}]}}]}}})]
    path = tmp_path / "completions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = traces.import_files(shared(), [path])
    assert (report.imported, report.rejected) == (3, 2)
    assert [i["where"] for i in report.rejected_items] == ["line 3", "line 4"]
    assert "another format" in report.rejected_items[0]["reason"]
    with shared().connection() as db:
        rows = stored.calls(db)
    assert {r["output_text"] for r in rows} == {"4", "6", None}
    assert [r["output_calls"] for r in rows if r["output_calls"]] == [[{"name": "add", "arguments": {"a": 1}}]]
    assert traces.import_files(shared(), [path]).imported == 0  # the line hash is unique


def test_credentials_and_keys_never_reach_the_database_file_or_its_wal(tmp_path):
    r = Recorder()
    current_chat(r, f"my key is {SECRET_KEY}, mail me at ann@example.com or +44 20 7946 0958",
                 "Noted.", extra={"http.request.header.authorization": SECRET_HEADER,
                                  "openai.api_key": "plain-secret-value-1", "db.password": "hunter2hunter2",
                                  "server.url": "https://bob:p4ssw0rd-xyz@api.example.com/v1"})
    path = tmp_path / "t.pb"
    path.write_bytes(r.protobuf())
    db = tmp_path / "secret.db"
    keeper = sqlite3.connect(db)  # holds the WAL open: its pages are read before any checkpoint
    report = traces.import_files(Store(db), [path], redact_pii=True)
    assert report.imported == 1
    assert report.redactions == {"credential attributes": 3, "keys": 1, "url passwords": 1,
                                 "e-mail addresses": 1, "phone numbers": 1}
    on_disk = b"".join(p.read_bytes() for p in tmp_path.glob("secret.db*"))
    for secret in (SECRET_KEY, "secretpayload42", "plain-secret-value-1", "hunter2hunter2", "p4ssw0rd-xyz",
                   "ann@example.com", "7946 0958"):
        assert secret.encode() not in on_disk, secret
    with Store(db).connection() as conn:
        (call,) = stored.calls(conn)
    assert call["messages"][1]["content"] == "my key is [REDACTED], mail me at [EMAIL] or [PHONE]"
    assert call["redactions"] == 7 and call["attributes"]["server.url"] == "https://bob:***@api.example.com/v1"
    keeper.close()


def test_a_database_made_before_traces_migrates_and_keeps_its_rows(tmp_path):
    path = tmp_path / "before.db"
    db = sqlite_utils.Database(path)
    store.migrations.apply(db, stop_before="m019_traces")
    db["prompts"].insert({"id": 1, "name": "p", "version": 1, "system": "", "template": "Q?",
                          "content_hash": "h", "created_at": "2026-01-01", "created_by": "ann"})
    db.close()
    with Store(path).connection() as opened:
        assert [r["name"] for r in opened.query("select name from prompts")] == ["p"]
        assert stored.count(opened) == 0
    report = traces.import_files(Store(path), [_written(tmp_path)])
    assert report.imported == 4


def _written(tmp_path):
    path = tmp_path / "t.pb"
    path.write_bytes(all_layouts().protobuf())
    return path


def test_import_into_postgres(pg_url, tmp_path):
    target, path = Store(pg_url), _written(tmp_path)
    report = traces.import_files(target, [path], batch=2)
    assert (report.imported, report.skipped) == (4, 2)
    assert traces.import_files(target, [path]).duplicates == 4
    with target.connection() as db:
        assert stored.count(db) == 4
        assert {r["prompt_name"] for r in stored.top_prompts(db)} >= {"weather"}
    target.close()


def test_times_given_to_filters(monkeypatch):
    assert traces.parse_time("2026-12-01T08:00+01:00", "--since") == "2026-12-01T07:00:00.000000+00:00"
    with pytest.raises(SpreadError, match="--until: 'yesterday' is not a time"):
        traces.parse_time("yesterday", "--until")
