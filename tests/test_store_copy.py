"""`spread db copy`: a whole database to another file or engine, ids and values kept."""

import hashlib
import shutil
import sqlite3

import pytest
from conftest import ROOT
from test_cli import last_json, spread

from core.store import Store, describe, drafts, embeddings, responses, runs, write
from core.config import SpreadError
from core.models import endpoints
from core.review import decisions, golden, labels
from core.store import copy as store_copy


def populated(store, path) -> str:
    """The previous release's database (tests/data/schema10.db) migrated, plus one of
    everything since: a run with answers (tool calls, JSON, an error row, unknown cost),
    labels edited (history), a golden set with versions, an endpoint, a decision, a
    draft, embeddings, a pair judgement and a production call."""
    shutil.copy(ROOT / "tests" / "data" / "schema10.db", path)
    path = str(path)
    with Store(path).connection() as db:
        spec = {"prompt": "Capital of {{country}}?", "name": "capitals", "models": ["openai/a"],
                "temperatures": [0.7], "n": 3}
        run_id = runs.create_run(db, spec=spec, planned=6, variants=[{"label": "A", "name": "", "prompt": spec["prompt"],
                                                                      "system": "Be brief."}],
                                  inputs=[{"country": "France"}, {"country": "Perú"}],
                                  rendered={(0, 0): ("Be brief.", "Capital of France?"),
                                            (0, 1): ("Be brief.", "Capital of Perú?")})
        responses.save_responses(db, [
            {"run_id": run_id, "input": i, "model": "openai/a", "temperature": 0.7, "sample_idx": k,
             "text": f"Answer {i}.{k} — ünïcode", "cost_usd": None if k else 0.000123, "latency_ms": 12.5 + k,
             "tool_calls": '[{"name": "f", "arguments": {"x": 1}}]' if k == 1 else None,
             "json_value": '{"a": 1.5}' if k == 2 else None}
            for i in range(2) for k in range(3)])
        responses.save_response(db, {"run_id": run_id, "input": 1, "model": "openai/a", "temperature": 0.7,
                                 "sample_idx": 3, "error_type": "timeout", "error_message": "slow"})
        ids = [r["id"] for r in responses.of_run(db, run_id)]
        drafts.save_draft(db, "ana", {"prompt": "draft", "n": 3})
        embeddings.save_embeddings(db, "minilm", {"h1": b"\x00\x01\xff" * 8, "h2": bytes(range(256))}, 6)
        with write(db):
            db["pair_judgements"].insert({"key": "k1", "model": "openai/judge", "same": 1, "created_at": "now"})
            from core.formats.traces.calls import Call
            from core.store import traces as stored_calls

            stored_calls.insert_calls(db, [Call(
                "span:t:s", "otlp", started_at="2026-12-01T10:00:00+00:00", model_requested="openai/a",
                messages=[{"role": "user", "content": "Capital of Perú?"}], output_text="Lima — ünïcode",
                cost_usd=None, latency_ms=12.5, attributes={"k": [1, 2.5]}).row() | {"redactions": 0}])
            # The tables of sampling until settled, provider batches, monitors, serving and
            # regressions asked for: a row each.
            values = {int: 1, float: 0.5, str: "x — ü", bytes: b"\x00\xff"}
            for table, columns in store_copy.tables().items():
                if table in ("cell_settling", "provider_batches", "monitors", "monitor_checks", "monitor_alerts",
                             "serve_runs", "serve_requests", "regress_requests"):
                    kinds = describe(db)[table]["columns"]
                    db[table].insert({c: run_id if c == "run_id" else values[{"int": int, "float": float, "str": str,
                                                                              "bytes": bytes}[kinds[c]]]
                                      for c in columns if c != "id"})
    labels.label(Store(path), ids[0], "ana", labels.Label("pass"))
    labels.label(Store(path), ids[0], "ana", labels.Label("fail", score=2, tags=["wrong"], note="edited"))
    labels.label(Store(path), ids[1], "ben", labels.Label("pass", correction="Paris"))
    golden.create_set(Store(path), "rivers", description="two", created_by="ana")
    golden.add_responses(Store(path), "rivers", [ids[1]], who="ana")
    key = golden.items(Store(path), "rivers")[0]["item_key"]
    golden.edit_item(Store(path), "rivers", key, tags=["geo"], who="ben")
    endpoints.add(Store(path), endpoints.Endpoint(name="team", model="openai/x", api_base="http://gpu:8000/v1",
                                     params={"top_k": 40}, price_in=0.5, price_out=1.5), who="ana")
    decisions.record(Store(path), run_id, 0, "merge", "Paris.", "It is Paris.", reviewer="ana")
    return path


def dump(path) -> dict[str, list[tuple]]:
    """Every table of the schema, every row and value, in key order."""
    conn = sqlite3.connect(path)
    try:
        return {table: conn.execute(f"select {', '.join(columns)} from {table} order by "
                                    f"{', '.join(_key(conn, table))}").fetchall()
                for table, columns in store_copy.tables().items()}
    finally:
        conn.close()


def _key(conn, table) -> list[str]:
    pk = [r[1] for r in sorted(conn.execute(f"pragma table_info({table})"), key=lambda r: r[5]) if r[5]]
    return pk or [r[1] for r in conn.execute(f"pragma table_info({table})")]


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_the_schema_names_every_table_parents_first():
    tables = list(store_copy.tables())
    assert {"runs", "run_variants", "run_inputs", "run_prompts", "responses", "embeddings", "labels",
            "label_history", "golden_sets", "golden_items", "golden_changes", "endpoints", "cluster_decisions",
            "pair_judgements", "check_results", "regress_runs", "drafts", "prompts"} <= set(tables)
    assert not [t for t in tables if t.startswith("_")]  # the migrations' own table is the target's business
    assert tables.index("prompts") < tables.index("runs") < tables.index("responses") < tables.index("labels")


def test_a_copy_between_files_keeps_every_row_and_value(store, tmp_path):
    source = populated(store, tmp_path / "team.db")
    before = dump(source)
    assert all(before[t] for t in store_copy.tables())  # every table has something to copy
    counts = store_copy.copy(source, str(tmp_path / "copy.db"))
    assert dump(tmp_path / "copy.db") == before
    assert counts == {t: len(rows) for t, rows in before.items()}
    # the copy is a working database: new rows get new ids, references hold
    with Store(tmp_path / 'copy.db').connection() as db:
        run_id = runs.create_run(db, spec={"prompt": "Q", "models": ["m"], "temperatures": [1.0], "n": 1}, planned=1)
        assert run_id == max(r[0] for r in before["runs"]) + 1
    assert golden.get_set(Store(tmp_path / 'copy.db'), "rivers")["version"] == 2


def test_the_command_prints_the_counts_and_refuses_a_target_holding_rows(store, tmp_path):
    source = populated(store, tmp_path / "team.db")
    target = tmp_path / "copy.db"
    summary = last_json(spread("db", "copy", source, str(target), "--json"))
    assert summary["tables"] == {t: len(rows) for t, rows in dump(source).items()}
    assert summary["rows"] == sum(summary["tables"].values()) and summary["target"] == str(target)

    held = digest(target)
    result = spread("db", "copy", source, str(target), check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        f"spread: error: target {target} is not empty (prompts: 4 rows); pass --force to replace what it holds"]
    assert digest(target) == held  # nothing written

    text = spread("db", "copy", source, str(target), "--force").stdout
    assert "responses" in text and f"{sum(summary['tables'].values()):,} rows in" in text
    assert dump(target) == dump(source)


def test_force_replaces_what_the_target_held(store, tmp_path):
    source = populated(store, tmp_path / "team.db")
    target = tmp_path / "other.db"
    with Store(target).connection() as db:
        drafts.save_draft(db, "zoe", {"prompt": "only in the target"})
    with pytest.raises(SpreadError, match=r"is not empty \(drafts: 1 rows\)"):
        store_copy.copy(source, str(target))
    store_copy.copy(source, str(target), force=True)
    assert dump(target) == dump(source)


def test_an_older_target_holding_rows_is_refused_before_it_is_migrated(tmp_path):
    target = tmp_path / "old.db"
    shutil.copy(ROOT / "tests" / "data" / "schema10.db", target)
    held = digest(target)
    with Store(tmp_path / 'new.db').connection() as db:
        drafts.save_draft(db, "ana", {})
    with pytest.raises(SpreadError, match="is not empty"):
        store_copy.copy(str(tmp_path / "new.db"), str(target))
    assert digest(target) == held


def test_a_missing_source_or_the_same_file_is_refused_and_creates_nothing(store, tmp_path):
    with pytest.raises(SpreadError, match="no database at"):
        store_copy.copy(str(tmp_path / "missing.db"), str(tmp_path / "copy.db"))
    source = populated(store, tmp_path / "team.db")
    with pytest.raises(SpreadError, match="the same database"):
        store_copy.copy(source, str(tmp_path / "." / "team.db"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["team.db"]


def test_a_count_that_does_not_match_writes_nothing(store, tmp_path, monkeypatch):
    source = populated(store, tmp_path / "team.db")
    copy_table = store_copy._copy_table

    def loses_a_label(src, dst, table, columns):
        copy_table(src, dst, table, columns)
        if table == "label_history":
            dst.execute("delete from label_history where id = 1")

    monkeypatch.setattr(store_copy, "_copy_table", loses_a_label)
    with pytest.raises(SpreadError, match="copy of label_history holds 5 rows, not 6: nothing written"):
        store_copy.copy(source, str(tmp_path / "copy.db"))
    assert not any(dump(tmp_path / "copy.db").values())


@pytest.mark.postgres
def test_a_round_trip_through_postgresql_keeps_every_row_and_value(store, tmp_path, pg_url):
    source = populated(store, tmp_path / "team.db")
    before = dump(source)
    assert store_copy.copy(source, pg_url) == {t: len(rows) for t, rows in before.items()}
    store_copy.copy(pg_url, str(tmp_path / "back.db"))
    assert dump(tmp_path / "back.db") == before
    # new rows on PostgreSQL get ids after the copied ones: nothing collides
    with Store(pg_url).connection() as db:
        run_id = runs.create_run(db, spec={"prompt": "Q", "models": ["m"], "temperatures": [1.0], "n": 1}, planned=1)
        responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": 0, "text": "new"})
        (new,) = responses.of_run(db, run_id)
    assert run_id == max(r[0] for r in before["runs"]) + 1
    assert new["id"] == max(r[0] for r in before["responses"]) + 1
    labels.label(Store(pg_url), new["id"], "ana", labels.Label("pass"))
    golden.add_responses(Store(pg_url), "rivers", [new["id"]], who="ana")
    assert golden.get_set(Store(pg_url), "rivers")["version"] == 3


@pytest.mark.postgres
def test_a_postgresql_target_holding_rows_is_refused_untouched_and_force_replaces_them(store, tmp_path, pg_url):
    source = populated(store, tmp_path / "team.db")
    spread("db", "copy", source, pg_url)
    with Store(pg_url).connection() as db:
        drafts.save_draft(db, "zoe", {"prompt": "only in the target"})
    result = spread("db", "copy", source, pg_url, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"spread: error: target {pg_url} is not empty (prompts: 4 rows); pass --force to replace what it holds"]
    with Store(pg_url).connection() as db:
        assert drafts.get_draft(db, "zoe") is not None
    summary = last_json(spread("db", "copy", source, pg_url, "--force", "--json"))
    assert summary["tables"]["drafts"] == 1
    store_copy.copy(pg_url, str(tmp_path / "back.db"))
    assert dump(tmp_path / "back.db") == dump(source)


@pytest.mark.postgres
def test_a_value_postgresql_refuses_writes_nothing(store, tmp_path, pg_url):
    source = populated(store, tmp_path / "team.db")
    with sqlite3.connect(source) as conn:  # SQLite keeps a NUL in text; PostgreSQL cannot
        conn.execute("update responses set text = ? where id = (select max(id) from responses)", ["a\x00b"])
    with pytest.raises(SpreadError, match="cannot copy responses: .*0x00"):
        store_copy.copy(source, pg_url)
    with Store(pg_url).connection() as db:
        assert all(db[table].count == 0 for table in store_copy.tables())


@pytest.mark.postgres
def test_a_url_is_never_taken_as_a_file_path(store, tmp_path, pg_url):
    source = populated(store, tmp_path / "team.db")
    before = set(ROOT.iterdir())
    summary = last_json(spread("db", "copy", source, pg_url, "--json"))
    assert summary["target"] == pg_url and summary["rows"] == sum(len(r) for r in dump(source).values())
    unreachable = "postgresql://spread:secret@127.0.0.1:1/spread"
    for args in ([source, unreachable], [unreachable, str(tmp_path / "copy.db")]):
        result = spread("db", "copy", *args, check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
        assert "secret" not in result.stderr and "spread:***@127.0.0.1:1" in result.stderr
    assert set(ROOT.iterdir()) == before and not (tmp_path / "copy.db").exists()
