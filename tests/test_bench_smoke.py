"""The fan-out's behaviour at the benchmark's loopback server, and the benchmark scripts
themselves at tiny sizes (so they do not rot). No test here times anything: speed lives
in bench/ (`make bench`), bench/results/ and the README, where a busy machine cannot turn
a green build red.
"""

import asyncio
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from core.store import Store, responses
from core.run import plan, runner

sys.path.insert(0, str(ROOT / "bench"))
from loopback import Loopback  # noqa: E402


@pytest.mark.parametrize("stream", [True, False])
def test_fan_out_stores_every_answer_once_at_full_concurrency(store, stream):
    calls, concurrency = 400, 40
    with Loopback(latency_s=0.1) as server:
        spec = plan.RunSpec(prompt="What is the capital of France?", models=["openai/bench-a", "openai/bench-b"],
                            temperatures=[0.0, 1.0], n=calls // 4, concurrency=concurrency, stream=stream,
                            api_base=server.base_url)
        summary = asyncio.run(runner.execute(store, plan.create(store, spec)))
        stats = server.stats()
    assert summary["responses"] == calls and summary["errors"] == 0
    assert stats["requests"] == calls  # one request per answer: nothing sampled twice
    assert 0.9 * concurrency <= stats["peak_in_flight"] <= concurrency
    with store.connection() as db:
        rows = responses.of_run(db, summary["run_id"])
    cells = {(r["variant"], r["input"], r["model"], r["temperature"], r["sample_idx"]) for r in rows}
    assert len(rows) == len(cells) == calls
    assert all(r["text"] and r["finish_reason"] == "stop" and r["completion_tokens"] for r in rows)
    assert all((r["ttft_ms"] is not None) == stream for r in rows)


def test_the_fan_out_benchmark_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "fanout.jsonl"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_fanout.py"), "--repeat", "1",
                             "--latency", "0.01", "--workloads", "20@5", "--results", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    medians = {r["contender"]: r for r in lines if r["kind"] == "median"}
    assert {"floor", "spread-stream", "spread-no-stream", "plain-litellm"} <= set(medians)
    assert all(r["answers"] == 20 for r in lines if r["kind"] == "run")
    assert medians["spread-stream"]["ratio_to_floor"] > 0
    startup = [r for r in lines if r["kind"] == "startup"]
    assert startup and all(r["run_first_request_s"] > 0 and r["worker_first_request_s"] > 0 for r in startup)


@pytest.mark.parametrize("script, argv, kind", [
    ("bench_crash.py", ["--repeat", "1", "--calls", "400", "--concurrency", "8", "--kill-at", "20",
                        "--latency", "0.05"], "median"),
    ("bench_store.py", ["--repeat", "1", "--rows", "200"], "median"),
    ("bench_copy.py", ["--repeat", "1", "--answers", "200", "--no-postgres"], "median"),
    ("bench_traces.py", ["--repeat", "1", "--spans", "400", "--receiver-spans", "512", "--page-calls", "300"], "median"),
])
def test_the_crash_and_store_benchmarks_run_at_a_tiny_size(tmp_path, script, argv, kind):
    out = tmp_path / "bench.jsonl"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *argv, "--results", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(r["kind"] == kind for r in lines)
    if script == "bench_crash.py":  # every mode was killed, resumed, and ended complete without a duplicate
        medians = [r for r in lines if r["kind"] == "median"]
        assert {r["mode"] for r in medians} == {"in-process", "sampler-processes", "app-worker"}
        assert all(r["complete_after_resume"] for r in medians)


def test_the_team_benchmark_runs_at_a_tiny_size(tmp_path):
    """Two reviewers as Streamlit sessions (the websocket protocol) on one app server: every
    interaction timed, every Pass stored, nothing shown as an error."""
    out = tmp_path / "team.jsonl"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_team.py"), "--answers", "200",
                             "--reviewers", "2", "--labels", "2", "--setups", "sqlite:1", "--think", "0",
                             "--results", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    (team,) = [r for r in lines if r["kind"] == "team"]
    assert team["errors"] == 0 and team["lost_labels"] == 0, team["error_examples"]
    assert team["labels_stored"] == team["labels_expected"] >= 2 * 2
    assert [team[name]["n"] for name in ("spread_open", "sign_in", "threshold", "review_open", "label")] == [2, 2, 2, 2, 4]
    assert [r["server"] for r in lines if r["kind"] == "cold"] == [0]
