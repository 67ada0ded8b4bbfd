"""A database value is read one strict way, and its password never leaves the process:
not into a file name, argv, an error, a log line or the page."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from core import config
from core.execution import launch
from core.run import plan
from core.store import Store, runs
from core.store import copy as store_copy

ROOT = Path(__file__).resolve().parent.parent

MISSPELT = [
    "postgresql:/u:pw@127.0.0.1:5432/db",
    "postgresq://u:pw@127.0.0.1:5432/db",
    "postgresql+psycopg://u:pw@127.0.0.1:5432/db",
    "mysql://u:pw@127.0.0.1:3306/db",
    "postgresql:u:pw@127.0.0.1:5432/db",
]


def spread_in(cwd: Path, *args, env=None) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=environment, timeout=120)


def everything_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize("url", MISSPELT)
def test_a_misspelt_url_is_refused_in_one_line_without_the_password_and_creates_nothing(tmp_path, url):
    cwd = tmp_path / "here"
    cwd.mkdir()
    result = spread_in(cwd, "--db", url, "runs")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pw" not in result.stderr + result.stdout
    assert "not a valid database URL" in lines[0] and "postgresql://" in lines[0] and "postgres://" in lines[0]
    assert everything_under(cwd) == set() and everything_under(tmp_path) == {"here"}
    # the same value in SPREAD_DB
    result = spread_in(cwd, "runs", env={"SPREAD_DB": url})
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "SPREAD_DB is not a valid database URL" in result.stderr and "pw" not in result.stderr
    assert everything_under(cwd) == set()


def test_strict_reading_of_database_values():
    assert config.database("PostgreSQL://u:pw@h:5/db") == "postgresql://u:pw@h:5/db"  # libpq wants lower case
    assert config.database("POSTGRES://h/db") == "postgres://h/db"
    assert config.is_url(config.database("postgres://h/db"))
    for path in ("data/spread.db", "/tmp/x.db", "C:/x.db", "team:copy.db", "hosts.db"):
        assert config.database(path) == Path(path)
    for url in MISSPELT + ["postgresql://u:pw@[::1/db", "postgresql://u:p%zz@h/db", "sqlite:///x.db",
                        "host=h user=u password=pw dbname=db"]:
        with pytest.raises(config.InvalidDatabase) as refused:
            config.database(url, "--db")
        assert "pw" not in str(refused.value) and "zz" not in str(refused.value)
        assert str(refused.value).startswith("--db is not a valid database URL")


def test_store_connect_never_makes_a_file_of_a_misspelt_url(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for url in MISSPELT:
        with pytest.raises(config.SpreadError):
            with Store(url).connection():
                pass
        monkeypatch.setenv("SPREAD_DB", url)
        with pytest.raises(config.SpreadError, match="SPREAD_DB is not a valid database URL"):
            config.db_path()
    assert everything_under(tmp_path) == set()


def test_db_copy_refuses_a_misspelt_url_before_reading_or_writing(tmp_path):
    source = tmp_path / "team.db"
    with Store(source).connection():
        pass
    before = everything_under(tmp_path)
    for args in ([str(source), "postgresq://spread:hunter2@127.0.0.1:1/spread"],
                 ["postgresql:/spread:hunter2@127.0.0.1:1/spread", str(tmp_path / "copy.db")]):
        result = spread_in(tmp_path, "db", "copy", *args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "hunter2" not in result.stderr + result.stdout and "***" not in result.stderr
        assert "not a valid database URL" in result.stderr
        with pytest.raises(config.InvalidDatabase):
            store_copy.copy(*args)
    assert everything_under(tmp_path) == before


LIBPQ_QUOTES = [  # libpq parse errors that quote the URL, or the token it could not read
    "postgresql://spread:hunter2@[::1/db",
    "postgresql://spread:hun%ter2@127.0.0.1:5432/db",
    "postgresql://spread:hunter2@127.0.0.1:5432/db?sslpassword=hunter2&bogus=1",
    "host=127.0.0.1 port=5432 user=spread password=hunter2 sslpassword='hunter2 x' bogus=1",
    "postgresql://spread:hunter2@127.0.0.1:abc/db",
]


@pytest.mark.parametrize("url", LIBPQ_QUOTES)
def test_libpq_errors_are_scrubbed_of_the_password(url):
    with pytest.raises(psycopg.Error) as raw:
        psycopg.connect(url, connect_timeout=2)
    assert "hunter2" not in config.scrub(str(raw.value), url) and "hun%ter2" not in config.scrub(str(raw.value), url)
    # the store says it in one line, scrubbed, whatever reaches it
    try:
        target = config.database(url)
    except config.InvalidDatabase as refused:
        assert "hunter2" not in str(refused) and "hun%ter2" not in str(refused)
        return
    with pytest.raises(config.SpreadError) as error:
        with Store(target).connection():
            pass
    assert "hunter2" not in str(error.value) and "hun%ter2" not in str(error.value) and "\n" not in str(error.value)


def test_scrub_knows_userinfo_conninfo_and_a_password_holding_an_at_sign():
    assert config.scrub("x postgresql://u:p@ss@h/db y") == "x postgresql://u:***@h/db y"
    assert config.scrub("host=h password=SECRET sslpassword='a b' user=u") == \
        "host=h password=*** sslpassword=*** user=u"
    assert "p/ss" not in config.scrub('bad token "p/ss"', "postgresql://u:p/ss@h/db")
    assert config.scrub("postgresql://u@h/db") == "postgresql://u@h/db"
    assert config.scrub("cannot open postgresql://postgres:postgres@h/db", "postgresql://postgres:postgres@h/db") \
        == "cannot open postgresql://***:***@h/db"  # the user, equal to the password, goes too
    assert "pw" not in config.described("postgresql://u:pw@h:5/db")
    assert config.described("postgresql://u:pw@h:5/db") == "PostgreSQL database db on h:5"


@pytest.mark.postgres
def test_a_run_in_its_own_process_never_shows_the_password_in_any_argv(store, pg_url, stub, monkeypatch):
    """A worker claims a 1,000-call run that needs a process of its own (and a sampler
    process forked by it): no process's command line holds the URL's password."""
    password = "Pw4ps-never-shown"
    url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{password}@")  # trust auth: any password
    monkeypatch.setenv("SPREAD_DB", url)
    store = Store(url)
    stub.latency_s = 0.03
    spec = plan.RunSpec(prompt="What is the capital of France?", models=["openai/stub-a"], temperatures=[1.0],
                        n=1000, api_base=stub.base_url, seed=1, concurrency=8)
    assert launch.needs_own_process(spec, spec.planned())
    run_id = launch.start(store, spec)  # PostgreSQL: queued for a worker
    worker = subprocess.Popen([sys.executable, "-m", "core.cli", "worker", "--once"], cwd=ROOT,
                              env=dict(os.environ, SPREAD_DB=url, SPREAD_SAMPLER_PROCESSES="1",
                                       PYTHONPATH=str(ROOT)),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Every command line ever read is kept: a process that has exited but is not yet
    # reaped (a zombie, for long on a loaded machine) reads as an empty one.
    seen: set[str] = set()
    try:
        while worker.poll() is None:
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        seen.add((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
                    except OSError:
                        pass
            time.sleep(0.05)
    finally:
        if worker.poll() is None:
            worker.kill()
    stderr = worker.stderr.read().decode(errors="replace")
    assert worker.returncode == 0, stderr
    assert any("core.execution.launch" in args for args in seen), stderr  # the run had its own process
    assert not [args for args in seen if password in args]
    assert password not in stderr
    with Store(url).connection() as db:
        assert runs.get_run(db, run_id)["answers"] == 1000
