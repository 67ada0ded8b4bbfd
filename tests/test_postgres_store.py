"""The store on a real PostgreSQL server (tests/pg_server.py): the same schema, the same
queries and the same commands as on a SQLite file."""

import multiprocessing
import os

import psycopg
import pytest

from core import config
from core.store import Store, describe, drafts, embeddings, migrations, responses
from core.store import runs as run_rows
from test_cli import last_json, spread

pytestmark = pytest.mark.postgres


def test_a_fresh_postgres_database_migrates_to_the_schema_of_a_sqlite_file(pg_url, tmp_path):
    with Store(tmp_path / 'same.db').connection() as db:
        on_sqlite = describe(db)
    with Store(pg_url).connection() as db:
        on_postgres = describe(db)
        applied = [row["name"] for row in db.query("select name from _sqlite_migrations order by id")]
    assert on_postgres == on_sqlite
    assert on_postgres["responses"]["unique"] == [["run_id", "variant", "input", "model", "temperature", "sample_idx"]]
    assert on_postgres["labels"]["unique"] == [["response_id", "reviewer"]]
    assert applied == [m.name for m in migrations._migrations]


def _open(url: str) -> None:
    with Store(url).connection() as db:
        db.execute("select 1")


def test_servers_starting_at_once_migrate_once(pg_url):
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.map(_open, [pg_url] * 4)
    with psycopg.connect(pg_url) as conn:
        names = [row[0] for row in conn.execute("select name from _sqlite_migrations")]
    assert sorted(names) == sorted(m.name for m in migrations._migrations)


def test_threads_opening_one_store_at_once_share_one_pool(pg_url, monkeypatch):
    """A server's page threads and its worker use one Store from its first moment: a pool
    made slow to open (as a real one is, against a remote server) is made once, and every
    connection goes back to the pool it came from."""
    import threading
    import time

    from core.store import postgres

    opened = []
    real_open = postgres.open_pool

    def slow_open(*args, **kwargs):
        time.sleep(0.2)  # the window in which a second thread also found no pool
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(postgres, "open_pool", slow_open)
    store, failures = Store(pg_url), []

    def use():
        try:
            with store.connection() as db:
                db.execute("select 1")
        except Exception as error:  # collected: a thread's exception would be lost
            failures.append(error)

    threads = [threading.Thread(target=use) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert failures == [] and len(opened) == 1


def test_answers_embeddings_and_drafts_read_back_as_written(pg_url):
    with Store(pg_url).connection() as db:
        spec = {"prompt": "Q?", "system": "", "name": "q", "models": ["m"], "temperatures": [0.7], "n": 3}
        run_id = run_rows.create_run(db, spec=spec, planned=3)
        responses.save_responses(db, [
            {"run_id": run_id, "model": "m", "temperature": 0.7, "sample_idx": 0, "text": "100% sure?",
             "cost_usd": 0.25, "latency_ms": 12.5, "prompt_tokens": 3},
            {"run_id": run_id, "model": "m", "temperature": 0.7, "sample_idx": 1, "error_type": "timeout",
             "error_message": "slow"},
        ])
        # a retried error becomes an answer; an answer is never overwritten
        responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 0.7, "sample_idx": 1, "text": "b"})
        responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 0.7, "sample_idx": 0, "text": "x"})
        rows = responses.of_run(db, run_id)
        embeddings.save_embeddings(db, "test", {"h1": b"\x00\x01\xff"}, 3)
        embeddings.save_embeddings(db, "test", {"h1": b"other"}, 3)
        vectors = embeddings.get_embeddings(db, "test", ["h1", "h2"])
        drafts.save_draft(db, "ana", {"prompt": "draft"})
        drafts.save_draft(db, "ana", {"prompt": "draft 2"})
        run = run_rows.get_run(db, run_id)
        listed = run_rows.list_runs(db)
    assert [(r["sample_idx"], r["text"], r["error_type"]) for r in rows] == [(0, "100% sure?", None), (1, "b", None)]
    assert rows[0]["cost_usd"] == 0.25 and rows[0]["prompt_tokens"] == 3 and rows[0]["temperature"] == 0.7
    assert vectors == {"h1": b"\x00\x01\xff"}
    assert run["received"] == 2 and run["answers"] == 2 and isinstance(run["received"], int)
    assert run["cost_usd"] == 0.25 and run["prompt_version"] == 1
    assert [r["id"] for r in listed] == [run_id]
    with Store(pg_url).connection() as db:
        assert drafts.get_draft(db, "ana") == {"prompt": "draft 2"}


def test_every_command_takes_a_url_and_never_makes_a_file_of_it(stub, pg_url, tmp_path):
    before = set(os.listdir(config.PROJECT_ROOT))
    result = spread("--db", pg_url, "run", "--prompt", "Capital of France?", "--model", "openai/stub-a",
                    "--temperature", "0", "--temperature", "1", "--n", "3", "--api-base", stub.base_url, "--json")
    summary = last_json(result)
    assert summary["responses"] == 6 and summary["errors"] == 0
    runs = last_json(spread("runs", "--json", env={"SPREAD_DB": pg_url}))
    assert [(r["id"], r["status"]) for r in runs] == [(summary["run_id"], "done")]
    shown = last_json(spread("--db", pg_url, "show", str(summary["run_id"]), "--json"))
    assert sum(cell["count"] for cell in shown["cells"]) == 6
    assert set(os.listdir(config.PROJECT_ROOT)) == before
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("select count(*) from responses").fetchone()[0] == 6


def test_a_server_that_cannot_be_reached_is_one_line_without_the_password():
    url = "postgresql://spread:hunter2@127.0.0.1:9/nowhere"
    with pytest.raises(config.SpreadError) as error:
        with Store(url).connection():
            pass
    assert "hunter2" not in str(error.value) and "\n" not in str(error.value)
    assert "spread:***@127.0.0.1:9/nowhere" in str(error.value)
    result = spread("--db", url, "runs", check=False)
    assert result.returncode != 0 and "hunter2" not in result.stderr + result.stdout
    assert result.stderr.strip().count("\n") == 0


def test_a_postgres_database_of_the_previous_schema_migrates_in_place_and_keeps_every_row(pg_url):
    """The previous release's schema (migrations up to m015) on PostgreSQL, holding an
    earlier release's own data (tests/data/schema10.db), opened by this release."""
    import sqlite3

    from conftest import ROOT
    from core.store import postgres, copy as store_copy

    with psycopg.connect(pg_url, autocommit=True) as raw:
        migrations.apply(postgres.PostgresDatabase(raw), stop_before="m016_labels_by_reviewer")
    old = sqlite3.connect(ROOT / "tests" / "data" / "schema10.db")
    old.row_factory = sqlite3.Row
    before = {}
    with psycopg.connect(pg_url) as conn:
        for table in store_copy.tables():
            if not old.execute("select 1 from sqlite_master where name = ?", [table]).fetchone():
                continue
            rows = [dict(r) for r in old.execute(f"select * from {table}")]
            before[table] = rows
            for row in rows:
                conn.execute(f"insert into {table} ({', '.join(row)}) values ({', '.join(['%s'] * len(row))})",
                             list(row.values()))
    assert sum(map(len, before.values())) > 20 and before["responses"] and before["labels"]

    with Store(pg_url).connection() as db:
        applied = [r["name"] for r in db.query("select name from _sqlite_migrations order by id")]
        after = {table: list(db.query(f"select * from {table} order by 1")) for table in before}
        leases = {r["lease_owner"] for r in db.query("select lease_owner from runs")}
        indexes = {r["indexname"] for r in db.query("select indexname from pg_indexes where tablename = 'labels'")}
        expected_calls = [r["correction_calls"] for r in db.query("select correction_calls from labels")]
    assert applied == [m.name for m in migrations._migrations]
    for table, rows in before.items():  # every old row, value by value, in the old columns
        columns = list(rows[0]) if rows else []
        assert sorted(repr([r[c] for c in columns]) for r in after[table]) == sorted(
            repr(list(row.values())) for row in rows), table
    assert leases == {None}
    assert "idx_labels_reviewer_response_id" in indexes  # m016
    assert expected_calls == [None] * len(before["labels"])  # m017: old labels have no expected calls


def test_a_table_option_postgres_does_not_implement_is_refused_not_ignored(pg_url):
    """sqlite-utils options the PostgreSQL table does not implement (alter=True would add
    columns on SQLite) fail loudly instead of doing something else."""
    with Store(pg_url).transaction() as db:
        with pytest.raises(TypeError):
            db["drafts"].insert({"owner": "x", "plan": "{}", "updated_at": "now"}, alter=True)
        with pytest.raises(TypeError):
            db["drafts"].upsert({"owner": "x", "plan": "{}", "updated_at": "now"}, pk="owner", alter=True)
        db["drafts"].upsert({"owner": "x", "plan": "{}", "updated_at": "now"}, pk="owner")
        assert db.execute("select plan from drafts where owner = 'x'").fetchone()[0] == "{}"
