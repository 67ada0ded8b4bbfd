"""The engine's fan-out: limits that mean what they say, batched writes, sampler
processes, a run in its own process, live progress, and the lean litellm set-up."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT

from core.execution import launch
from core.models import limits, llm
from core.run import plan, runner, workers
from core.run.progress import LiveProgress
from core.run.writer import Writer
from core.store import Store, responses, runs

sys.path.insert(0, str(ROOT / "bench"))
from loopback import Loopback  # noqa: E402


@pytest.fixture(scope="module")
def loopback():
    with Loopback(latency_s=0.1) as server:
        yield server


def grid(base_url, **overrides) -> plan.RunSpec:
    fields = dict(prompt="What is the capital of France?", models=["openai/bench-a", "openai/bench-b"],
                  temperatures=[0.0, 1.0], n=10, api_base=base_url, seed=1, backoff_base_s=0.01,
                  backoff_max_s=0.05)
    fields.update(overrides)
    return plan.RunSpec(**fields)


def run(store, spec, **kwargs) -> dict:
    return asyncio.run(runner.execute(store, plan.create(store, spec), **kwargs))


def rows_of(store, run_id):
    with store.connection() as db:
        return responses.of_run(db, run_id)


@pytest.mark.parametrize("stream", [True, False])
def test_concurrency_c_puts_c_calls_in_flight_and_never_more(store, loopback, stream):
    loopback.reset()
    summary = run(store, grid(loopback.base_url, n=30, concurrency=24, stream=stream))
    assert summary["responses"] == 120
    assert loopback.stats()["peak_in_flight"] == 24  # no per-model limit by default: 24, not 2 × 4


def test_a_per_model_limit_applies_only_where_set(store, loopback):
    loopback.reset()
    run(store, grid(loopback.base_url, n=20, concurrency=24, per_model_concurrency=5))
    assert loopback.stats()["peak_in_flight"] == 10  # two models × 5
    spec = grid(loopback.base_url)
    assert spec.concurrency_for("openai/bench-a") is None
    assert spec.concurrency_for("local/gemma-3-270m") == 4  # the embedded model declares its slots


def test_a_model_waiting_for_its_own_slots_does_not_hold_back_another():
    async def scenario():
        gate = limits.Gate(2, {"slow": 1, "fast": None}, {})
        await gate.acquire("slow")
        waiting = asyncio.create_task(gate.acquire("slow"))  # waits for slow's only slot
        await asyncio.sleep(0.01)
        await asyncio.wait_for(gate.acquire("fast"), 1)  # the run's second slot is still free
        assert gate.in_flight == 2 and not waiting.done()
        gate.release("slow")
        await asyncio.wait_for(waiting, 1)
        assert gate.peak == 2
    asyncio.run(scenario())


def test_cli_per_model_is_unset_by_default(stub, tmp_path):
    from test_cli import last_json, spread

    db = tmp_path / "c.db"
    last_json(spread("--db", str(db), "run", "--prompt", "Q?", "--model", "openai/stub-a", "--temperature", "1",
                     "--n", "2", "--api-base", stub.base_url, "--json"))
    with Store(db).connection() as conn:
        assert runs.get_run(conn, 1)["spec"]["per_model_concurrency"] is None


def cli_run(db, base_url, *args, env=None, n=40, concurrency=30, models=("openai/bench-a", "openai/bench-b"),
            temperatures=("0", "1")):
    from test_cli import last_json, spread

    argv = ["--db", str(db), "run", "--prompt", "What is the capital of France?", "--n", str(n),
            "--concurrency", str(concurrency), "--api-base", base_url, "--json", *args]
    for model in models:
        argv += ["--model", model]
    for t in temperatures:
        argv += ["--temperature", t]
    return last_json(spread(*argv, env={"SPREAD_SAMPLER_PROCESSES": "2", **(env or {})}))


def test_sampler_processes_share_the_budget_exactly_and_lose_nothing(loopback, tmp_path):
    loopback.reset()
    summary = cli_run(tmp_path / "p.db", loopback.base_url)
    with Store(tmp_path / 'p.db').connection() as db:
        rows = responses.of_run(db, summary["run_id"])
    assert summary["responses"] == 160 and summary["errors"] == 0 and len(rows) == 160
    assert loopback.stats()["peak_in_flight"] == 30  # two processes, one budget
    for row in rows:
        assert row["text"] and row["ttft_ms"] is not None and row["provider_model"].endswith("-bench")
        assert row["cost_usd"] is None and row["completion_tokens"] > 0  # unknown price: NULL, not 0


def test_sampler_processes_retry_and_type_errors_like_the_engine(stub, tmp_path):
    stub.inject("429", "500", "401")
    summary = cli_run(tmp_path / "e.db", stub.base_url, n=6, concurrency=1, models=["openai/stub-a"],
                      temperatures=["1"])
    with Store(tmp_path / 'e.db').connection() as db:
        rows = responses.of_run(db, summary["run_id"])
    assert summary["responses"] + summary["errors"] == 6 and summary["errors"] == 1
    assert sum(r["attempts"] for r in rows) == stub.count() == 8
    assert {r["error_type"] for r in rows} == {None, "auth"}


def child_pids(pid: int) -> list[int]:
    return [int(c) for t in os.listdir(f"/proc/{pid}/task")
            for c in open(f"/proc/{pid}/task/{t}/children").read().split()]


def test_cancel_and_kill_reach_sampler_processes(stub, tmp_path):
    from test_cli import spread

    stub.latency_s = 0.2
    db = tmp_path / "k.db"
    argv = [sys.executable, "-m", "core.cli", "--db", str(db), "run", "--prompt", "Q?", "--model", "openai/stub-a",
            "--temperature", "1", "--n", "400", "--concurrency", "4", "--api-base", stub.base_url, "--json"]
    env = dict(os.environ, SPREAD_SAMPLER_PROCESSES="2")
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and stub.count() < 8:
        time.sleep(0.1)
    assert len(child_pids(process.pid)) == 2  # the sampler processes
    spread("--db", str(db), "cancel", "1")
    out, _ = process.communicate(timeout=60)
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["status"] == "cancelled" and 8 <= summary["responses"] < 400

    process = subprocess.Popen([*argv[:argv.index("run")], "resume", "1", "--json"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while time.time() < deadline and stub.count() < summary["responses"] + 12:
        time.sleep(0.1)
    workers_of_run = child_pids(process.pid)
    assert len(workers_of_run) == 2
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(os.path.exists(f"/proc/{pid}") for pid in workers_of_run):
        time.sleep(0.1)
    assert not any(os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]
                   for pid in workers_of_run)  # no orphan keeps calling the provider


def test_processes_only_for_runs_large_enough_to_pay(monkeypatch):
    monkeypatch.delenv("SPREAD_SAMPLER_PROCESSES", raising=False)
    spec = plan.RunSpec(prompt="Q", models=["openai/x"], temperatures=[1.0], n=1, concurrency=100)
    assert workers.processes_for(spec, 200) == 0
    cores = os.cpu_count()
    assert workers.processes_for(spec, 5000) == (min(8, cores) if cores > 1 else 0)
    spec.concurrency = 8
    assert workers.processes_for(spec, 5000) == 0


def test_remote_calls_beside_the_embedded_model_get_a_process_of_their_own(monkeypatch):
    monkeypatch.delenv("SPREAD_SAMPLER_PROCESSES", raising=False)
    mixed = plan.RunSpec(prompt="Q", models=["local/smollm2-135m-instruct", "openai/x"], temperatures=[1.0], n=2)
    assert workers.processes_for(mixed, 2) == 1 and workers.processes_for(mixed, 0, 2) == 1
    assert workers.processes_for(mixed, 0) == 0  # nothing remote left to sample
    assert launch.needs_own_process(mixed, 4)  # never timed in the app's process
    remote_only = plan.RunSpec(prompt="Q", models=["openai/x"], temperatures=[1.0], n=2)
    assert workers.processes_for(remote_only, 2) == 0 and not launch.needs_own_process(remote_only, 2)
    local_only = plan.RunSpec(prompt="Q", models=["local/smollm2-135m-instruct"], temperatures=[1.0], n=2)
    assert not launch.needs_own_process(local_only, 2)
    monkeypatch.setenv("SPREAD_SAMPLER_PROCESSES", "0")
    assert workers.processes_for(mixed, 2) == 0  # the override still wins


@pytest.mark.local_model
def test_an_app_run_beside_the_embedded_model_times_remote_calls_in_a_sampler_process(store, stub):
    """The app's process is no place to time a provider: there a 50 ms stub read as a
    second while the embedded model generated. The run leaves it, and its remote calls
    leave the embedded model's process too."""
    stub.latency_s = 1.0  # calls in flight long enough to see who makes them
    run_id = launch.start(store, plan.RunSpec(prompt="What is the capital of France?", temperatures=[1.0], n=2,
                                       models=["local/smollm2-135m-instruct", "openai/stub-a"], max_tokens=8,
                                       api_base=stub.base_url, seed=1))
    future = launch.background()._jobs[run_id][0]
    deadline, engine, samplers, callers = time.time() + 180, None, [], {}
    while time.time() < deadline and not future.done():
        with store.connection() as db:
            worker = runs.get_run(db, run_id)["worker"]
        if worker and engine is None:
            engine = int(worker.rpartition(":")[2])
        if engine is not None and os.path.exists(f"/proc/{engine}"):
            try:
                samplers = samplers or child_pids(engine)
            except OSError:  # the engine has just exited
                pass
            for pid in [engine, *samplers]:
                callers.update(dict.fromkeys(tcp_ports(pid), pid))
        time.sleep(0.05)
    summary = future.result(timeout=10)
    assert summary["status"] == "done" and summary["responses"] == 4 and stub.count() == 2
    assert engine != os.getpid() and len(samplers) == 1
    assert {callers.get(r["port"]) for r in stub.requests} == {samplers[0]}  # not the engine's process


def tcp_ports(pid: int) -> list[int]:
    """The local ports of a process's TCP sockets (its /proc fds matched to /proc/net/tcp)."""
    try:
        inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")}
        lines = open(f"/proc/{pid}/net/tcp").read().splitlines()[1:]
    except OSError:  # the process has just exited
        return []
    return [int(f[1].rpartition(":")[2], 16) for f in map(str.split, lines) if f[9] in inodes]


def test_the_writer_batches_what_arrives_together_and_flushes_on_close(tmp_path):
    db = tmp_path / "w.db"
    with Store(db).connection() as conn:
        run_id = runs.create_run(conn, spec={"prompt": "Q", "models": ["m"], "temperatures": [1.0], "n": 500},
                                  planned=500)

    async def write_all():
        writer = Writer(Store(db))
        for i in range(500):
            writer.put({"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": i, "text": str(i),
                        "attempts": 1})
        await writer.close()
        return writer

    writer = asyncio.run(write_all())
    assert writer.written == 500 and writer.transactions < 100  # 500 arrivals at once: a few transactions
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from responses").fetchone()[0] == 500


def test_the_writer_commits_a_row_put_on_the_event_loop_without_waiting_for_more_or_for_close(tmp_path):
    db = tmp_path / "w.db"
    with Store(db).connection() as conn:
        run_id = runs.create_run(conn, spec={"prompt": "Q", "models": ["m"], "temperatures": [1.0], "n": 1},
                                  planned=1)

    async def one_row():
        writer = Writer(Store(db))
        writer.put({"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": 0, "text": "a",
                    "attempts": 1})
        for _ in range(2000):  # the loop keeps turning; the row must be handed over and committed
            if writer.written:
                break
            await asyncio.sleep(0.01)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("select count(*) from responses").fetchone()[0]
        await writer.close()
        return stored

    assert asyncio.run(one_row()) == 1


def test_a_write_that_fails_stops_the_run_instead_of_losing_answers_silently(tmp_path):
    async def scenario():
        writer = Writer(Store(tmp_path / 'missing-run.db'))
        writer.put({"run_id": 999, "model": "m", "temperature": 1.0, "sample_idx": 0, "attempts": 1})
        with pytest.raises(sqlite3.IntegrityError):  # no run 999: the foreign key refuses the row
            await writer.close()
    asyncio.run(scenario())


def test_a_large_app_run_samples_in_its_own_process(store, loopback, monkeypatch):
    monkeypatch.setattr(launch, "MIN_CALLS", 10)
    monkeypatch.setenv("SPREAD_SAMPLER_PROCESSES", "2")  # and that process fans out in turn
    loopback.reset()
    run_id = launch.start(store, grid(loopback.base_url, n=10, concurrency=12))
    summary = launch.background()._jobs[run_id][0].result(timeout=120)
    assert summary["status"] == "done" and summary["responses"] == 40
    assert loopback.stats()["peak_in_flight"] == 12
    with store.connection() as db:
        worker = runs.get_run(db, run_id)["worker"]
    assert not worker.endswith(f":{os.getpid()}")  # sampled by another process


def test_cancel_reaches_a_run_in_its_own_process(store, stub, monkeypatch):
    monkeypatch.setattr(launch, "MIN_CALLS", 10)
    stub.latency_s = 0.2
    run_id = launch.start(store, grid(stub.base_url, models=["openai/stub-a"], temperatures=[1.0], n=200, concurrency=2))
    deadline = time.time() + 60
    while time.time() < deadline and stub.count() < 4:
        time.sleep(0.1)
    launch.request_cancel(store, run_id)
    summary = launch.background()._jobs[run_id][0].result(timeout=60)
    assert summary["status"] == "cancelled" and summary["responses"] < 200


def test_live_progress_reads_only_new_rows_and_matches_a_full_count(store, stub):
    spec = grid(stub.base_url, models=["openai/stub-a"], n=4)
    run_id = plan.create(store, spec)
    tracker = LiveProgress(store, run_id)
    assert tracker.refresh()["received"] == 0
    with store.connection() as db:
        for i in range(3):
            responses.save_response(db, {"run_id": run_id, "model": "openai/stub-a", "temperature": 1.0,
                                     "sample_idx": i, "text": "a", "attempts": 1})
        responses.save_response(db, {"run_id": run_id, "model": "openai/stub-a", "temperature": 0.0,
                                 "sample_idx": 0, "error_type": "auth", "attempts": 1})
    seen = tracker.refresh()
    assert (seen["received"], seen["errors"], tracker.last_id) == (4, 1, 4)
    asyncio.run(runner.execute(store, run_id))
    final = tracker.refresh()
    with store.connection() as db:  # the full count, as the oracle of the incremental one
        full = list(db.query("select model, temperature, count(*) as received, "
                             "count(*) filter (where error_type is not null) as errors "
                             "from responses where run_id = ? group by model, temperature", [run_id]))
    assert final["status"] == "done" and final["received"] == sum(c["received"] for c in full) == 8
    assert sorted((c["model"], c["temperature"], c["received"], c["errors"]) for c in final["counts"]) == \
        sorted((c["model"], c["temperature"], c["received"], c["errors"]) for c in full)


def test_litellm_is_configured_lean():
    from litellm.litellm_core_utils.litellm_logging import Logging

    llm.get()
    for name in llm.LEAN_PATCHED:  # a litellm upgrade that renames these fails here, not silently
        assert getattr(Logging, name).__module__ == "core.models.llm", name


def test_a_process_that_exists_for_a_run_runs_it_on_uvloop():
    async def loop_module():
        return type(asyncio.get_running_loop()).__module__

    assert launch.run_own_process(loop_module()).startswith("uvloop")  # the CLI's and a detached run's loop
    assert asyncio.run(loop_module()).startswith("asyncio")  # the app's stays asyncio's
