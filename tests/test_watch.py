"""Monitors (core/watch/, `spread watch`): the contract end to end against the loopback
OpenAI stub and a loopback webhook receiver, schedules with injected time, one execution
per due time across processes on PostgreSQL, drift statistics, bad input, the migration,
and the Monitors page."""

import json
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.store import Store
from core.watch import alerts, drift, schedule
from test_cli import ROOT, last_json, spread as cli
from test_regress import answer_with, golden_file


class Receiver:
    """A loopback webhook receiver: counts deliveries; answers `fail_next` requests with 500."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.requests = 0
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests += 1
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.bodies.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0123/SECRET-TOKEN"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv(alerts.BACKOFF_ENV, "0.01")
    found = Receiver()
    yield found
    found.close()


def due(db, at=None, force=False) -> list[dict]:
    """`spread watch run-due` in this process (the CLI's own path is tested by the contract)."""
    import asyncio

    from core.watch import monitors

    return asyncio.run(monitors.run_due(Store(db), now=schedule.parse(at) if at else None, force=force))


def show(db, name="w1") -> dict:
    from core.watch import monitors

    return monitors.details(Store(db), name)


def in_process(stub, tmp_path, db, receiver_url, *, every="1h", n_items=1):
    """As `watched`, without a process per command."""
    from core.watch import monitors

    items = setup_set(stub, tmp_path, db, n_items)
    monitors.add(Store(db), "w1", set_name="gold", model="stubbed", temperature=1.0, n=5, every=every,
                 alert_urls=[receiver_url], now=schedule.parse("2026-03-02T10:00:00Z"))
    return items


def setup_set(stub, tmp_path, db, n_items, set_name="gold"):
    """A golden set of capitals and the endpoint `stubbed` on the stub, answering right."""
    from core.formats import golden_files
    from core.models import endpoints

    path, items = golden_file(tmp_path, n_items=n_items)
    golden_files.import_file(Store(db), set_name, path)
    if endpoints.get(Store(db), "stubbed") is None:
        endpoints.add(Store(db), endpoints.Endpoint(name="stubbed", model="openai/stub-a", api_base=stub.base_url))
    stub.respond = answer_with(items, right=True)
    return items


def watched(stub, tmp_path, db, receiver_url, *, every="1h", n_items=3):
    """The monitor w1 made by `spread watch add`, as the contract writes it."""
    items = setup_set(stub, tmp_path, db, n_items)
    added = cli("--db", db, "watch", "add", "w1", "--golden", "gold", "--model", "stubbed", "--temperature", "1",
                "--n", "5", "--every", every, "--alert", receiver_url, "--json", "--now", "2026-03-02T10:00:00Z")
    return items, last_json(added)


def test_the_contract_one_alert_per_change_of_state_and_a_model_change_is_a_signal(
        stub, tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-123")
    db = str(tmp_path / "watch.db")
    items, monitor = watched(stub, tmp_path, db, receiver.url)
    assert monitor["name"] == "w1" and monitor["every"] == "1h" and monitor["state"] == "ok"
    assert monitor["alerts"] == [alerts.shown(receiver.url)] and "SECRET-TOKEN" not in json.dumps(monitor)

    first = last_json(cli("--db", db, "watch", "run-due", "--force", "--json"))  # the baseline
    assert [c["monitor"] for c in first["checks"]] == ["w1"] and first["checks"][0]["state"] == "ok"
    same = last_json(cli("--db", db, "watch", "run-due", "--force", "--json"))["checks"][0]
    assert same["state"] == "ok" and same["alerted"] is False and same["verdict"] == "pass"
    assert [s["kind"] for s in same["signals"]][0] == "gate"
    assert not any(s["alerting"] for s in same["signals"])
    assert receiver.requests == 0

    stub.respond = answer_with(items, right=False)
    worse = last_json(cli("--db", db, "watch", "run-due", "--force", "--json"))["checks"][0]
    assert worse["verdict"] in ("fail", "inconclusive") and worse["state"] == "alerting"
    assert worse["alerted"] is True and receiver.requests == 1
    kinds = {s["kind"]: s for s in worse["signals"]}
    assert kinds["gate"]["alerting"] and kinds["meaning_shift"]["alerting"]
    assert kinds["meaning_shift"]["p_value"] < 0.001 and len(kinds["meaning_shift"]["items"]) == len(items)
    body = receiver.bodies[0]
    assert body["monitor"] == "w1" and body["state"] == "alerting" and body["previous_state"] == "ok"
    assert body["verdict"] == worse["verdict"] and "text" in body and "w1" in body["text"]
    assert {s["kind"] for s in body["signals"]} >= {"gate", "meaning_shift"}
    sent = json.dumps(body)
    assert "sk-test-secret-key-123" not in sent and "SECRET-TOKEN" not in sent and stub.base_url not in sent

    again = last_json(cli("--db", db, "watch", "run-due", "--force", "--json"))["checks"][0]
    assert again["state"] == "alerting" and again["alerted"] is False and receiver.requests == 1

    stub.respond = answer_with(items, right=True)
    stub.model_suffix = "-2026-swapped"
    swapped = last_json(cli("--db", db, "watch", "run-due", "--force", "--json"))["checks"][0]
    assert any(s["kind"] == "model_changed" and s["alerting"] for s in swapped["signals"])
    assert swapped["state"] == "alerting" and receiver.requests == 1  # still alerting: no new message

    stub.model_suffix = "-2024-stub"
    back = last_json(cli("--db", db, "watch", "run-due", "--force", "--json"))["checks"][0]
    assert back["state"] == "ok" and back["alerted"] is True and receiver.requests == 2
    assert receiver.bodies[1]["state"] == "ok" and receiver.bodies[1]["previous_state"] == "alerting"


def test_a_failed_delivery_is_retried_with_backoff_then_shown(stub, tmp_path, receiver):
    db = str(tmp_path / "watch.db")
    items = in_process(stub, tmp_path, db, receiver.url, n_items=2)
    due(db, force=True)
    stub.respond = answer_with(items, right=False)
    receiver.fail_next = 2  # two 500s, then delivered
    worse = due(db, force=True)[0]
    assert worse["alerted"] is True and receiver.requests == 3 and len(receiver.bodies) == 1

    stub.respond = answer_with(items, right=True)
    receiver.fail_next = 100  # the receiver is broken: every attempt fails
    back = due(db, force=True)[0]
    assert back["state"] == "ok" and back["alerted"] is False and receiver.requests == 3 + alerts.ATTEMPTS
    shown = cli("--db", db, "watch", "show", "w1")
    assert "ALERT NOT DELIVERED" in shown.stdout and "HTTP 500" in shown.stdout
    assert "SECRET-TOKEN" not in shown.stdout
    details = show(db)
    assert details["failed_deliveries"][0]["attempts"] == alerts.ATTEMPTS
    assert details["state"] == "ok" and details["announced_state"] == "alerting"

    receiver.fail_next = 0  # the next check tells the receiver what it missed, once
    later = due(db, force=True)[0]
    assert later["alerted"] is True and receiver.bodies[-1]["state"] == "ok"
    due(db, force=True)
    assert len(receiver.bodies) == 2


def test_due_times_with_injected_time_and_a_missed_window_runs_once(stub, tmp_path, receiver):
    from core.watch import monitors

    db = str(tmp_path / "watch.db")
    in_process(stub, tmp_path, db, receiver.url)
    assert len(due(db, "2026-03-02T10:00:30Z")) == 1  # due at once (10:00)
    assert due(db, "2026-03-02T10:40:00Z") == []  # next at 11:00
    assert len(due(db, "2026-03-02T11:00:00Z")) == 1
    # Every server down for five hours: one check on return, then the next slot after now.
    assert len(due(db, "2026-03-02T16:20:00Z")) == 1
    assert due(db, "2026-03-02T16:59:59Z") == []
    assert show(db)["next_due_at"] == "2026-03-02T17:00:00+00:00"
    monitors.set_paused(Store(db), "w1", True)
    assert due(db, "2026-03-02T18:00:00Z") == []
    monitors.set_paused(Store(db), "w1", False, now=schedule.parse("2026-03-02T18:30:00Z"))
    assert show(db)["next_due_at"] == "2026-03-02T19:00:00+00:00"
    assert [c["due_at"] for c in show(db)["checks"]] == ["2026-03-02T10:00:00+00:00", "2026-03-02T11:00:00+00:00",
                                                         "2026-03-02T12:00:00+00:00"]  # the first slot missed


def test_schedules_parse_with_croniter():
    moment = datetime(2026, 3, 2, 10, 7, tzinfo=timezone.utc)
    assert schedule.next_after("15m", moment) == moment.replace(minute=15)
    assert schedule.next_after("6h", moment) == moment.replace(hour=12, minute=0)
    assert schedule.next_after("1d", moment) == datetime(2026, 3, 3, tzinfo=timezone.utc)
    assert schedule.next_after("30 9 * * 1-5", moment) == datetime(2026, 3, 3, 9, 30, tzinfo=timezone.utc)
    assert schedule.previous_at_or_before("1h", moment) == moment.replace(minute=0)
    assert schedule.checks_per_month("0 9 * * *") == 30


@pytest.mark.parametrize("args, message", [
    (["--golden", "nope"], "no golden set named 'nope'"),
    (["--model", "missing"], "no endpoint named 'missing'"),
    (["--every", "every tuesday"], "is neither 15m, 1h, 6h, 1d nor a cron expression"),
    (["--every", "61 * * * *"], "is neither"),
    (["--alert", "ftp://example.com/hook"], "is not an http(s) URL"),
    (["--baseline", "1"], "is of the set 'other', not 'gold'"),
    (["--baseline", "last"], "neither a regress run id nor `first`"),
])
def test_bad_input_is_one_line_and_writes_nothing(stub, tmp_path, capsys, args, message):
    import asyncio

    from core.cli import main
    from core.evaluate import regress

    db = str(tmp_path / "watch.db")
    setup_set(stub, tmp_path, db, 1)
    setup_set(stub, tmp_path, db, 1, set_name="other")
    asyncio.run(regress.regress(Store(db), "other", regress.Candidate(model="stubbed", n=2), regress.Gates()))
    base = {"--golden": "gold", "--model": "stubbed", "--every": "1h"}
    given = dict(zip(args[::2], args[1::2]))
    argv = [a for k, v in {**base, **given}.items() for a in (k, v)]
    capsys.readouterr()
    code = main(["--db", db, "watch", "add", "w1", *argv])
    error = capsys.readouterr().err
    assert code == 2 and message in error and len(error.strip().splitlines()) == 1
    assert show_all(db) == []


@pytest.mark.postgres
def test_two_processes_never_run_one_due_check_twice_on_postgresql(stub, tmp_path, receiver, pg_url):
    in_process(stub, tmp_path, pg_url, receiver.url)
    runs = [subprocess.Popen([sys.executable, "-m", "core.cli", "--db", pg_url, "watch", "run-due", "--json",
                              "--now", "2026-03-02T10:05:00Z"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in runs]
    assert all(p.returncode == 0 for p in runs), [o[1] for o in outputs]
    checks = [json.loads(out.strip().splitlines()[-1])["checks"] for out, _ in outputs]
    assert sorted(len(c) for c in checks) == [0, 1]
    with Store(pg_url).connection() as db:
        assert db.execute("select count(*) from monitor_checks").fetchone()[0] == 1
        assert db.execute("select count(*) from regress_runs").fetchone()[0] == 1


def test_the_worker_runs_due_monitors_with_nobody_looking(stub, tmp_path, receiver):
    db = str(tmp_path / "watch.db")
    in_process(stub, tmp_path, db, receiver.url)
    worker = cli("--db", db, "worker", "--once")
    assert "monitor w1: checked" in worker.stderr
    details = show(db)
    assert len(details["checks"]) == 1 and details["checks"][0]["status"] == "done"
    assert details["baseline_id"] == details["checks"][0]["regress_id"]
    again = cli("--db", db, "worker", "--once")  # not due again before the next slot
    assert "monitor w1" not in again.stderr


def test_meaning_shift_is_permutation_chi_square_with_holm():
    same = {f"item{i}": ([0, 0, 0, 1, 1], [0, 0, 1, 1, 0]) for i in range(4)}
    assert not any(r["shifted"] for r in drift.meaning_shift(same, 0.05))
    moved = dict(same, item9=([0] * 10, [1] * 10))
    rows = {r["item"]: r for r in drift.meaning_shift(moved, 0.05)}
    assert rows["item9"]["shifted"] and rows["item9"]["p_value"] <= 0.002
    assert rows["item9"]["p_adjusted"] == pytest.approx(min(1.0, 5 * rows["item9"]["p_value"]), abs=1e-6)
    assert rows["item9"]["before"] == {"0": 1.0} and rows["item9"]["after"] == {"1": 1.0}


def test_the_slow_slide_test_waits_for_its_warmup_then_catches_a_sustained_drop():
    item_rates = [0.8] * 20
    steady = [0.8] * (drift.WARMUP + 60)
    assert drift.slow_slide(0.8, item_rates, 5, steady[:drift.WARMUP]) is None
    assert drift.slow_slide(0.8, item_rates, 5, steady)["alarm"] is False
    dropped = steady + [0.7] * 10
    assert drift.slow_slide(0.8, item_rates, 5, dropped)["alarm"] is True


def test_a_webhook_url_is_shown_only_as_its_host():
    assert alerts.shown("https://hooks.slack.com/services/T0/B0/XYZSECRET") == "https://hooks.slack.com/…"
    with pytest.raises(Exception, match="holds a password"):
        alerts.check_url("https://user:pw@example.com/hook")


@pytest.mark.sqlite_only
def test_a_database_made_before_monitors_opens_and_keeps_its_rows(tmp_path):
    from core.store.schema import Database, migrations

    path = tmp_path / "old.db"
    old = Database(path)
    migrations.apply(old, stop_before="m020_monitors")
    old["golden_sets"].insert({"name": "kept", "description": "", "version": 3, "created_at": "x", "created_by": ""})
    old.close()
    with Store(str(path)).connection() as db:
        assert [tuple(r) for r in db.execute("select name, version from golden_sets").fetchall()] == [("kept", 3)]
        assert db.execute("select count(*) from monitors").fetchone()[0] == 0
        assert "m020_monitors" in [r[0] for r in db.execute("select name from _sqlite_migrations")]


@pytest.mark.postgres
def test_a_postgres_database_made_before_monitors_migrates_in_place(pg_url):
    import psycopg

    from core.store import postgres
    from core.store.schema import migrations

    with psycopg.connect(pg_url, autocommit=True) as raw:
        migrations.apply(postgres.PostgresDatabase(raw), stop_before="m020_monitors")
        raw.execute("insert into golden_sets (name, description, version, created_at, created_by) "
                    "values ('kept', '', 3, 'x', '')")
    with Store(pg_url).connection() as db:
        assert [tuple(r) for r in db.execute("select name, version from golden_sets").fetchall()] == [("kept", 3)]
        assert db.execute("select count(*) from monitor_checks").fetchone()[0] == 0


def test_the_monitors_page_shows_state_history_and_a_failed_delivery_and_pauses(stub, tmp_path, receiver):
    import os

    from test_pages import app

    db = os.environ["SPREAD_DB"]
    items = in_process(stub, tmp_path, db, receiver.url, n_items=2)
    due(db, force=True)
    due(db, force=True)
    stub.respond = answer_with(items, right=False)
    receiver.fail_next = 100
    due(db, force=True)
    at = app()
    at.switch_page("pages/monitors.py").run()
    assert not at.exception
    assert any("w1 is alerting" in e.value for e in at.error)
    warning = next(w.value for w in at.warning if "Alert not delivered" in w.value)
    assert "HTTP 500" in warning and "SECRET-TOKEN" not in warning
    assert "SECRET-TOKEN" not in json.dumps([c.value for c in at.caption])
    assert len(at.get("plotly_chart")) >= 2  # the pass rate and the meanings at least
    assert any("gate fail" in e.value for e in at.error)  # the newest check's signals
    next(b for b in at.button if b.label == "Pause").click().run()
    assert not at.exception and show(db)["paused"] is True
    assert next(b for b in at.button if b.label == "Resume")
    compare = next(b for b in at.button if b.label == "Compare with the baseline")
    compare.click().run()
    assert not at.exception
    assert at.session_state["run_A"] == 1 and at.session_state["run_B"] == 3


def test_a_monitor_is_created_on_the_page_and_bad_input_is_one_line(store, stub, tmp_path):
    import os

    from core.formats import golden_files
    from test_pages import app

    path, _ = golden_file(tmp_path, n_items=1)
    golden_files.import_file(store, "gold", path)
    at = app()
    at.switch_page("pages/monitors.py").run()
    assert not at.exception and any("No monitors yet" in i.value for i in at.info)
    form = at.text_input
    form[0].input("nightly")
    form[1].input("openai/stub-a")
    form[2].input("every tuesday")
    at.button[0].click().run()
    assert any("is neither 15m" in e.value for e in at.error)
    assert show_all(os.environ["SPREAD_DB"]) == []
    at.text_input[2].input("1d")
    at.button[0].click().run()
    assert not at.exception and [m["name"] for m in show_all(os.environ["SPREAD_DB"])] == ["nightly"]


def show_all(db) -> list[dict]:
    from core.watch import monitors

    return monitors.listing(Store(db))


@pytest.mark.postgres
def test_two_app_servers_nobody_browsed_run_a_due_check_once_on_postgresql(stub, tmp_path, receiver, pg_url):
    from test_server_workers import app_servers, wait_until

    in_process(stub, tmp_path, pg_url, receiver.url)
    with app_servers(2, pg_url, tmp_path):
        done = wait_until(lambda: [c for c in show(pg_url)["checks"] if c["status"] == "done"], 90, 0.5)
        assert done
        time.sleep(2)  # the other server's worker has polled meanwhile
        checks = show(pg_url)["checks"]
    assert len(checks) == 1 and checks[0]["status"] == "done"


def test_an_app_server_on_sqlite_nobody_browsed_runs_a_due_check(stub, tmp_path, receiver):
    from test_server_workers import app_servers, wait_until

    db = str(tmp_path / "watch.db")
    in_process(stub, tmp_path, db, receiver.url)
    with app_servers(1, db, tmp_path) as servers:
        done = wait_until(lambda: [c for c in show(db)["checks"] if c["status"] == "done"], 90, 0.5)
        assert done, servers[0].log_path.read_text()[-2000:]


def test_a_webhook_named_by_its_variable_never_reaches_the_database(stub, tmp_path, receiver, monkeypatch):
    import sqlite3

    from core.watch import monitors

    db = str(tmp_path / "watch.db")
    items = setup_set(stub, tmp_path, db, 1)
    monkeypatch.setenv("TEAM_HOOK", receiver.url)
    monitors.add(Store(db), "w1", set_name="gold", model="stubbed", n=5, every="1d", alert_urls=["env:TEAM_HOOK"])
    due(db, force=True)
    stub.respond = answer_with(items, right=False)
    assert due(db, force=True)[0]["alerted"] is True and len(receiver.bodies) == 1
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert "env:TEAM_HOOK" in dump and "SECRET-TOKEN" not in dump
    assert show(db)["alerts"] == ["env:TEAM_HOOK"]
    with pytest.raises(Exception, match="does not name a variable"):
        alerts.check_url("env:not a name")


@pytest.mark.postgres
def test_claimers_that_all_saw_a_monitor_due_run_it_once_on_postgresql(stub, tmp_path, receiver, pg_url, monkeypatch):
    """The race itself: four claimers read the monitor as due before any of them claims it
    (a stale read, as two servers polling at the same instant have)."""
    from concurrent.futures import ThreadPoolExecutor

    from core.store import monitors as repo
    from core.watch import due as due_module

    in_process(stub, tmp_path, pg_url, receiver.url)
    at = schedule.parse("2026-03-02T10:05:00Z")
    with Store(pg_url).connection() as db:
        seen = repo.due(db, schedule.text(at))
    monkeypatch.setattr(repo, "due", lambda db, now: [dict(m) for m in seen])
    stores = [Store(pg_url) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        won = list(pool.map(lambda s: due_module.claim_due(s, at, claimer=f"c{id(s)}"), stores))
    assert sorted(len(w) for w in won) == [0, 0, 0, 1]
    with Store(pg_url).connection() as db:
        assert db.execute("select count(*) from monitor_checks").fetchone()[0] == 1
    # And the row's own guard: the same due time cannot be recorded twice.
    with Store(pg_url).connection() as db:
        check = db.execute("select monitor_id, due_at from monitor_checks").fetchone()
        assert repo.start_check(db, check[0], check[1], forced=False, claimed_by="late", started_at="x") is None


def test_a_check_whose_worker_is_killed_mid_check_is_ended_by_another_worker(stub, tmp_path, receiver):
    """The worker running a check dies (SIGKILL) while its run samples: another worker takes
    the run over and judges it (its regression's request is in the store), and, once the
    check has stayed unended for ORPHANED_AFTER_S, ends it as its worker would have: state,
    signals, one alert."""
    import asyncio
    import os
    import signal
    from datetime import timedelta

    from core.watch import due as due_checks
    from core.watch import monitors

    db = str(tmp_path / "watch.db")
    items = in_process(stub, tmp_path, db, receiver.url, n_items=2)
    assert due(db, force=True)[0]["state"] == "ok"  # the baseline
    stub.respond = answer_with(items, right=False)
    stub.latency_s = 0.3  # 10 calls at 8 in flight: the check samples for a while
    checking = subprocess.Popen([sys.executable, "-m", "core.cli", "--db", db, "watch", "run-due", "--force"],
                                cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    from core.store import runs

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # killed while its run samples: some answers in, not all
        checks = show(db)["checks"]
        if len(checks) == 2 and checks[-1]["run_id"] is not None:
            with Store(db).connection() as conn:
                if runs.get_run(conn, checks[-1]["run_id"])["received"] > 0:
                    break
        time.sleep(0.02)
    checking.send_signal(signal.SIGKILL)
    checking.wait()
    stub.latency_s = 0.0
    check = show(db)["checks"][-1]
    assert check["status"] == "running" and check["run_id"] is not None

    took_over = cli("--db", db, "worker", "--once")  # the run's holder is gone from this host: claimed at once
    assert f"run {check['run_id']}: done" in took_over.stderr
    store = Store(db)
    assert monitors.regress.for_run(store, check["run_id"]) is not None  # judged by the worker that finished it
    assert due_checks.orphaned_checks(store) == []  # just judged: its own worker could still be ending it
    later = schedule.utc(datetime.now(timezone.utc)) + timedelta(seconds=due_checks.ORPHANED_AFTER_S + 1)
    (ended,) = asyncio.run(monitors.end_orphans(store, now=later))
    assert ended["check_id"] == check["id"] and ended["verdict"] in ("fail", "inconclusive")
    assert ended["state"] == "alerting" and ended["alerted"] is True and receiver.requests == 1
    final = show(db)
    assert final["state"] == "alerting" and final["checks"][-1]["status"] == "done"
    assert asyncio.run(monitors.end_orphans(store, now=later)) == []  # ended once


@pytest.mark.parametrize("stream", [True, False])
def test_the_system_fingerprint_is_kept_with_each_answer(stub, tmp_path, stream):
    """OpenAI's `system_fingerprint`, in the whole answer or in every chunk of a stream."""
    import asyncio

    from core.run import plan, runner
    from core.store import responses

    store = Store(str(tmp_path / "fp.db"))
    stub.fingerprint = "fp_44709d6fcb"
    run_id = plan.create(store, plan.RunSpec(prompt="Capital of France?", models=["openai/stub-a"], temperatures=[1.0],
                                             n=3, api_base=stub.base_url, stream=stream))
    asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        assert [row["system_fingerprint"] for row in responses.of_run(db, run_id)] == ["fp_44709d6fcb"] * 3


def test_a_new_system_fingerprint_is_shown_and_alerts_nobody_while_the_answers_hold(stub, tmp_path, receiver):
    from core.store import responses

    db = str(tmp_path / "watch.db")
    in_process(stub, tmp_path, db, receiver.url, n_items=2)
    stub.fingerprint = "fp_44709d6fcb"
    assert due(db, force=True)[0]["state"] == "ok"  # the baseline
    same = due(db, force=True)[0]
    assert "fingerprint_changed" not in [s["kind"] for s in same["signals"]]
    stub.fingerprint = "fp_b7e2c1d0aa"
    moved = due(db, force=True)[0]
    (signal,) = [s for s in moved["signals"] if s["kind"] == "fingerprint_changed"]
    assert signal["before"] == ["fp_44709d6fcb"] and signal["new"] == ["fp_b7e2c1d0aa"] and not signal["alerting"]
    assert moved["state"] == "ok" and moved["verdict"] == "pass" and receiver.requests == 0
    with Store(db).connection() as conn:
        kept = {row["system_fingerprint"] for row in responses.of_run(conn, moved["run_id"])}
    assert kept == {"fp_b7e2c1d0aa"}
