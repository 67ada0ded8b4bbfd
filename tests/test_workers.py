"""Runs as rows that workers claim: leases, `spread worker`, take-over after a worker dies, cancel."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from test_cli import last_json, spread

from core.config import SpreadError
from core.run import plan
from core.store import Store, leases, write
from core.store import runs as run_rows


def queued_run(store, stub, **overrides) -> int:
    fields = dict(prompt="What is the capital of France?", models=["openai/stub-a"], temperatures=[1.0], n=10,
                  api_base=stub.base_url, seed=1, backoff_base_s=0.01, backoff_max_s=0.05)
    run_id = plan.create(store, plan.RunSpec(**(fields | overrides)))
    with store.connection() as db:
        leases.queue(db, run_id)
    return run_id


def worker(*args, lease_s=3):
    """`spread worker` in a process of its own, as a second server's worker would be."""
    return subprocess.Popen([sys.executable, "-m", "core.cli", "worker", *args], cwd=ROOT,
                            env=dict(os.environ, SPREAD_LEASE_S=str(lease_s)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def cells(store, run_id) -> tuple[int, int]:
    """(rows, distinct cells) of a run."""
    with store.connection() as db:
        (rows,) = db.execute("select count(*) from responses where run_id = ?", [run_id]).fetchone()
        (distinct,) = db.execute("select count(*) from (select distinct variant, input, model, temperature, "
                                 "sample_idx from responses where run_id = ?) as c", [run_id]).fetchone()
    return rows, distinct


def status(store, run_id) -> str:
    with store.connection() as db:
        return run_rows.get_run(db, run_id)["status"]


def wait_for_answers(store, run_id, count, timeout_s=120):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if cells(store, run_id)[0] >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never reached {count} answers")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, monkeypatch):
    """The same test on the SQLite file and on a PostgreSQL database."""
    if request.param == "postgres":
        monkeypatch.setenv("SPREAD_DB", request.getfixturevalue("pg_url"))
    return request.param


def test_worker_once_finishes_a_queued_run_and_exits(store, stub, engine):
    run_id = queued_run(store, stub)
    assert status(store, run_id) == "queued"
    result = spread("worker", "--once")
    assert f"run {run_id}: claimed" in result.stderr
    assert status(store, run_id) == "done" and cells(store, run_id) == (10, 10) and stub.count() == 10
    with store.connection() as db:  # the lease is given back when the run ends
        assert db.execute("select lease_owner, lease_expires_at from runs").fetchone() == (None, None)
    spread("worker", "--once")  # idle: exits at once, samples nothing
    assert stub.count() == 10


def test_two_workers_never_sample_the_same_cell(store, stub, engine):
    stub.latency_s = 0.05
    runs = [queued_run(store, stub, n=12, concurrency=4) for _ in range(6)]
    first, second = worker("--once", lease_s=30), worker("--once", lease_s=30)
    outputs = [process.communicate(timeout=180) for process in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    claimed = [{int(line.split()[1].rstrip(":")) for line in err.splitlines() if line.endswith(": claimed")}
               for _, err in outputs]
    assert claimed[0] and claimed[1] and not claimed[0] & claimed[1]  # both worked, never on one run
    assert claimed[0] | claimed[1] == set(runs)
    for run_id in runs:
        assert status(store, run_id) == "done" and cells(store, run_id) == (12, 12)
    assert stub.count() == 6 * 12  # every cell asked once: no worker sampled another's


def test_a_run_whose_worker_is_killed_is_finished_by_another_after_the_lease_expires(store, stub, engine):
    # The case: 2,000 calls against a 200 ms server; a run this large is sampled in
    # a process of its own, which dies with its worker as a server's would.
    stub.latency_s = 0.2
    run_id = queued_run(store, stub, temperatures=[0.5, 1.0], n=1000, concurrency=64, max_calls=5000)
    first = worker()
    wait_for_answers(store, run_id, 300)
    first.send_signal(signal.SIGKILL)
    first.wait()
    time.sleep(0.5)
    before = cells(store, run_id)[0]
    assert 300 <= before < 2000
    time.sleep(0.5)
    assert cells(store, run_id)[0] == before  # its run's process died with it: nobody samples until the lease ends
    second = worker()  # polls: it claims the run by itself once the lease has expired
    deadline = time.time() + 300
    while status(store, run_id) != "done" and time.time() < deadline:
        time.sleep(0.2)
    second.terminate()
    _, err = second.communicate(timeout=60)
    assert f"run {run_id}: claimed" in err
    assert cells(store, run_id) == (2000, 2000) and status(store, run_id) == "done"  # no gap, no duplicate
    resampled = stub.count() - 2000
    print(f"killed at {before} answers; {resampled} calls asked again")
    assert 0 <= resampled <= 2 * 64  # at most the calls that were in flight (or not yet committed) again


def test_cancel_from_another_process_stops_the_worker_holding_the_run(store, stub, engine):
    stub.latency_s = 0.2
    run_id = queued_run(store, stub, n=200, concurrency=2)
    process = worker("--once", lease_s=30)
    wait_for_answers(store, run_id, 5)
    assert "cancel requested" in spread("cancel", str(run_id)).stdout
    process.communicate(timeout=60)  # --once: its only run ended, so it exits
    assert process.returncode == 0
    assert status(store, run_id) == "cancelled" and cells(store, run_id)[0] < 200


def test_a_lease_is_held_against_others_until_it_expires(store, stub, engine, monkeypatch):
    monkeypatch.setenv("SPREAD_LEASE_S", "1")
    run_id = queued_run(store, stub)
    with store.connection() as db:
        run_host = leases.new_owner().rsplit(":", 2)[0]
        alive = f"{run_host}:1:aaaa"  # pid 1 is alive: a live worker's claim
        assert leases.claim_next(db, alive) == (run_id, False)
        assert leases.claim_next(db, "other:2:bbbb") is None  # held: nobody else claims it
        with pytest.raises(SpreadError, match="being sampled by"):
            leases.claim(db, run_id, "other:2:bbbb")
        assert leases.renew(db, run_id, alive) == "running"
        time.sleep(1.2)  # the holder stopped renewing: its lease expires
        assert leases.claim_next(db, "other:2:bbbb") == (run_id, False)
        assert leases.renew(db, run_id, alive) is None  # the old holder learns it lost the run
        assert not leases.release(db, run_id, alive, "done")  # and cannot end it
        assert run_rows.get_run(db, run_id)["status"] == "running"


def test_a_cancelled_run_whose_worker_died_is_ended_not_sampled(store, stub, engine, monkeypatch):
    monkeypatch.setenv("SPREAD_LEASE_S", "1")
    run_id = queued_run(store, stub)
    with store.connection() as db:
        leases.claim_next(db, "elsewhere:1:aaaa")
        with write(db):
            db.execute("update runs set status = 'cancelling' where id = ?", [run_id])
        time.sleep(1.2)
        assert leases.claim_next(db, "other:2:bbbb") is None
        assert run_rows.get_run(db, run_id)["status"] == "cancelled"
    assert stub.count() == 0


def test_a_bad_lease_length_is_one_line():
    result = spread("worker", "--once", env={"SPREAD_LEASE_S": "soon"}, check=False)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "spread: error: SPREAD_LEASE_S must be a number of seconds, at least 1 (got 'soon')"]


@pytest.mark.postgres
def test_postgresql_stopped_mid_run_pauses_the_run_and_it_continues_losing_nothing(store, stub, postgres, pg_url, monkeypatch):
    monkeypatch.setenv("SPREAD_DB", pg_url)
    store = Store(pg_url)
    stub.latency_s = 0.05
    run_id = queued_run(store, stub, n=400, concurrency=8)
    process = worker("--once", lease_s=30)
    wait_for_answers(store, run_id, 50)
    postgres.stop()  # every connection is closed; new ones are refused
    try:
        time.sleep(10)
        asked = stub.count()
        time.sleep(1)
        assert stub.count() == asked  # paused: no new call while the store is away
    finally:
        postgres.start()
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert status(store, run_id) == "done" and cells(store, run_id) == (400, 400)
    assert stub.count() == 400  # every answer received during the stop was kept: none asked twice


def test_a_run_that_fails_before_it_begins_gives_its_lease_up(store, stub, monkeypatch):
    import asyncio

    from core.models import limits
    from core.run import runner

    run_id = queued_run(store, stub)

    def broken(spec):
        raise RuntimeError("cannot start")

    monkeypatch.setattr(limits.Gate, "for_run", broken)
    with pytest.raises(RuntimeError, match="cannot start"):
        asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        assert db.execute("select lease_owner from runs where id = ?", [run_id]).fetchone() == (None,)
        assert leases.claim_next(db, "other:2:bbbb") is None  # no worker takes it over only to fail again


@pytest.mark.postgres
def test_on_postgresql_a_server_runs_one_worker_and_a_started_run_is_queued_for_it(store, stub, pg_url, monkeypatch, tmp_path):
    from core.execution import launch, service

    monkeypatch.setenv("SPREAD_DB", pg_url)
    store = Store(pg_url)
    assert not service.for_this_server(Store(str(tmp_path / 'file.db')))  # SQLite: the app samples its own runs
    assert service.for_this_server(Store(pg_url)) and service.for_this_server(Store(pg_url))  # one worker, started once
    spec = plan.RunSpec(prompt="Q?", models=["openai/stub-a"], temperatures=[1.0], n=6, api_base=stub.base_url)
    run_id = launch.start(Store(pg_url), spec)
    assert launch.background().active() == []  # not sampled by the page's own machinery: queued
    deadline = time.time() + 60
    while status(store, run_id) != "done" and time.time() < deadline:
        time.sleep(0.2)
    assert status(store, run_id) == "done" and cells(store, run_id) == (6, 6)


def test_a_worker_stopped_with_sigterm_hands_its_run_back_for_another(store, stub):
    stub.latency_s = 0.1
    run_id = queued_run(store, stub, n=300, concurrency=8)
    first = worker(lease_s=30)
    wait_for_answers(store, run_id, 20)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert "queued for another worker" in err
    assert status(store, run_id) == "queued"  # handed back at once: no lease to wait for
    kept = cells(store, run_id)[0]
    assert 20 <= kept < 300
    asked = stub.count()
    assert asked - kept <= 8  # what it received was written; only the calls in flight are asked again
    assert spread("worker", "--once").returncode == 0
    assert status(store, run_id) == "done" and cells(store, run_id) == (300, 300) and stub.count() == 300 + asked - kept


SERVER = """
import sys, time
from core.run import plan
from core.execution import launch, service
from core.store import Store
store = Store()
if sys.argv[1:2] == ["start"]:  # this server starts the run from its Playground
    spec = plan.RunSpec(prompt="Q?", models=["openai/stub-a"], temperatures=[0.5, 1.0], n=1000,
                        api_base=sys.argv[2], concurrency=64, max_calls=5000)
    print(launch.start(store, spec), flush=True)
service.for_this_server(store)  # what app.py does in every server process
time.sleep(600)
"""


def app_server(*args):
    """An app server's process as far as runs go: launch.start and the server's worker."""
    return subprocess.Popen([sys.executable, "-c", SERVER, *args], cwd=ROOT, env=dict(os.environ, SPREAD_LEASE_S="3"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.postgres
def test_sigkill_one_of_two_app_servers_mid_run_and_the_other_finishes_it(store, stub, pg_url, monkeypatch):
    monkeypatch.setenv("SPREAD_DB", pg_url)
    store = Store(pg_url)
    stub.latency_s = 0.2
    first = app_server("start", stub.base_url)
    run_id = int(first.stdout.readline())
    wait_for_answers(store, run_id, 300)  # the first server's worker claimed it (the second is not up yet)
    second = app_server()
    try:
        first.send_signal(signal.SIGKILL)
        first.wait()
        deadline = time.time() + 300
        while status(store, run_id) != "done" and time.time() < deadline:
            time.sleep(0.2)
        assert status(store, run_id) == "done" and cells(store, run_id) == (2000, 2000)  # no gap, no duplicate
        assert stub.count() - 2000 <= 2 * 64  # at most what was in flight, asked again
    finally:
        second.kill()
        second.wait()
