"""Reviewers' merge and split decisions, answer extraction per run, and the kinds of answers."""

import asyncio

import numpy as np
import pytest

from core.store import Store, responses
from core.analyse import spread
from core.config import SpreadError
from core.review import decisions
from core.run import plan, runner
from test_cli import last_json, spread as cli


def test_apply_merges_clusters_and_splits_one_answer_out():
    labels = np.array([0, 0, 1, 2])
    norms = ["paris", "it is paris", "lyon", "marseille"]
    merged = decisions.apply(labels, norms, [{"action": "merge", "text_a": "paris", "text_b": "lyon"}])
    assert merged.tolist() == [0, 0, 0, 2]
    split = decisions.apply(labels, norms, [{"action": "split", "text_a": "paris", "text_b": "it is paris"}])
    assert split[0] != split[1] and split[1] not in (1, 2)
    in_order = decisions.apply(labels, norms, [{"action": "merge", "text_a": "paris", "text_b": "lyon"},
                                               {"action": "split", "text_a": "paris", "text_b": "lyon"}])
    assert in_order[2] != in_order[0] and in_order[0] == in_order[1]
    unknown = decisions.apply(labels, norms, [{"action": "merge", "text_a": "rome", "text_b": "lyon"}])
    assert unknown.tolist() == labels.tolist()


def run_with(store, stub, answers, **fields):
    stub.answers = answers
    spec = dict(prompt="What is the capital of France?", models=["openai/stub-a"], temperatures=[1.0], n=8,
                api_base=stub.base_url, seed=1)
    spec.update(fields)
    run_id = plan.create(store, plan.RunSpec(**spec))
    asyncio.run(runner.execute(store, run_id))
    return run_id


def test_a_decision_is_respected_by_every_later_analysis_and_can_be_undone(store, stub):
    run_id = run_with(store, stub, ["Paris.", "Lyon."])
    before = spread.analyse_run(store, run_id, method="minilm", with_map=False)
    assert len(before.clusters) == 2
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
    paris = next(r["id"] for r in rows if r["text"] == "Paris.")
    lyon = next(r["id"] for r in rows if r["text"] == "Lyon.")
    pair = decisions.explain(store, paris, lyon)
    assert not pair.same and pair.conflicts  # different places: the guard says why
    decision = decisions.decide(store, paris, lyon, "merge", reviewer="ana")
    after = spread.analyse_run(store, run_id, method="minilm", with_map=False)
    assert len(after.clusters) == 1 and after.cells[0]["consistency"] == 1.0
    decisions.undo(store, decision)
    assert len(spread.analyse_run(store, run_id, method="minilm", with_map=False).clusters) == 2
    with pytest.raises(SpreadError, match="no reviewer"):
        decisions.decide(store, paris, lyon, "merge", reviewer=" ")


def test_the_analysis_takes_reviewers_decisions_as_an_argument(store, stub):
    """Analysis never imports review: decisions reach it as rows, given or read from the store."""
    run_id = run_with(store, stub, ["Paris.", "Lyon."])
    merge = [{"input": 0, "action": "merge", "text_a": "paris", "text_b": "lyon"}]
    assert len(spread.analyse_run(store, run_id, method="minilm", with_map=False, decisions=merge).clusters) == 1
    assert len(spread.analyse_run(store, run_id, method="minilm", with_map=False).clusters) == 2  # none stored
    assert len(spread.analyse_run(store, run_id, method="minilm", with_map=False, decisions=[]).clusters) == 2


def test_decisions_only_join_answers_to_the_same_input(store, stub):
    run_id = run_with(store, stub, ["Paris."], prompt="Capital of {{c}}?", inputs=[{"c": "France"}, {"c": "Peru"}], n=1)
    with store.connection() as db:
        a, b = [r["id"] for r in responses.of_run(db, run_id)]
    with pytest.raises(SpreadError, match="same input"):
        decisions.decide(store, a, b, "merge", reviewer="ana")


def test_the_final_answer_of_a_long_answer_is_what_is_compared(store, stub):
    answers = ["Let me think. Paris has been the capital since 987. Answer: Paris",
               "France's capital moved a few times in history, but today it is clear. Answer: Paris",
               "Many would say Lyon, but no. Answer: Paris",
               "Considering everything about French history and geography. Answer: Lyon"]
    final = run_with(store, stub, answers, n=12, extract="final-answer")
    by_final = spread.analyse_run(store, final, method="minilm", with_map=False)  # the run's own mode
    assert by_final.extract == "final-answer" and len(by_final.clusters) == 2
    # The mode decides what is compared: by first sentence, every wording is its own meaning.
    by_first = spread.analyse_run(store, final, method="minilm", with_map=False, extract="first-sentence")
    assert len(by_first.clusters) > 2
    with pytest.raises(SpreadError, match="unknown extract mode"):
        plan.validate(store, plan.RunSpec(prompt="q", models=["m"], temperatures=[1.0], n=1, extract="middle"),
                      check_providers=False)


def test_refusals_are_one_meaning_and_said_so(store, stub):
    run_id = run_with(store, stub, ["I can't help with that.", "Sorry, I cannot assist with this request.",
                             "As an AI, I'm unable to help with that.", "Paris."], n=16)
    analysis = spread.analyse_run(store, run_id, method="minilm", with_map=False)
    kinds = {c.kind for c in analysis.clusters}
    assert "refusal" in kinds and len(analysis.clusters) == 2


def test_cli_explains_merges_and_splits(stub, tmp_path):
    db = str(tmp_path / "c.db")
    stub.answers = ["Paris.", "Lyon."]
    cli("--db", db, "run", "--prompt", "What is the capital of France?", "--model", "openai/stub-a",
        "--temperature", "1", "--n", "6", "--api-base", stub.base_url, "--seed", "1")
    shown = last_json(cli("--db", db, "show", "1", "--json"))
    ids = {a["text"]: a["id"] for a in shown["cells"][0]["answers"]}
    explained = last_json(cli("--db", db, "clusters", "explain", str(ids["Paris."]), str(ids["Lyon."]), "--json"))
    assert explained["same"] is False and explained["conflicts"]
    cli("--db", db, "clusters", "merge", str(ids["Paris."]), str(ids["Lyon."]), "--reviewer", "ana")
    merged = last_json(cli("--db", db, "show", "1", "--json"))
    assert merged["cells"][0]["n_clusters"] == 1
