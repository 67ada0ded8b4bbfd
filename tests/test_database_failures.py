"""A database that is unreachable, refuses the login or is named by a bad URL reads as one
line on the page (no exception box, no password) and one line in the log per change."""

import logging
import socket
import subprocess
import time

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from core.store import LoginRefused, Store, Unreachable, responses
from core.run import plan
from core.run.progress import LiveProgress
from core.store import status as database_status
from conftest import ROOT


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def plain(markdown: str) -> str:
    """Text as the reader sees it: without markdown escapes and anti-autolink word joiners."""
    return str(markdown).replace("\\", "").replace("\u2060", "")


def shown_text(at: AppTest) -> str:
    return "\n".join(plain(e.value) for e in [*at.error, *at.markdown, *at.caption])


@pytest.fixture
def fresh_status(monkeypatch):
    monkeypatch.setattr(database_status, "_last", None)
    # Streamlit's logger keeps the stream of an earlier test's capture: its write fails with a
    # "--- Logging error ---" traceback of the test harness, not of the app.
    monkeypatch.setattr(logging, "raiseExceptions", False)


@pytest.fixture(scope="session")
def password_user(postgres):
    """A role the test server asks a password of (its other users log in on trust)."""
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute("create role spread_pw login password 'right-password'")
    hba = postgres.data / "pg_hba.conf"
    script = (f"printf 'host all spread_pw 127.0.0.1/32 scram-sha-256\\n' | cat - {hba} > {hba}.new "
              f"&& mv {hba}.new {hba}")
    command = ["sh", "-c", script]
    if postgres._as_postgres:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True)
    postgres._run("pg_ctl", "-D", str(postgres.data), "reload")
    time.sleep(0.5)
    return "spread_pw"


def test_an_unreachable_database_is_one_line_on_the_page_and_once_in_the_log(monkeypatch, fresh_status, capfd):
    port = closed_port()
    monkeypatch.setenv("SPREAD_DB", f"postgresql://spread:hunter2@127.0.0.1:{port}/spread")
    at = app().run()
    assert not at.exception
    assert [plain(e.value) for e in at.error] == [f"The database at 127.0.0.1:{port} is unreachable; retrying every "
                                           f"{database_status.RETRY_S} s"]
    assert "hunter2" not in shown_text(at)
    at.run()
    assert not at.exception and len(at.error) == 1
    log = capfd.readouterr().err
    assert log.count("is unreachable") == 1 and "Traceback" not in log and "hunter2" not in log


@pytest.mark.postgres
def test_a_wrong_password_is_one_line_naming_the_user(postgres, password_user, monkeypatch, fresh_status, capfd):
    monkeypatch.setenv("SPREAD_DB", f"postgresql://{password_user}:wrong-password@127.0.0.1:{postgres.port}/postgres")
    at = app().run()
    assert not at.exception
    assert len(at.error) == 1
    assert plain(at.error[0].value).startswith(f"The database at 127.0.0.1:{postgres.port} refused the login for user "
                                        f"{password_user}")
    assert "wrong-password" not in shown_text(at)
    log = capfd.readouterr().err
    assert log.count("refused the login") == 1 and "Traceback" not in log and "wrong-password" not in log
    # the right password: the page draws, and the log says the database is back
    with psycopg.connect(postgres.url(), autocommit=True) as conn:
        conn.execute(f"create database spread_pw_db owner {password_user}")
    monkeypatch.setenv("SPREAD_DB",
                       f"postgresql://{password_user}:right-password@127.0.0.1:{postgres.port}/spread_pw_db")
    at = app().run()
    assert not at.exception and not at.error
    assert "reachable again" in capfd.readouterr().err


@pytest.mark.parametrize("url", ["postgresq://u:hunter2@127.0.0.1:5432/db", "postgresql:/u:hunter2@127.0.0.1/db"])
def test_a_bad_url_is_one_line_and_the_sidebar_never_shows_the_password(monkeypatch, fresh_status, url):
    # (The app runs in the project folder: a test that moved elsewhere would leave Streamlit
    # without .streamlit/config.toml for the tests after it.)
    before = set(ROOT.iterdir())
    monkeypatch.setenv("SPREAD_DB", url)
    at = app().run()
    assert not at.exception
    assert len(at.error) == 1 and plain(at.error[0].value).startswith(
        "SPREAD_DB is not a valid database URL: ")
    assert "hunter2" not in shown_text(at) and all("hunter2" not in plain(c.value) for c in at.sidebar.caption)
    assert set(ROOT.iterdir()) == before


def test_live_progress_keeps_its_last_state_during_an_outage(store, stub, monkeypatch):
    run_id = plan.create(store, plan.RunSpec(prompt="Capital of France?", models=["openai/stub-a"], temperatures=[1.0],
                                      n=3, api_base=stub.base_url))
    with store.connection() as db:
        responses.save_response(db, {"run_id": run_id, "model": "openai/stub-a", "temperature": 1.0, "sample_idx": 0,
                                 "text": "Paris", "attempts": 1})
    tracker = LiveProgress(store, run_id)
    before = tracker.refresh()
    assert before["received"] == 1 and "outage" not in before

    def down(*args, **kwargs):
        raise Unreachable("cannot open database", where="127.0.0.1:9")

    with monkeypatch.context() as outage:
        outage.setattr(store, "connection", down)
        during = tracker.refresh()
        assert during["received"] == 1 and during["status"] == before["status"]
        assert during["outage"] == \
            f"The database at 127.0.0.1:9 is unreachable; retrying every {database_status.RETRY_S} s"
        with pytest.raises(Unreachable):  # nothing to keep showing yet: the page says why instead
            LiveProgress(store, run_id).refresh()
    after = tracker.refresh()
    assert after["received"] == 1 and "outage" not in after


def test_each_failure_has_its_own_line_and_other_errors_are_not_hidden(monkeypatch):
    import sqlite3

    assert database_status.problem(Unreachable("x", where="db:5432")) == \
        f"The database at db:5432 is unreachable; retrying every {database_status.RETRY_S} s"
    assert database_status.problem(LoginRefused("x", where="db:5432", user="ana")).startswith(
        "The database at db:5432 refused the login for user ana")
    assert "locked by another writer" in database_status.problem(sqlite3.OperationalError("database is locked"))
    assert database_status.problem(ValueError("a bug")) is None
    assert database_status.problem(sqlite3.OperationalError("no such table: runs")) is None


@pytest.mark.postgres
def test_the_sidebar_names_the_database_without_its_user_or_password(pg_url, monkeypatch, fresh_status):
    monkeypatch.setenv("SPREAD_DB", pg_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@"))
    at = app().run()  # trust authentication: any password logs in
    assert not at.exception and not at.error
    captions = [plain(c.value) for c in at.sidebar.caption]
    assert any(f"PostgreSQL database {pg_url.rsplit('/', 1)[1]} on 127.0.0.1:" in c for c in captions)
    assert not [c for c in captions if "hunter2" in c or "postgres:" in c]
