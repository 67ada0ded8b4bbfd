"""Workers live with their process: an app server's worker starts with the server (no page
drawn), SIGTERM hands a run back after its calls in flight, and `spread worker --once`
claims what is claimable now (issue 25, items 1 to 3)."""

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager

import pytest
from conftest import ROOT
from test_cli import spread
from test_workers import cells, queued_run, status, wait_for_answers, worker

from core.execution import launch
from core.run import plan, runner
from core.store import Store, leases, responses

LEASE_S = 3
# A 2,000-call run: large enough to be sampled in a process of its own, as the was.
BIG = dict(temperatures=[0.5, 1.0], n=1000, concurrency=64, max_calls=5000)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def app_servers(count: int, db: str, tmp_path):
    """`streamlit run app.py` processes on loopback ports, healthy, and never browsed."""
    servers = []
    try:
        for k in range(count):
            port = free_port()
            log = open(tmp_path / f"server-{k}.log", "w")
            process = subprocess.Popen(
                [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
                 "--server.address", "127.0.0.1", "--server.headless", "true",
                 "--browser.gatherUsageStats", "false"],
                cwd=ROOT, env=dict(os.environ, SPREAD_DB=db, SPREAD_LEASE_S=str(LEASE_S)),
                stdout=log, stderr=subprocess.STDOUT)
            process.log_path = tmp_path / f"server-{k}.log"
            servers.append(process)
            deadline = time.time() + 90
            while True:
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status == 200:
                        break
                except OSError:
                    pass
                if time.time() > deadline or process.poll() is not None:
                    pytest.fail("streamlit did not start: " + process.log_path.read_text()[-2000:])
                time.sleep(0.3)
        yield servers
    finally:
        for process in servers:
            if process.poll() is None:
                process.kill()
            process.wait()


def holder_pid(store, run_id: int) -> int | None:
    """The process holding the run's lease (its `worker`, host:pid)."""
    with store.connection() as db:
        worker_of = db.execute("select worker from runs where id = ? and lease_owner is not null",
                               [run_id]).fetchone()
    return int(worker_of[0].rsplit(":", 1)[1]) if worker_of and worker_of[0] else None


def wait_until(condition, timeout_s: float, step_s: float = 0.1):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step_s)
    return condition()


def started_from_playground(store, stub) -> int:
    """A run started as the Playground starts one (launch.start): queued for any worker."""
    spec = plan.RunSpec(prompt="What is the capital of France?", models=["openai/stub-a"], api_base=stub.base_url,
                        seed=1, **BIG)
    return launch.start(store, spec)


@pytest.mark.postgres
def test_two_app_servers_nobody_browsed_carry_a_run_when_the_sampling_one_is_killed(store, stub, pg_url, monkeypatch, tmp_path):
    import psycopg

    monkeypatch.setenv("SPREAD_DB", pg_url)
    store = Store(pg_url)
    stub.latency_s = 0.1
    with app_servers(2, pg_url, tmp_path) as servers:
        # The servers migrated the empty database as they started: nobody drew a page.
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("select to_regclass('runs')").fetchone()[0] == "runs"
        run_id = started_from_playground(store, stub)
        wait_for_answers(store, run_id, 200, timeout_s=60)  # claimed and sampled by one server's worker
        holder = holder_pid(store, run_id)
        (sampling,) = [s for s in servers if s.pid == holder]
        (other,) = [s for s in servers if s.pid != holder]
        before = cells(store, run_id)[0]
        sampling.send_signal(signal.SIGKILL)
        sampling.wait()
        killed_at = time.time()
        assert wait_until(lambda: status(store, run_id) == "done", LEASE_S + 10, 0.2), (
            f"not finished {time.time() - killed_at:.1f} s after the kill: {status(store, run_id)}, {cells(store, run_id)}")
        assert holder_pid(store, run_id) is None and cells(store, run_id) == (2000, 2000)  # no gap, no duplicate
        with store.connection() as db:
            (worker_of,) = db.execute("select worker from runs where id = ?", [run_id]).fetchone()
        assert worker_of.endswith(f":{other.pid}")  # the other server's worker finished it
        print(f"killed at {before} answers; finished {time.time() - killed_at:.1f} s later; "
              f"{stub.count() - 2000} calls asked again")
        assert stub.count() - 2000 <= 64  # at most the calls in flight (answers wait for their commit in a slot)


@pytest.mark.postgres
@pytest.mark.parametrize("holder", ["app-server", "worker", "run"])
def test_sigterm_hands_a_run_back_and_another_worker_finishes_it(store, holder, stub, pg_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SPREAD_DB", pg_url)
    store = Store(pg_url)
    stub.latency_s = 0.2
    log = tmp_path / "holder.log"
    if holder == "app-server":
        context = app_servers(1, pg_url, tmp_path)
        (process,) = context.__enter__()
        log = process.log_path
        run_id = started_from_playground(store, stub)
    elif holder == "worker":
        context = None
        run_id = queued_run(store, stub, **BIG)
        process = worker(lease_s=LEASE_S)
    else:  # a foreground `spread run` on PostgreSQL
        context = None
        process = subprocess.Popen(
            [sys.executable, "-m", "core.cli", "run", "--prompt", "What is the capital of France?",
             "--model", "openai/stub-a", "--api-base", stub.base_url, "--temperature", "0.5", "--temperature", "1",
             "--n", "1000", "--concurrency", "64", "--max-calls", "5000"],
            cwd=ROOT, env=dict(os.environ, SPREAD_LEASE_S=str(LEASE_S)), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        run_id = int(re.match(r"run (\d+):", process.stderr.readline()).group(1))
    try:
        wait_for_answers(store, run_id, 300, timeout_s=90)
        assert holder_pid(store, run_id) == process.pid
        process.send_signal(signal.SIGTERM)
        stopped_at = time.time()
        # Handed back: queued with no lease (nobody else is looking yet), within seconds.
        assert wait_until(lambda: status(store, run_id) == "queued", 15), status(store, run_id)
        handed_back_s = time.time() - stopped_at
        with store.connection() as db:
            assert db.execute("select lease_owner from runs where id = ?", [run_id]).fetchone() == (None,)
        process.wait(timeout=10)  # inside Docker's default grace
        kept, asked = cells(store, run_id)[0], stub.count()
        assert asked - kept <= 64  # what arrived was committed: at most the calls in flight are asked again
        if holder != "app-server":
            output = process.stderr.read() if process.stderr else ""
            assert "queued" in output, output
        else:
            assert "cannot schedule new futures" not in log.read_text()
        print(f"{holder}: handed back {handed_back_s:.1f} s after SIGTERM, {kept} kept, {asked - kept} asked again")
        result = spread("worker", "--once")  # another worker continues at once: no lease to wait for
        assert f"run {run_id}: claimed" in result.stderr
        assert status(store, run_id) == "done" and cells(store, run_id) == (2000, 2000)  # no gap, no duplicate
        assert stub.count() - 2000 <= 64
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        if context is not None:
            context.__exit__(None, None, None)


def test_sigterm_lets_the_calls_in_flight_end_and_keeps_their_answers(store, stub):
    stub.latency_s = 1.0
    run_id = queued_run(store, stub, n=100, concurrency=8)
    process = worker(lease_s=30)
    wait_for_answers(store, run_id, 8)
    time.sleep(0.5)  # the next 8 calls are half way through their second
    assert stub.count() > cells(store, run_id)[0]
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=20)
    assert "queued for another worker" in err
    assert status(store, run_id) == "queued"
    kept, asked = cells(store, run_id)[0], stub.count()
    assert kept == asked, (kept, asked)  # the calls in flight ended and were written: none to ask again


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, monkeypatch):
    if request.param == "postgres":
        monkeypatch.setenv("SPREAD_DB", request.getfixturevalue("pg_url"))
    return request.param


def test_worker_once_a_second_after_a_killed_spread_run_claims_and_finishes_it(store, stub, engine):
    stub.latency_s = 0.1
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "run", "--prompt", "What is the capital of France?",
         "--model", "openai/stub-a", "--api-base", stub.base_url, "--temperature", "1", "--n", "300",
         "--concurrency", "16"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # the default 30-s lease
    run_id = int(re.match(r"run (\d+):", process.stderr.readline()).group(1))
    wait_for_answers(store, run_id, 40)
    process.send_signal(signal.SIGKILL)
    process.wait()
    time.sleep(1)
    result = spread("worker", "--once")
    assert f"run {run_id}: claimed" in result.stderr and f"run {run_id}: done" in result.stderr
    assert status(store, run_id) == "done" and cells(store, run_id) == (300, 300)


def test_worker_once_waits_for_a_lease_about_to_expire_only_when_asked(store, stub, engine, monkeypatch):
    monkeypatch.setenv("SPREAD_LEASE_S", "3")
    run_id = queued_run(store, stub)
    with store.connection() as db:
        leases.claim_next(db, "elsewhere:1:aaaa")  # another machine's worker, gone silent
    result = spread("worker", "--once")
    assert result.stderr.strip() == "nothing to claim" and status(store, run_id) == "running"
    result = spread("worker", "--once", "--wait-s", "1")  # the lease ends in about 3 s: too late
    assert "nothing to claim" in result.stderr and status(store, run_id) == "running"
    with store.connection() as db:  # the two calls above took seconds of the lease: give it 3 s again
        leases.renew(db, run_id, "elsewhere:1:aaaa")
    result = spread("worker", "--once", "--wait-s", "10")
    assert "waiting" in result.stderr and f"run {run_id}: claimed" in result.stderr
    assert status(store, run_id) == "done" and cells(store, run_id) == (10, 10)


@pytest.mark.postgres
def test_worker_fails_with_one_line_when_it_cannot_reach_or_log_into_the_database(postgres, pg_url):
    import psycopg

    away = f"postgresql://postgres@127.0.0.1:{free_port()}/spread"
    result = spread("worker", "--once", env={"SPREAD_DB": away}, check=False)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "spread: error:" in result.stderr
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("create role locked nologin")
    refused = pg_url.replace("postgres@", "locked@")
    for args in (["--once"], []):  # polling forever would not help either: the login is refused
        result = spread("worker", *args, env={"SPREAD_DB": refused}, check=False)
        assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "not permitted to log in" in result.stderr


def lines_of(stream) -> queue.Queue:
    """A process's output, line by line, read on a thread (so a test can wait with a timeout)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.strip()) for line in stream], daemon=True).start()
    return lines


@pytest.mark.postgres
def test_worker_says_what_it_does_one_line_per_change(store, stub, postgres, pg_url, monkeypatch):
    monkeypatch.setenv("SPREAD_DB", pg_url)
    store = Store(pg_url)
    process = worker(lease_s=30)
    lines = lines_of(process.stderr)

    def next_line() -> str:
        return lines.get(timeout=30)

    try:
        assert next_line().startswith("waiting for runs")
        run_id = queued_run(store, stub)
        assert next_line() == f"run {run_id}: claimed"
        assert next_line() == f"run {run_id}: done"
        assert next_line().startswith("waiting for runs")
        postgres.stop()
        try:
            time.sleep(3)  # three polls, one line
        finally:
            postgres.start()
        assert next_line().startswith("database unreachable")
        assert next_line() == "database reachable again"
        assert next_line().startswith("waiting for runs")
        time.sleep(1.5)
        assert lines.empty()  # nothing more while nothing changes
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 130


@pytest.mark.sqlite_only
def test_sigterm_on_a_foreground_run_on_sqlite_keeps_its_calls_in_flight_and_leaves_it_for_a_resume(store, stub):
    stub.latency_s = 0.3
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "run", "--prompt", "What is the capital of France?",
         "--model", "openai/stub-a", "--api-base", stub.base_url, "--temperature", "1", "--n", "300",
         "--concurrency", "16"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    run_id = int(re.match(r"run (\d+):", process.stderr.readline()).group(1))
    wait_for_answers(store, run_id, 40)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 130 and f"run {run_id} stopped" in err and "interrupted" in err, err
    kept, asked = cells(store, run_id)[0], stub.count()
    assert 40 <= kept < 300 and kept == asked  # the calls in flight ended and were written
    assert status(store, run_id) == "interrupted"  # no worker on SQLite's app: left for a resume
    with store.connection() as db:
        assert db.execute("select lease_owner from runs where id = ?", [run_id]).fetchone() == (None,)
    spread("resume", str(run_id))
    assert cells(store, run_id) == (300, 300) and stub.count() == 300


def test_sigterm_waits_for_slow_calls_in_flight_no_longer_than_its_bound(store, stub):
    stub.latency_s = 60
    run_id = queued_run(store, stub, n=20, concurrency=4)
    process = worker(lease_s=30)
    assert wait_until(lambda: stub.count() >= 4, 60)
    process.send_signal(signal.SIGTERM)
    started = time.time()
    _, err = process.communicate(timeout=30)
    took = time.time() - started
    assert leases.STOP_WAIT_S <= took < leases.STOP_WAIT_S + 3, took  # inside Docker's 10-s grace
    assert status(store, run_id) == "queued" and cells(store, run_id) == (0, 0)  # the dropped calls are the next worker's


def test_calls_in_flight_and_answers_not_yet_committed_never_outnumber_the_concurrency(store, stub, monkeypatch):
    run_id = queued_run(store, stub, n=120, concurrency=8)
    committed = [0]
    save = responses.save_responses

    def slow_save(db, rows):  # a store that takes its time to commit (a busy PostgreSQL)
        time.sleep(0.1)
        save(db, rows)
        committed[0] += len(rows)

    monkeypatch.setattr(responses, "save_responses", slow_save)
    worst = [0]
    done = threading.Event()

    def watch():  # what a SIGKILL now would make a resume ask again
        while not done.is_set():
            worst[0] = max(worst[0], stub.count() - committed[0])
            time.sleep(0.002)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        asyncio.run(runner.execute(store, run_id))
    finally:
        done.set()
        watcher.join()
    assert cells(store, run_id) == (120, 120)
    assert worst[0] <= 8, worst[0]


@pytest.mark.sqlite_only
def test_an_app_server_stopping_ends_the_runs_it_samples_itself_after_their_calls_in_flight(store, stub, monkeypatch):
    from core.execution import launch, service

    monkeypatch.setattr(launch, "PROCESS_STOPPING", threading.Event())  # this test's process goes on
    # Workers other tests of this process started (on their own databases) are not this server's.
    monkeypatch.setattr(service, "_serving", {})
    monkeypatch.setattr(service, "_watching", {})
    stub.latency_s = 0.3
    spec = plan.RunSpec(prompt="What is the capital of France?", models=["openai/stub-a"], temperatures=[1.0],
                        n=200, concurrency=8, api_base=stub.base_url)
    run_id = launch.start(store, spec)  # SQLite: sampled on this process's background loop
    wait_for_answers(store, run_id, 16)
    started = time.time()
    service.stop_with_server()
    assert time.time() - started < leases.STOP_WAIT_S
    assert not launch.in_process_jobs()
    kept = cells(store, run_id)[0]
    assert kept < 200 and kept == stub.count()  # the calls in flight ended and were written
    with store.connection() as db:  # its lease is given up: once this process is gone it shows interrupted
        assert db.execute("select lease_owner from runs where id = ?", [run_id]).fetchone() == (None,)
