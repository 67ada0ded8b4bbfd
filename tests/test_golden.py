"""Golden sets: build from labels, version, edit, soft-remove; export every format; import safely."""

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
import yaml

from core.store import Store, responses, runs
from core.config import SpreadError
from core.formats import golden_files
from core.review import golden, labels
from test_review import make_answers


@pytest.fixture
def labelled(store):
    """A run with two reviewers' labels: Paris passes, Lyon fails."""
    ids = make_answers(store, ["Paris", "Paris", "The capital of France is Paris.", "Lyon", "Lyon"])
    for reviewer in ("ana", "ben"):
        for rid in ids[:3]:
            labels.label(store, rid, reviewer, labels.Label("pass", tags=["geo"]))
        for rid in ids[3:]:
            labels.label(store, rid, reviewer, labels.Label("fail"))
    labels.label(store, ids[0], "ana", labels.Label("pass", tags=["geo"], correction="Paris is the capital of France."))
    return ids


def test_an_item_from_a_labelled_answer_carries_input_reference_accepted_and_rejected(store, labelled):
    golden.create_set(store, "capitals", created_by="ana")
    version = golden.add_responses(store, "capitals", [labelled[0]], who="ana")
    assert version == 1
    (item,) = golden.items(store, "capitals")
    assert item["prompt"] == "What is the capital of France?" and item["system"] == ""
    assert item["reference"] == "Paris is the capital of France."  # the correction wins
    assert item["accepted"] == ["Paris", "The capital of France is Paris."]
    assert item["rejected"] == ["Lyon"]
    assert item["tags"] == ["geo"] and item["added_by"] == "ana"
    assert item["source_response_id"] == labelled[0]


def test_every_change_is_a_new_version_and_removal_can_be_undone(store, labelled):
    golden.create_set(store, "capitals")
    assert golden.add_responses(store, "capitals", [labelled[0], labelled[2]], who="ana") == 1
    key = golden.items(store, "capitals")[0]["item_key"]
    assert golden.edit_item(store, "capitals", key, reference="Paris.", tags=["geo", "easy"], who="ben") == 2
    assert golden.remove_item(store, "capitals", key, who="ben") == 3
    assert len(golden.items(store, "capitals")) == 1
    assert len(golden.items(store, "capitals", include_removed=True)) == 2
    assert golden.restore_item(store, "capitals", key, who="ben") == 4
    assert golden.items(store, "capitals")[0]["reference"] == "Paris."
    assert [c["action"] for c in golden.changes(store, "capitals")] == ["add", "edit", "remove", "restore"]
    assert golden.list_sets(store)[0]["version"] == 4


def test_set_names_are_unique_and_checked(store):
    golden.create_set(store, "a")
    with pytest.raises(SpreadError, match="already exists"):
        golden.create_set(store, "a")
    with pytest.raises(SpreadError, match="needs a name"):
        golden.create_set(store, " ")
    with pytest.raises(SpreadError, match="no golden set named"):
        golden.add_responses(store, "nope", [1])


@pytest.fixture
def golden_set(store, labelled):
    golden.create_set(store, "capitals")
    golden.add_responses(store, "capitals", [labelled[0], labelled[2]], who="ana")
    return "capitals"


def test_jsonl_round_trip_into_an_empty_database_is_identical(store, golden_set, tmp_path, monkeypatch):
    first = tmp_path / "first.jsonl"
    golden_files.export_to(store, golden_set, "jsonl", first)
    lines = first.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["set_version"] == 1
    monkeypatch.setenv("SPREAD_DB", str(tmp_path / "empty.db"))
    store = Store(str(tmp_path / "empty.db"))
    result = golden_files.import_file(store, golden_set, first)
    assert result["imported"] == 2 and result["version"] == 1
    second = tmp_path / "second.jsonl"
    golden_files.export_to(store, golden_set, "jsonl", second)
    assert second.read_bytes() == first.read_bytes()


def test_csv_round_trip_keeps_every_field(store, golden_set, tmp_path, monkeypatch):
    out = tmp_path / "set.csv"
    golden_files.export_to(store, golden_set, "csv", out)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and json.loads(rows[0]["accepted"]) == ["Paris", "The capital of France is Paris."]
    original = golden_files.records(store, golden_set)
    monkeypatch.setenv("SPREAD_DB", str(tmp_path / "empty.db"))
    store = Store(str(tmp_path / "empty.db"))
    golden_files.import_file(store, "copy", out)
    copied = golden_files.records(store, "copy")
    strip = lambda rs: [{k: v for k, v in r.items() if k != "set"} for r in rs]  # noqa: E731
    assert strip(copied) == strip(original)


def test_openai_promptfoo_and_parquet_exports(store, golden_set, tmp_path):
    openai = (tmp_path / "ft.jsonl")
    golden_files.export_to(store, golden_set, "openai", openai)
    first = json.loads(openai.read_text().splitlines()[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][1]["content"] == "Paris is the capital of France."

    promptfoo = tmp_path / "tests.yaml"
    golden_files.export_to(store, golden_set, "promptfoo", promptfoo)
    text = promptfoo.read_text()
    assert "version 1" in text.splitlines()[0]
    tests = yaml.safe_load(text)
    assert tests[0]["vars"]["prompt"] == "What is the capital of France?"
    kinds = [a["type"] for a in tests[0]["assert"]]
    assert kinds == ["similar", "not-similar"]
    assert tests[0]["assert"][1]["value"] == "Lyon"

    parquet = tmp_path / "set.parquet"
    golden_files.export_to(store, golden_set, "parquet", parquet)
    table = pq.read_table(parquet)
    assert table.num_rows == 2 and table.column("accepted").to_pylist()[0] == ["Paris", "The capital of France is Paris."]
    assert table.schema.metadata[b"set_version"] == b"1"


def test_removed_items_are_not_exported(store, golden_set, tmp_path):
    key = golden.items(store, golden_set)[0]["item_key"]
    golden.remove_item(store, golden_set, key)
    assert len(golden_files.records(store, golden_set)) == 1


def test_a_malformed_file_imports_nothing_and_names_the_line(store, tmp_path):
    good = {"input": {"prompt": "2+2?"}, "reference": "4", "accepted": ["4", "four"], "rejected": ["5"]}
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([json.dumps(good), "{not json", json.dumps({"input": {}}),
                               json.dumps(good | {"accepted": "4"})]) + "\n")
    with pytest.raises(SpreadError, match=r"line 2: not valid JSON.*\(and 2 more\)"):
        golden_files.import_file(store, "maths", path)
    with store.connection() as db:
        assert db["golden_sets"].count == 0 and db["golden_items"].count == 0
    result = golden_files.import_file(store, "maths", path, skip_bad=True)
    assert result["imported"] == 1 and result["skipped"] == 3
    assert result["errors"][1] == "line 3: missing input.prompt (the user message)"
    assert result["errors"][2] == "line 4: accepted must be a list of texts"


@pytest.mark.parametrize("content,message", [
    (b"\xff\xfe\x00bad", "not UTF-8"),
    (b"", "no valid items"),
])
def test_unreadable_files_get_a_clear_error(store, tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_bytes(content)
    with pytest.raises(SpreadError, match=message):
        golden_files.import_file(store, "s", path)


def test_csv_without_a_prompt_column_is_refused(store, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("question,answer\nwhat,that\n")
    with pytest.raises(SpreadError, match="no 'prompt' column"):
        golden_files.import_file(store, "s", path)


def test_export_of_an_unknown_set_or_format_is_refused(store, golden_set, tmp_path):
    with pytest.raises(SpreadError, match="no golden set"):
        golden_files.export_to(store, "nope", "jsonl", tmp_path / "x")
    with pytest.raises(SpreadError, match="unknown format"):
        golden_files.export(store, golden_set, "xml")
    assert not (tmp_path / "x").exists()


# --- consistent by construction: a failed answer is never a reference ------------------

def _corrupt(store, name: str, key: str, **columns) -> None:
    """Write an item as Spread stored it before items were kept consistent."""
    with store.connection() as db:
        db["golden_items"].update(db.execute("select id from golden_items where item_key = ?", [key]).fetchone()[0],
                                  {k: json.dumps(v) if isinstance(v, list) else v for k, v in columns.items()})


def test_normalised_sets_case_spacing_and_punctuation_aside():
    assert golden.normalised(" Lima. ") == golden.normalised("LIMA!") == golden.normalised("lima") == "lima"
    assert golden.normalised("Lima, Peru") != golden.normalised("Lima")


def test_a_failed_cluster_is_never_the_reference_of_its_item(store):
    """Press F on a cluster, then "add the representative answer": the issue's path."""
    ids = make_answers(store, ["Lima", "lima.", "Paris"])
    labels.label_cluster(store, ids[:2], ids[0], "ana", labels.Label("fail"))
    labels.label(store, ids[2], "ana", labels.Label("pass"))
    golden.create_set(store, "capitals")
    assert golden.answer_verdict(store, ids[0]) == "fail"
    with pytest.raises(SpreadError, match="never a reference"):
        golden.add_responses(store, "capitals", [ids[0]], who="ana")
    assert golden.items(store, "capitals") == [] and golden.get_set(store, "capitals")["version"] == 0  # nothing half-written
    golden.add_responses(store, "capitals", [ids[0]], who="ana", correction="Paris")
    (item,) = golden.items(store, "capitals")
    assert item["reference"] == "Paris" and item["accepted"] == ["Paris"] and item["rejected"] == ["Lima"]
    assert golden.contradictions(item) == []


def test_a_failed_answer_joins_an_existing_items_rejected_answers(store):
    ids = make_answers(store, ["Paris", "Lyon", "Paris, France"])
    for rid in (ids[0], ids[2]):
        labels.label(store, rid, "ana", labels.Label("pass"))
    golden.create_set(store, "capitals")
    golden.add_responses(store, "capitals", [ids[0]], who="ana")
    (item,) = golden.items(store, "capitals")
    assert item["rejected"] == [] and item["accepted"] == ["Paris", "Paris, France"]
    labels.label(store, ids[1], "ben", labels.Label("fail"))
    assert [row["item_key"] for row in golden.matching_items(store, "capitals", ids[1])] == [item["item_key"]]
    assert golden.add_rejected(store, "capitals", item["item_key"], [ids[1]], who="ben") == 2
    assert golden.items(store, "capitals")[0]["rejected"] == ["Lyon"]
    # A later fail of an accepted text moves it (with history); the reference cannot be rejected.
    labels.label(store, ids[2], "ben", labels.Label("fail"))
    golden.add_rejected(store, "capitals", item["item_key"], [ids[2]], who="ben")
    (item,) = golden.items(store, "capitals")
    assert item["accepted"] == ["Paris"] and item["rejected"] == ["Lyon", "Paris, France"]
    assert "moved from accepted to rejected" in golden.changes(store, "capitals")[-1]["detail"]
    with pytest.raises(SpreadError, match="reference"):
        golden.add_rejected(store, "capitals", item["item_key"], [ids[0]], who="ben")
    assert golden.items(store, "capitals")[0] == item  # refused whole


def test_after_an_override_the_later_label_wins_and_the_change_says_so(store):
    ids = make_answers(store, ["Paris", "Lyon", "lyon"])
    labels.label(store, ids[0], "ana", labels.Label("pass"))
    labels.label_cluster(store, ids[1:], ids[1], "ana", labels.Label("pass"))  # a hasty cluster pass
    labels.label(store, ids[2], "ben", labels.Label("fail"))                   # overridden later
    golden.create_set(store, "capitals")
    golden.add_responses(store, "capitals", [ids[0]], who="ana")
    (item,) = golden.items(store, "capitals")
    assert item["accepted"] == ["Paris"] and item["rejected"] == ["Lyon"]  # one text, the first seen
    assert "later label (fail by ben) wins" in golden.changes(store, "capitals")[-1]["detail"]
    # Passed again later: now it is accepted, and only accepted.
    labels.label(store, ids[1], "ana", labels.Label("pass", note="Lyon is fine for this test"))
    labels.label(store, ids[2], "ben", labels.Label("pass"))
    golden.add_responses(store, "capitals", [ids[0]], who="ana")
    newest = golden.items(store, "capitals")[-1]
    assert newest["accepted"] == ["Paris", "Lyon"] and newest["rejected"] == []
    # A reference typed in by hand leaves the rejected answers.
    golden.edit_item(store, "capitals", item["item_key"], reference="LYON!", who="ben")
    assert golden.items(store, "capitals")[0]["rejected"] == []


def test_exports_never_accept_and_reject_one_text(store, tmp_path):
    ids = make_answers(store, ["Lima", "Paris"])
    labels.label(store, ids[0], "ana", labels.Label("fail"))
    labels.label(store, ids[1], "ana", labels.Label("pass"))
    golden.create_set(store, "capitals")
    golden.add_responses(store, "capitals", [ids[1]], who="ana")
    key = golden.items(store, "capitals")[0]["item_key"]
    _corrupt(store, "capitals", key, reference="Lima", accepted=["Lima", "Paris"], rejected=["Lima."])  # the item
    (test,) = yaml.safe_load(golden_files.export(store, "capitals", "promptfoo"))
    similar = [t for a in test["assert"] if a["type"] == "similar" for t in a["value"]]
    not_similar = [a["value"] for a in test["assert"] if a["type"] == "not-similar"]
    assert {golden.normalised(t) for t in similar} == {"paris"} and not_similar == ["Lima."]
    for fmt in ("jsonl", "csv"):
        (record,) = golden_files.parse(golden_files.export(store, "capitals", fmt), fmt)[0]
        assert golden.contradictions(record) == [] and record.reference is None


def test_check_lists_old_contradictions_and_fix_resolves_them_by_the_latest_label(store):
    ids = make_answers(store, ["Lima", "Paris", "Rome"])
    labels.label(store, ids[0], "ana", labels.Label("fail"))
    labels.label(store, ids[1], "ana", labels.Label("pass"))
    labels.label(store, ids[2], "ana", labels.Label("fail"))
    labels.label(store, ids[2], "ben", labels.Label("pass"))  # the later label on "Rome" passes it
    golden.create_set(store, "capitals")
    golden.add_responses(store, "capitals", [ids[1]], who="ana")
    key = golden.items(store, "capitals")[0]["item_key"]
    _corrupt(store, "capitals", key, reference="Lima", accepted=["Lima", "Paris", "Rome"], rejected=["Lima", "rome"])
    found = golden.check(store, "capitals")
    assert [c["text"] for c in found["items"][0]["contradictions"]] == ["Lima", "Lima", "Rome"]
    assert not found["fixed"] and golden.get_set(store, "capitals")["version"] == found["version"] == 1
    fixed = golden.check(store, "capitals", fix=True, who="ana")
    assert fixed["fixed"] and fixed["version"] == 2
    (item,) = golden.items(store, "capitals")
    assert item["reference"] is None and item["accepted"] == ["Paris", "Rome"] and item["rejected"] == ["Lima"]
    assert golden.changes(store, "capitals")[-1]["action"] == "fix"
    assert "reference 'Lima' was removed" in golden.changes(store, "capitals")[-1]["detail"]
    assert golden.check(store, "capitals")["items"] == []


def test_cli_golden_add_needs_a_correction_for_a_failed_answer_and_check_fixes(tmp_path):
    from test_cli import last_json, spread

    db = tmp_path / "cli.db"
    env = {"SPREAD_DB": str(db)}
    with Store(db).connection() as conn:
        run_id = runs.create_run(conn, spec={"prompt": "What is the capital of France?", "system": "", "name": "q",
                                              "models": ["m"], "temperatures": [1.0], "n": 2}, planned=2)
        for i, text in enumerate(["Lima", "Paris"]):
            responses.save_response(conn, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": i,
                                       "text": text, "attempts": 1})
        lima, paris = [r["id"] for r in responses.of_run(conn, run_id)]
    labels.label(Store(db), lima, "ana", labels.Label("fail"))
    spread("--db", str(db), "golden", "create", "capitals", env=env)
    refused = spread("--db", str(db), "golden", "add", "capitals", "--response", str(lima), env=env, check=False)
    assert refused.returncode != 0 and "never a reference" in refused.stderr
    spread("--db", str(db), "golden", "add", "capitals", "--response", str(lima), "--correction", "Paris", env=env)
    (item,) = golden.items(Store(db), "capitals")
    assert (item["reference"], item["rejected"]) == ("Paris", ["Lima"])
    with Store(db).connection() as conn:  # as an item made before items were kept consistent
        conn.execute("update golden_items set accepted = ? where item_key = ?", [json.dumps(["Lima"]), item["item_key"]])
    listed = last_json(spread("--db", str(db), "golden", "check", "capitals", "--json", env=env))
    assert [c["text"] for c in listed["items"][0]["contradictions"]] == ["Lima"] and not listed["fixed"]
    fixed = last_json(spread("--db", str(db), "golden", "check", "capitals", "--fix", "--json", env=env))
    assert fixed["fixed"] and golden.items(Store(db), "capitals")[0]["accepted"] == []
