"""Production's spread through core.analyse, and real inputs sampled into runs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from otel_traces import Recorder, current_chat, shared

from core import config
from core.config import SpreadError
from core.formats import traces
from core.formats.traces import production
from core.store import Store


def imported(tmp_path, recorder: Recorder) -> Store:
    path = tmp_path / "prod.pb"
    path.write_bytes(recorder.protobuf())
    target = shared()
    assert traces.import_files(target, [path]).imported
    return target


def busy_day() -> Recorder:
    r = Recorder()
    for k in range(6):
        current_chat(r, "What is the capital of France?", "Paris." if k < 4 else "Lyon is the capital.")
    for _ in range(3):
        current_chat(r, "What is 2+2?", "4")
    for question in ("Tell me a joke", "Track parcel 77", "Refund my order", "Opening hours?",
                     "Do you ship to Canada?", "Tell me a joke please"):
        current_chat(r, question, "Sure.")
    return r


def test_repeated_inputs_are_analysed_as_a_run_of_observed_answers(tmp_path):
    target = imported(tmp_path, busy_day())
    found = production.spread_of_inputs(target, method="tfidf")
    assert [i["question"] for i in found.inputs] == ["What is the capital of France?", "What is 2+2?"]
    assert [i["calls"] for i in found.inputs] == [6, 3]
    by_input = {row["input"]: row for row in found.analysis.group(["input"])}
    assert by_input[0]["n_clusters"] == 2 and by_input[0]["consistency"] == pytest.approx(4 / 6, abs=1e-3)
    assert by_input[0]["consistency_low"] < by_input[0]["consistency"] < by_input[0]["consistency_high"]
    assert by_input[1]["consistency"] == 1.0
    assert sorted(c.size for c in found.analysis.clusters if c.input == 0) == [2, 4]


def test_calls_without_a_recorded_temperature_are_analysed_too(tmp_path):
    lines = [{"request": {"model": "m", "messages": [{"role": "user", "content": "Capital of France?"}]},
              "response": {"id": f"chatcmpl-{k}", "model": "m",
                           "choices": [{"message": {"role": "assistant", "content": answer}}]}}
             for k, answer in enumerate(("Paris.", "Paris.", "Lyon."))]
    path = tmp_path / "logs.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    traces.import_files(shared(), [path])
    found = production.spread_of_inputs(shared(), method="tfidf")
    (row,) = found.analysis.group(["input"])
    assert row["count"] == 3 and row["consistency"] == pytest.approx(2 / 3, abs=1e-3)
    assert found.analysis.group(["temperature"])[0]["temperature"] == production.UNKNOWN_TEMPERATURE


def test_random_and_diverse_samples_are_distinct_real_inputs(tmp_path):
    target = imported(tmp_path, busy_day())
    randomly = production.sample_inputs(target, 5, strategy="random")
    assert len({row["messages"] for row in randomly}) == 5
    diverse = production.sample_inputs(target, 5, strategy="diverse", method="tfidf")
    questions = [json.loads(row["messages"])[-1]["content"] for row in diverse]
    assert len(set(questions)) == 5
    assert not {"Tell me a joke", "Tell me a joke please"} <= set(questions)  # near-duplicates: one at most
    assert all(row["system"] == "You are a helpful shop assistant." for row in diverse)
    with pytest.raises(SpreadError, match="only 8 distinct production input"):
        production.sample_inputs(target, 9)


def test_template_variables_are_recovered_when_the_trace_has_them(tmp_path):
    r = Recorder()
    current_chat(r, "Summarise: cats", "Cats.", extra={"traceloop.prompt.key": "summary",
                                                      "traceloop.prompt.version": 2,
                                                      "traceloop.prompt.template": "Summarise: {{topic}}",
                                                      "traceloop.prompt.template_variables.topic": "cats"})
    target = imported(tmp_path, r)
    (row,) = production.sample_inputs(target, 1, where=production.parse_filter("prompt=summary@2"))
    assert row["topic"] == "cats" and "messages" not in row
    with pytest.raises(SpreadError, match="no stored production call matches"):
        production.sample_inputs(target, 1, where=production.parse_filter("prompt=other"))
    with pytest.raises(SpreadError, match="--trace-filter: 'colour=red'"):
        production.parse_filter("colour=red")


def test_spread_run_inputs_from_traces_replays_ten_distinct_conversations(stub, tmp_path):
    r = Recorder()
    for k in range(12):
        current_chat(r, f"Question number {k} about shipping zone {k * 7}", "An answer.")
    current_chat(r, "Question number 0 about shipping zone 0", "Again.")  # seen twice: one input
    target = imported(tmp_path, r)
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", "--db", str(target.target), "run", "--inputs-from-traces", "--sample", "10",
         "--strategy", "diverse", "--model", "openai/candidate", "--temperature", "0", "--n", "1",
         "--api-base", stub.base_url, "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert run["responses"] == 10
    asked = [r["body"]["messages"] for r in stub.requests if r["path"] in ("/v1/chat/completions", "/chat/completions")]
    assert len({json.dumps(m) for m in asked}) == 10
    assert all(m[0] == {"role": "system", "content": "You are a helpful shop assistant."} for m in asked)
    assert all(m[-1]["content"].startswith("Question number") for m in asked)


def test_golden_add_trace_keeps_the_conversation_tools_and_production_answer(tmp_path):
    from core.review import golden

    r = Recorder()
    current_chat(r, "Where is my order?", "It ships tomorrow.")
    target = imported(tmp_path, r)
    db = str(target.target)
    run = lambda *args: subprocess.run([sys.executable, "-m", "core.cli", "--db", db, *args], cwd=ROOT,
                                       capture_output=True, text=True, timeout=60)
    assert run("golden", "create", "prod").returncode == 0
    added = run("golden", "add", "prod", "--trace", "1")
    assert added.returncode == 0, added.stderr
    corrected = run("golden", "add", "prod", "--trace", "1", "--correction", "It shipped yesterday.")
    assert corrected.returncode == 0, corrected.stderr
    first, second = golden.items(target, "prod")
    assert (first["prompt"], first["system"], first["reference"]) == (
        "Where is my order?", "You are a helpful shop assistant.", "It ships tomorrow.")
    assert first["accepted"] == ["It ships tomorrow."] and first["tags"] == ["production"]
    assert second["reference"] == "It shipped yesterday." and second["rejected"] == ["It ships tomorrow."]
    missing = run("golden", "add", "prod", "--trace", "999")
    assert missing.returncode == 2 and "no stored production call '999'" in missing.stderr
