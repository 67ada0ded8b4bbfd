"""The store's guarantees with writers at once, on both engines (PostgreSQL's isolation
is not SQLite's single writer): each thread its own connection (a unit of work opens
one), released together by a barrier."""

import threading

import pytest

from core.store import Store, responses, runs, write
from core.review import golden, labels

WRITERS = 8


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """A SQLite file, or a fresh PostgreSQL database's URL."""
    return str(tmp_path / "shared.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")


def run_with_answers(url, answers: int) -> tuple[int, list[int]]:
    with Store(url).connection() as db:
        run_id = runs.create_run(db, spec={"prompt": "Q?", "models": ["m"], "temperatures": [1.0], "n": answers},
                                  planned=answers)
        responses.save_responses(db, [cell(run_id, i) | {"text": f"answer {i}"} for i in range(answers)])
        return run_id, [r["id"] for r in responses.of_run(db, run_id)]


def cell(run_id: int, i: int) -> dict:
    return {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": i}


def at_once(work) -> None:
    """work(k) in WRITERS threads started together; any exception fails the test."""
    barrier, errors = threading.Barrier(WRITERS), []

    def worker(k):
        barrier.wait()
        try:
            work(k)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []


def test_eight_label_writers_lose_no_label_and_keep_every_change(db_url):
    _, ids = run_with_answers(db_url, 20)
    shared = ids[0]

    def label_everything(k):
        for round_, verdict in enumerate(("pass", "fail")):
            # the same label, by one name, from every writer at once
            labels.label(Store(db_url), shared, "team", labels.Label("unsure", note=f"writer {k} round {round_}"))
            for response_id in ids:
                labels.label(Store(db_url), response_id, f"reviewer {k}", labels.Label(verdict))

    at_once(label_everything)
    given = labels.labels_for(Store(db_url), ids)
    assert len(given) == WRITERS * len(ids) + 1
    assert all(r["verdict"] == "fail" for r in given if r["reviewer"] != "team")
    with Store(db_url).connection() as db:
        history = list(db.query("select reviewer, verdict, note from label_history"))
    assert len(history) == WRITERS * len(ids) * 2 + WRITERS * 2
    assert sorted(r["note"] for r in history if r["reviewer"] == "team") == sorted(
        f"writer {k} round {r}" for k in range(WRITERS) for r in range(2))
    (team,) = [r for r in given if r["reviewer"] == "team"]
    assert team["note"] in {r["note"] for r in history if r["reviewer"] == "team"}


def test_golden_edits_at_once_each_get_their_own_version_and_change(db_url):
    golden.create_set(Store(db_url), "capitals")
    golden.add_items(Store(db_url), "capitals", [golden.Item(prompt="Capital of France?", reference="Paris", item_key="shared")])

    def add_then_edit(k):
        golden.add_items(Store(db_url), "capitals", [golden.Item(prompt=f"Question {k}?", reference=f"Answer {k}",
                                                  item_key=f"item-{k}")], who=f"writer {k}")
        golden.edit_item(Store(db_url), "capitals", "shared", tags=[f"tag {k}"], who=f"writer {k}")

    at_once(add_then_edit)
    assert golden.get_set(Store(db_url), "capitals")["version"] == 1 + 2 * WRITERS
    changes = golden.changes(Store(db_url), "capitals")
    assert sorted(c["version"] for c in changes) == list(range(1, 2 + 2 * WRITERS))
    assert sorted(c["changed_by"] for c in changes if c["action"] == "edit") == sorted(
        f"writer {k}" for k in range(WRITERS))
    assert len(golden.items(Store(db_url), "capitals")) == 1 + WRITERS


def test_rejections_added_at_once_to_one_item_are_all_kept(db_url):
    _, ids = run_with_answers(db_url, WRITERS)
    golden.create_set(Store(db_url), "capitals")
    golden.add_items(Store(db_url), "capitals", [golden.Item(prompt="Q?", reference="Paris", item_key="shared")])
    at_once(lambda k: golden.add_rejected(Store(db_url), "capitals", "shared", [ids[k]], who=f"writer {k}"))
    (item,) = golden.items(Store(db_url), "capitals")
    assert sorted(item["rejected"]) == sorted(f"answer {i}" for i in range(WRITERS))  # no edit lost another


def test_a_cell_written_twice_or_by_every_writer_at_once_is_one_row(db_url):
    run_id, ids = run_with_answers(db_url, 30)
    with Store(db_url).connection() as db:
        responses.save_response(db, cell(run_id, 0) | {"text": "a second answer for the same cell"})
        with pytest.raises(Exception, match="(?i)duplicate key|unique"):
            with write(db):
                db.execute("insert into responses (run_id, variant, input, model, temperature, sample_idx, text) "
                           "values (?, 0, 0, 'm', 1.0, 0, 'bypassing save_responses')", [run_id])
        assert responses.of_run(db, run_id)[0]["text"] == "answer 0"

    def same_cells(k):
        with Store(db_url).connection() as db:
            responses.save_responses(db, [cell(run_id, i) | {"text": f"writer {k}"} for i in range(30, 60)])

    at_once(same_cells)
    with Store(db_url).connection() as db:
        rows = responses.of_run(db, run_id)
    assert len(rows) == 60 and len({r["sample_idx"] for r in rows}) == 60
    assert len({r["text"] for r in rows[30:]}) == 1  # one writer's batch won every cell; none overwrote another
