"""The SQLite store on a real file."""

import multiprocessing
import sqlite3

import pytest
import sqlite_utils

from core import config
from core.store import Store, drafts, migrations, responses, runs





def make_run(db) -> int:
    spec = {"prompt": "Q?", "system": "", "name": "q", "models": ["m"], "temperatures": [1.0], "n": 50}
    variants = [{"label": "A", "name": "", "prompt": "Q?", "system": ""}]
    return runs.create_run(db, spec=spec, planned=50, variants=variants, inputs=[{}], rendered={(0, 0): ("", "Q?")})


@pytest.mark.sqlite_only
def test_new_database_has_plainly_named_tables_wal_and_recorded_migrations(store):
    with store.connection() as db:
        make_run(db)
    path = config.db_path()
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
    assert {"prompts", "runs", "responses", "_sqlite_migrations"} <= tables
    columns = {r[1] for r in conn.execute("pragma table_info(responses)")}
    assert {"id", "run_id", "model", "temperature", "sample_idx", "text", "error_type",
            "cost_usd", "latency_ms", "ttft_ms", "attempts", "seed", "provider_model"} <= columns
    assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"
    applied = [r[0] for r in conn.execute("select name from _sqlite_migrations")]
    assert applied == [m.name for m in migrations._migrations]


def test_an_error_row_is_replaced_by_an_answer_but_an_answer_is_never_overwritten(store):
    with store.connection() as db:
        run_id = make_run(db)
        cell = {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": 0}
        responses.save_response(db, cell | {"error_type": "timeout", "error_message": "slow"})
        responses.save_response(db, cell | {"text": "first answer"})
        responses.save_response(db, cell | {"text": "second answer"})
        rows = responses.of_run(db, run_id)
    assert len(rows) == 1
    assert rows[0]["text"] == "first answer" and rows[0]["error_type"] is None


def test_a_file_that_is_not_sqlite_gets_a_clear_error(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("hello, not a database" * 100)
    with pytest.raises(config.SpreadError, match="not a SQLite database"):
        with Store(bogus).connection():
            pass


def _writer(path: str, run_id: int, start: int, count: int) -> None:
    for i in range(start, start + count):
        with Store(path).connection() as db:
            responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0,
                                     "sample_idx": i, "text": f"answer {i}"})


def test_several_processes_write_at_once_without_losing_a_row(tmp_path):
    path = str(tmp_path / "shared.db")
    with Store(path).connection() as db:
        run_id = make_run(db)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, run_id, k * 25, 25)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with Store(path).connection() as db:
        assert db["responses"].count == 100


def test_a_database_made_by_the_previous_schema_migrates_in_place_and_loses_nothing(tmp_path):
    """tests/data/schema5.db was written by Spread before inputs and variants (migration 5):
    two runs against the stub, labels by two reviewers, a golden set, cached embeddings."""
    import shutil

    from conftest import ROOT
    from core.analyse import spread

    path = tmp_path / "old.db"
    shutil.copy(ROOT / "tests" / "data" / "schema5.db", path)
    before = sqlite3.connect(path)
    tables = ["prompts", "runs", "responses", "labels", "label_history", "golden_sets", "golden_items", "embeddings"]
    counts = {t: before.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}
    old_responses = before.execute("select * from responses order by id").fetchall()
    old_columns = [c[1] for c in before.execute("pragma table_info(responses)")]
    before.close()
    assert counts["responses"] == 19 and counts["labels"] == 3

    with Store(path).connection() as db:
        applied = [r[0] for r in db.execute("select name from _sqlite_migrations")]
        assert applied == [m.name for m in migrations._migrations]
        assert {t: db[t].count for t in tables} == counts  # nothing lost
        assert "detail" in db["golden_changes"].columns_dict  # m014: what a golden change did, in words
        after = [tuple(row[c] for c in old_columns) for row in db.query("select * from responses order by id")]
        assert after == old_responses  # every old value unchanged
        assert {(r["variant"], r["input"]) for r in db.query("select variant, input from responses")} == {(0, 0)}
        run = runs.get_run(db, 1)
        assert run["spec"]["variants"][0]["prompt"] == "What is the capital of France?"
        assert runs.rendered_prompts(db, 1) == {(0, 0): ("Answer briefly.", "What is the capital of France?")}
        assert runs.run_inputs(db, 1) == [{"input": 0, "vars": {}}]
        assert [v["label"] for v in runs.run_variants(db, 1)] == ["A"]
        # Prompt shapes (m012): old variants read as text prompts, old answers as text only.
        assert set(runs.run_variants(db, 1)[0]) == {"variant", "label", "prompt_id", "name", "version", "system",
                                                     "prompt"}
        assert runs.sent_messages(db, 1) == {}
        assert {(r["tool_calls"], r["json_value"]) for r in db.query("select * from responses")} == {(None, None)}
        assert responses.done_cells(db, 2) == {(0, 0, "openai/stub-a", 1.0, i) for i in range(3)}
        # m013: which deployment of a model group answered; an endpoint's group, router, model_info, tpm.
        assert {r["deployment"] for r in db.query("select deployment from responses")} == {None}
        assert {"deployments", "router", "info", "tpm"} <= set(db["endpoints"].columns_dict)
        # The new unique key holds: the same cell cannot be written twice.
        responses.save_response(db, {"run_id": 2, "model": "openai/stub-a", "temperature": 1.0, "sample_idx": 0,
                                 "text": "again"})
        assert db["responses"].count == 19
    analysis = spread.analyse_run(Store(path), 1, method="exact", with_map=False)
    assert sum(cell["count"] for cell in analysis.cells) == 16


PREVIOUS_RELEASE_TABLES = ["prompts", "runs", "run_variants", "run_inputs", "run_prompts", "responses", "labels",
                           "label_history", "golden_sets", "golden_items", "check_results", "regress_runs",
                           "endpoints", "cluster_decisions"]


def test_a_database_made_by_the_previous_release_migrates_in_place_and_loses_nothing(tmp_path):
    """tests/data/schema10.db was written by the previous release's `spread` command
    (migrations 1-10): an endpoint, a two-wording run over two inputs with a check,
    labels by two reviewers, a golden set, a reviewer's merge and two regress runs."""
    import shutil

    from conftest import ROOT

    path = tmp_path / "release.db"
    shutil.copy(ROOT / "tests" / "data" / "schema10.db", path)
    before = sqlite3.connect(path)
    before.row_factory = sqlite3.Row
    rows_before = {t: [tuple(r) for r in before.execute(f"select * from {t} order by rowid")]
                   for t in PREVIOUS_RELEASE_TABLES}
    columns_before = {t: [c[1] for c in before.execute(f"pragma table_info({t})")] for t in PREVIOUS_RELEASE_TABLES}
    before.close()
    assert len(rows_before["responses"]) == 24 and len(rows_before["regress_runs"]) == 2

    with Store(path).connection() as db:
        applied = [r[0] for r in db.execute("select name from _sqlite_migrations")]
        assert applied == [m.name for m in migrations._migrations]
        for table, old_rows in rows_before.items():
            columns = ", ".join(f'"{c}"' for c in columns_before[table])
            after = [tuple(r) for r in db.execute(f"select {columns} from {table} order by rowid")]
            assert after == old_rows, table  # every old row and value unchanged
        assert drafts.get_draft(db, "") is None  # new tables start empty
        run = runs.get_run(db, 1)
        assert [v["label"] for v in run["spec"]["variants"]] == ["A", "B"] and run["received"] == 16
        # m016: one reviewer's labels by index
        assert ["reviewer", "response_id"] in [index.columns for index in db["labels"].indexes]
        # m017: labels made before expected calls have none
        assert {r["correction_calls"] for r in db.query("select correction_calls from labels")} == {None}
        assert len(list(db.query("select correction_calls from labels"))) == len(rows_before["labels"])
        # m015: the previous release's runs have no lease, so no worker takes them over
        assert {(r["lease_owner"], r["lease_expires_at"], r["retry_errors"])
                for r in db.query("select lease_owner, lease_expires_at, retry_errors from runs")} == {(None, None, 0)}


def test_a_file_of_the_previous_schema_migrates_in_place_and_keeps_every_row(tmp_path):
    """The previous release's schema (migrations up to m015) in a SQLite file, holding an
    earlier release's own data (tests/data/schema10.db), opened by this release."""
    from conftest import ROOT
    from core.store import copy as store_copy

    path = tmp_path / "previous.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m016_labels_by_reviewer")
    old = sqlite3.connect(ROOT / "tests" / "data" / "schema10.db")
    old.row_factory = sqlite3.Row
    before = {}
    for table in store_copy.tables():
        if old.execute("select 1 from sqlite_master where name = ?", [table]).fetchone():
            before[table] = [dict(r) for r in old.execute(f"select * from {table}")]
            db[table].insert_all(before[table])
    db.close()
    assert before["responses"] and before["labels"] and not any(
        index.columns == ["reviewer", "response_id"] for index in sqlite_utils.Database(path)["labels"].indexes)

    with Store(path).connection() as db:
        applied = [r[0] for r in db.execute("select name from _sqlite_migrations order by id")]
        assert applied == [m.name for m in migrations._migrations]
        for table, rows in before.items():  # every old row, value by value, in the old columns
            columns = list(rows[0]) if rows else []
            after = [dict(r) for r in db.query(f"select * from {table}")]
            assert sorted(repr([r[c] for c in columns]) for r in after) == sorted(
                repr(list(row.values())) for row in rows), table
        assert ["reviewer", "response_id"] in [index.columns for index in db["labels"].indexes]  # m016
