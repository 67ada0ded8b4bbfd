"""Labels, cluster labels, overrides, history and agreement between reviewers."""

import multiprocessing

import pytest

from core import config
from core.store import Store, responses, runs
from core.review import labels
from core.config import SpreadError


def make_answers(store, texts, run_prompt="What is the capital of France?") -> list[int]:
    """A stored run whose answers are `texts` (one model, T=1); returns their ids."""
    spec = {"prompt": run_prompt, "system": "", "name": "q", "models": ["m"], "temperatures": [1.0],
            "n": len(texts)}
    with store.connection() as db:
        run_id = runs.create_run(db, spec=spec, planned=len(texts))
        for i, text in enumerate(texts):
            responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": i,
                                     "text": text, "completion_tokens": 3, "attempts": 1})
        return [r["id"] for r in responses.of_run(db, run_id)]


def test_a_label_is_stored_editable_and_its_history_kept(store):
    (rid,) = make_answers(store, ["Paris"])
    labels.label(store, rid, "ana", labels.Label("pass", score=5, tags=["capital", "capital", " geo "]))
    labels.label(store, rid, "ana", labels.Label("fail", note="on reflection", correction="Paris, France"))
    (row,) = labels.labels_for(store, [rid])
    assert (row["verdict"], row["reviewer"], row["note"], row["correction"]) == ("fail", "ana", "on reflection",
                                                                                  "Paris, France")
    assert [h["verdict"] for h in labels.history(store, rid)] == ["pass", "fail"]
    assert labels.history(store, rid)[0]["tags"] == ["capital", "geo"]


def test_reviewers_never_overwrite_each_other(store):
    (rid,) = make_answers(store, ["Paris"])
    labels.label(store, rid, "ana", labels.Label("pass"))
    labels.label(store, rid, "ben", labels.Label("fail"))
    assert {r["reviewer"]: r["verdict"] for r in labels.labels_for(store, [rid])} == {"ana": "pass", "ben": "fail"}


@pytest.mark.parametrize("label,reviewer,message", [
    (labels.Label("great"), "ana", "verdict must be"),
    (labels.Label("pass", score=7), "ana", "score must be"),
    (labels.Label("pass"), "  ", "no reviewer"),
])
def test_bad_labels_are_refused_and_nothing_is_written(store, label, reviewer, message):
    (rid,) = make_answers(store, ["Paris"])
    with pytest.raises(SpreadError, match=message):
        labels.label(store, rid, reviewer, label)
    assert labels.labels_for(store, [rid]) == []


def test_labelling_an_unknown_answer_writes_nothing(store):
    ids = make_answers(store, ["Paris"])
    with pytest.raises(SpreadError, match="no answer with id 999"):
        labels.label_cluster(store, [ids[0], 999], ids[0], "ana", labels.Label("pass"))
    assert labels.labels_for(store, ids) == []


def test_a_cluster_label_reaches_every_member_and_keeps_individual_overrides(store):
    a, b, c = make_answers(store, ["Paris", "Paris.", "It is Paris"])
    labels.label(store, c, "ana", labels.Label("unsure"))  # an individual decision first
    written = labels.label_cluster(store, [a, b, c], a, "ana", labels.Label("pass", tags=["ok"]))
    assert written == 2
    given = {r["response_id"]: r for r in labels.labels_for(store, [a, b, c])}
    assert given[a]["verdict"] == given[b]["verdict"] == "pass" and given[a]["via_cluster"] == a
    assert given[c]["verdict"] == "unsure" and given[c]["via_cluster"] is None
    labels.label(store, b, "ana", labels.Label("fail"))  # override one member afterwards
    given = {r["response_id"]: r for r in labels.labels_for(store, [a, b, c])}
    assert given[b]["verdict"] == "fail" and given[b]["via_cluster"] is None
    (paris,) = [i for i in labels.queue(store, [_run_of(store, a)], "ana", method="exact")["items"] if a in i["member_ids"]]
    assert paris["overrides"] == [b]  # the override is visible where the cluster is reviewed


def _run_of(store, response_id):
    with store.connection() as db:
        return db.execute("select run_id from responses where id = ?", [response_id]).fetchone()[0]


def test_queue_orders_clusters_largest_first_then_single_answers_and_tracks_progress(store, monkeypatch):
    ids = make_answers(store, ["Paris", "Paris", "Paris", "Lyon", "Lyon", "Marseille"])
    run_id = _run_of(store, ids[0])
    q = labels.queue(store, [run_id], "ana", method="exact")
    assert [(i["kind"], i["size"]) for i in q["items"]] == [("cluster", 3), ("cluster", 2), ("answer", 1)]
    assert q["items"][0]["representative"] == "Paris" and q["items"][0]["prompt"].startswith("What is")
    assert (q["total"], q["labelled"]) == (6, 0)
    first = q["items"][0]
    labels.label_cluster(store, first["member_ids"], first["representative_id"], "ana", labels.Label("pass"))
    q = labels.queue(store, [run_id], "ana", method="exact", unlabelled_only=True)
    assert [i["size"] for i in q["items"]] == [2, 1] and q["labelled"] == 3
    labels.label(store, ids[3], "ben", labels.Label("fail"))
    labels.label(store, ids[3], "ana", labels.Label("pass"))
    # Disputes between reviewers are recounted every AGREEMENT_S seconds, not at every label.
    assert labels.queue(store, [run_id], "ana", method="exact", disagreements_only=True)["items"] == []
    monkeypatch.setattr(labels, "AGREEMENT_S", 0.0)
    disputed = labels.queue(store, [run_id], "ana", method="exact", disagreements_only=True)["items"]
    assert len(disputed) == 1 and disputed[0]["disputed"] == [ids[3]]


def test_pressing_pass_does_not_cluster_the_run_again_but_new_answers_and_decisions_do(store, monkeypatch):
    from core.analyse import spread
    from core.review import decisions

    ids = make_answers(store, ["Paris", "Paris", "Lyon", "paris!"])
    run_id = _run_of(store, ids[0])
    calls = []
    analyse = spread.analyse_run
    monkeypatch.setattr(spread, "analyse_run", lambda *a, **k: calls.append(1) or analyse(*a, **k))
    first = labels.queue(store, [run_id], "ana", method="exact")["items"][0]
    labels.label_cluster(store, first["member_ids"], first["representative_id"], "ana", labels.Label("pass"))
    again = labels.queue(store, [run_id], "ana", method="exact")
    assert len(calls) == 1 and again["labelled"] == first["size"] == 3  # labels read fresh, clusters not redone
    decisions.decide(store, ids[0], ids[2], "merge", reviewer="ana")
    merged = labels.queue(store, [run_id], "ana", method="exact")
    assert len(calls) == 2 and merged["items"][0]["size"] == 4
    with store.connection() as db:
        responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": 9, "text": "Lyon"})
    grown = labels.queue(store, [run_id], "ana", method="exact")
    assert len(calls) == 3 and grown["total"] == 5


def test_percent_agreement_and_cohens_kappa_match_a_hand_computed_example(store):
    # ana: p p p f f u ; ben: p p f f f u -> 5/6 agree.
    ids = make_answers(store, [f"answer {i}" for i in range(6)])
    for rid, (a, b) in zip(ids, ["pp", "pp", "pf", "ff", "ff", "uu"]):
        labels.label(store, rid, "ana", labels.Label({"p": "pass", "f": "fail", "u": "unsure"}[a]))
        labels.label(store, rid, "ben", labels.Label({"p": "pass", "f": "fail", "u": "unsure"}[b]))
    result = labels.agreement(labels.labels_for(store, ids))
    assert result["percent"] == round(5 / 6, 4) and result["kappa_kind"] == "cohen"
    # p_o = 5/6; p_e = (3/6·2/6) + (2/6·3/6) + (1/6·1/6) = 13/36; kappa = (30/36 − 13/36) / (23/36)
    assert result["kappa"] == pytest.approx(17 / 23, abs=1e-4)
    assert [d["response_id"] for d in labels.disagreements(labels.labels_for(store, ids))] == [ids[2]]


def test_fleiss_kappa_for_three_reviewers_matches_a_hand_computed_example(store):
    ids = make_answers(store, ["a", "b", "c", "d"])
    verdicts = {"ana": ["pass", "pass", "fail", "fail"], "ben": ["pass", "pass", "fail", "pass"],
                "cat": ["pass", "fail", "fail", "pass"]}
    for reviewer, column in verdicts.items():
        for rid, v in zip(ids, column):
            labels.label(store, rid, reviewer, labels.Label(v))
    result = labels.agreement(labels.labels_for(store, ids))
    assert result["kappa_kind"] == "fleiss" and result["percent"] == 0.5
    # P_i = [1, 1/3, 1, 1/3] -> P̄ = 2/3; p_pass = 7/12, p_fail = 5/12 -> P_e = 74/144
    assert result["kappa"] == pytest.approx((2 / 3 - 74 / 144) / (1 - 74 / 144), abs=1e-4)
    assert len(result["pairs"]) == 3


def _label_many(path: str, reviewer: str, ids: list[int]) -> None:
    import os

    os.environ["SPREAD_DB"] = path
    store = Store(path)
    for rid in ids:
        labels.label(store, rid, reviewer, labels.Label("pass" if rid % 2 else "fail", tags=[reviewer]))


def test_several_processes_label_at_once_and_no_label_is_lost(store):
    ids = make_answers(store, [f"answer {i}" for i in range(60)])
    path = str(config.db_path())
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_label_many, args=(path, f"reviewer{k}", ids)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]  # no "database is locked" reached anyone
    given = labels.labels_for(store, ids)
    assert len(given) == 4 * 60
    assert all(row["tags"] == [row["reviewer"]] for row in given)


@pytest.mark.parametrize("reviewers", [2, 4])
def test_the_runs_agreement_counted_by_the_database_is_agreement_over_its_labels(store, reviewers):
    import random

    ids = make_answers(store, [f"answer {i}" for i in range(30)])
    rng = random.Random(reviewers)
    for k in range(reviewers):
        for rid in rng.sample(ids, 24):  # overlapping, not identical: some answers lack a reviewer
            labels.label(store, rid, f"r{k}", labels.Label(rng.choice(["pass", "pass", "fail", "unsure"])))
    given = labels.labels_for_run(store, _run_of(store, ids[0]))
    disputed = labels.disagreements(given)
    expected = labels.agreement(given, pairs=False) | {"disagreements": disputed, "disputed": len(disputed)}
    counted = labels.run_agreement(store, _run_of(store, ids[0]))
    assert counted == expected
    assert counted["answers"] > 0 and counted["kappa"] is not None and len(disputed) > 2
    assert labels.run_agreement(store, _run_of(store, ids[0]), listed=2)["disagreements"] == disputed[:2]
    some = ids[::2]  # a cluster's say: the same counting over some answers
    assert labels.agreement_of(store, some) == labels.agreement(labels.labels_for(store, some), pairs=False)


def test_the_review_pages_agreement_is_counted_again_after_a_few_seconds_not_at_every_label(store, monkeypatch):
    ids = make_answers(store, ["a", "b"])
    run_id = _run_of(store, ids[0])
    labels.label(store, ids[0], "ana", labels.Label("pass"))
    labels.label(store, ids[0], "ben", labels.Label("fail"))
    first = labels.recent_agreement(store, run_id)
    labels.label(store, ids[1], "ana", labels.Label("pass"))
    labels.label(store, ids[1], "ben", labels.Label("pass"))
    assert labels.recent_agreement(store, run_id) == first and first["answers"] == 1  # within AGREEMENT_S: as counted
    monkeypatch.setattr(labels, "AGREEMENT_S", 0.0)
    assert labels.recent_agreement(store, run_id)["answers"] == 2 and labels.recent_agreement(store, run_id)["percent"] == 0.5


def test_a_clusters_members_show_this_reviewers_verdicts_and_overrides_only(store):
    a, b, c = make_answers(store, ["Paris", "Paris.", "It is Paris"])
    labels.label_cluster(store, [a, b, c], a, "ana", labels.Label("pass"))
    labels.label(store, b, "ana", labels.Label("fail"))  # ana's override
    labels.label_cluster(store, [a, b, c], a, "ben", labels.Label("unsure"))  # another reviewer's labels
    shown = {m["id"]: (m["verdict"], m["override"]) for m in labels.members(store, [a, b, c], "ana")}
    assert shown == {a: ("pass", False), b: ("fail", True), c: ("pass", False)}
    assert {m["verdict"] for m in labels.members(store, [a, b, c], "ben")} == {"unsure"}
