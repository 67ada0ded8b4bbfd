"""The run engine against a real loopback OpenAI-compatible server."""

import asyncio
import threading
import time

import pytest

from core.config import SpreadError
from core.run import plan, runner
from core.store import Store, responses, runs


def spec_for(stub, **overrides) -> plan.RunSpec:
    fields = dict(
        prompt="What is the capital of France?", models=["openai/stub-a", "openai/stub-b"],
        temperatures=[0.0, 1.0], n=5, api_base=stub.base_url, seed=1,
        backoff_base_s=0.01, backoff_max_s=0.05,
    )
    fields.update(overrides)
    return plan.RunSpec(**fields)


def run_plan(store, spec, **kwargs) -> dict:
    run_id = plan.create(store, spec)
    return asyncio.run(runner.execute(store, run_id, **kwargs))


def stored(store, run_id):
    with store.connection() as db:
        return responses.of_run(db, run_id)


@pytest.mark.parametrize("stream", [True, False])
def test_grid_fills_every_cell_with_answer_tokens_and_latency(store, stub, stream):
    summary = run_plan(store, spec_for(stub, stream=stream))
    assert summary["responses"] == 20 and summary["errors"] == 0
    assert summary["status"] == "done"
    rows = stored(store, summary["run_id"])
    assert len(rows) == 20
    assert {(r["model"], r["temperature"]) for r in rows} == {
        ("openai/stub-a", 0.0), ("openai/stub-a", 1.0), ("openai/stub-b", 0.0), ("openai/stub-b", 1.0)}
    for row in rows:
        assert row["error_type"] is None and row["text"]
        assert row["completion_tokens"] > 0 and row["prompt_tokens"] > 0
        assert row["latency_ms"] > 0 and row["attempts"] == 1
        assert row["provider_model"].endswith("-2024-stub")
        assert row["cost_usd"] is None  # not in litellm's price map: unknown, never 0
        assert (row["ttft_ms"] is not None) == stream
    # seed + sample_idx reaches the provider
    seeds = sorted(r["body"]["seed"] for r in stub.requests if r["body"]["model"] == "stub-a")
    assert seeds == sorted([1, 2, 3, 4, 5] * 2)


def test_temperature_zero_repeats_and_one_varies(store, stub):
    rows = stored(store, run_plan(store, spec_for(stub, models=["openai/stub-a"], n=8))["run_id"])
    cold = {r["text"] for r in rows if r["temperature"] == 0.0}
    hot = {r["text"] for r in rows if r["temperature"] == 1.0}
    assert len(cold) == 1 and len(hot) > 1


def test_transient_errors_are_retried_with_the_attempts_recorded(store, stub):
    stub.inject("429", "500", "503", "reset")
    summary = run_plan(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=1, max_attempts=5))
    (row,) = stored(store, summary["run_id"])
    assert row["error_type"] is None
    assert row["attempts"] == 5
    assert stub.count() == row["attempts"]


def test_retries_stop_at_the_bound_and_leave_a_typed_error_row(store, stub):
    stub.inject(*["500"] * 10)
    summary = run_plan(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=1, max_attempts=3))
    (row,) = stored(store, summary["run_id"])
    assert summary["errors"] == 1 and summary["responses"] == 0
    assert row["error_type"] == "server_error" and row["attempts"] == 3 and row["text"] is None
    assert stub.count() == 3


@pytest.mark.parametrize("fault,error_type", [
    ("401", "auth"), ("404", "not_found"), ("400-context", "context_window"),
])
def test_permanent_errors_are_not_retried(store, stub, fault, error_type):
    stub.inject(fault)
    summary = run_plan(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=1))
    (row,) = stored(store, summary["run_id"])
    assert row["error_type"] == error_type and row["attempts"] == 1
    assert stub.count() == 1


def test_timeout_becomes_an_error_row_after_retries(store, stub):
    stub.hang_s = 5
    stub.inject("timeout", "timeout")
    summary = run_plan(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=1,
                            timeout_s=0.5, max_attempts=2))
    (row,) = stored(store, summary["run_id"])
    assert row["error_type"] == "timeout" and row["attempts"] == 2


def test_retry_after_is_honoured(store, stub):
    stub.inject("429")
    stub.retry_after = "1"
    start = time.perf_counter()
    summary = run_plan(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=1, backoff_max_s=5))
    assert summary["responses"] == 1
    gap = stub.requests[1]["t"] - stub.requests[0]["t"]
    assert gap >= 0.9, gap
    assert time.perf_counter() - start < 5


def test_resume_fills_only_missing_cells(store, stub):
    spec = spec_for(stub)
    run_id = plan.create(store, spec)
    with store.connection() as db:  # a worker died after two answers
        for idx in range(2):
            responses.save_response(db, {"run_id": run_id, "model": "openai/stub-a", "temperature": 0.0,
                                     "sample_idx": idx, "text": "kept", "attempts": 1})
    summary = asyncio.run(runner.execute(store, run_id))
    assert summary["responses"] == 20
    assert stub.count() == 18
    rows = stored(store, run_id)
    assert len(rows) == 20
    assert sum(r["text"] == "kept" for r in rows) == 2


def test_resume_with_retry_errors_replaces_error_rows_only(store, stub):
    stub.inject(*["401"] * 3)
    summary = run_plan(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=5, concurrency=1))
    assert summary["errors"] == 3
    again = asyncio.run(runner.execute(store, summary["run_id"]))  # plain resume: nothing missing
    assert again["errors"] == 3 and stub.count() == 5
    again = asyncio.run(runner.execute(store, summary["run_id"], retry_errors=True))
    assert again["errors"] == 0 and again["responses"] == 5
    assert len(stored(store, summary["run_id"])) == 5


def test_cancel_stops_new_calls_and_marks_the_run(store, stub):
    stub.latency_s = 0.2
    run_id = plan.create(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=40,
                                concurrency=2, per_model_concurrency=2))
    cancel = threading.Event()
    seen = []

    def on_answer(progress, row):
        seen.append(row)
        if len(seen) == 3:
            cancel.set()

    summary = asyncio.run(runner.execute(store, run_id, cancel=cancel, on_answer=on_answer))
    assert summary["status"] == "cancelled"
    assert 3 <= summary["responses"] < 10


def test_a_run_whose_worker_went_quiet_shows_as_interrupted(store, stub):
    run_id = plan.create(store, spec_for(stub))
    with store.connection() as db:
        runs.set_run_status(db, run_id, "running")
        assert runs.get_run(db, run_id)["status"] == "running"
        db.execute("update runs set heartbeat_at = ? where id = ?", [time.time() - 600, run_id])
        db.conn.commit()
        assert runs.get_run(db, run_id)["status"] == "interrupted"


@pytest.mark.parametrize("overrides,message", [
    ({"prompt": "  "}, "prompt is empty"),
    ({"n": 0}, "N must be"),
    ({"n": 1001}, "N must be"),
    ({"temperatures": [2.5]}, "outside 0..2"),
    ({"temperatures": [-0.1]}, "outside 0..2"),
    ({"models": []}, "no model chosen"),
    ({"models": ["nosuchprovider/model-x"], "api_base": None}, "unknown model id"),
    ({"models": ["openai/gpt-4o-mini"], "api_base": None}, "missing key"),
    ({"api_base": "http://127.0.0.1:9/v1"}, "unreachable"),
])
def test_bad_plans_are_refused_before_anything_is_written(store, stub, overrides, message):
    with pytest.raises(SpreadError, match=message):
        plan.create(store, spec_for(stub, **overrides))
    with store.connection() as db:
        assert db["runs"].count == 0 and db["prompts"].count == 0


def test_same_prompt_name_new_text_gets_a_new_version(store, stub):
    first = plan.create(store, spec_for(stub, name="capital", n=1))
    again = plan.create(store, spec_for(stub, name="capital", n=1))
    changed = plan.create(store, spec_for(stub, name="capital", n=1, system="Answer in one word."))
    with store.connection() as db:
        versions = [runs.get_run(db, r)["prompt_version"] for r in (first, again, changed)]
    assert versions == [1, 1, 2]


def test_the_app_worker_caches_embeddings_when_a_run_ends(store, stub):
    from core.execution import launch, service

    stub.answers = ["Paris.", "paris", "Lyon."]
    service.for_this_server(store)  # on PostgreSQL the server's worker carries the run; on SQLite, the app's own
    run_id = launch.start(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=6))
    deadline = time.time() + 60
    while time.time() < deadline:
        with store.connection() as db:
            if db["embeddings"].count >= 2:
                break
        time.sleep(0.2)
    with store.connection() as db:
        assert runs.get_run(db, run_id)["status"] == "done"
        assert db["embeddings"].count == 2  # "Paris." and "paris" are one normalised text


def test_spread_cancel_from_another_process_stops_a_running_run(store, stub):
    stub.latency_s = 0.2
    run_id = plan.create(store, spec_for(stub, models=["openai/stub-a"], temperatures=[1.0], n=60, concurrency=2,
                                per_model_concurrency=2))
    worker = threading.Thread(target=lambda: asyncio.run(runner.execute(store, run_id)))
    worker.start()
    time.sleep(1.0)
    from test_cli import spread

    assert "cancel requested" in spread("cancel", str(run_id)).stdout  # a separate process, via the database
    worker.join(30)
    with store.connection() as db:
        run = runs.get_run(db, run_id)
    assert run["status"] == "cancelled" and run["received"] < 60
