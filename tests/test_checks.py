"""Checks on answers: every type on exact examples, bad values refused before a run, checks by
meaning agreeing with the clusters, pass rates and reducers, and checks against people."""

import asyncio

import numpy as np
import pandas as pd
import pytest

from core.store import Store, responses
from core.analyse import embed, meaning, spread
from core.config import SpreadError
from core.evaluate import checks, judge, rates, scoring
from core.evaluate.checks import Check, References
from core.review import labels
from core.run import plan, runner


@pytest.mark.parametrize("text,answer,values,passed", [
    ("equals:Paris", "Paris", {}, True),
    ("equals:Paris", "  Paris ", {}, False),  # promptfoo strips nothing
    ("equals:Paris", "Paris.", {}, False),
    ("contains:{{expected}}", "The capital is Paris.", {"expected": "Paris"}, True),
    ("contains:{{expected}}", "The capital is paris.", {"expected": "Paris"}, False),
    ("icontains:{{expected}}", "The capital is PARIS.", {"expected": "Paris"}, True),
    ("not-contains:sorry", "Sorry, I cannot.", {}, True),
    ("not-icontains:sorry", "Sorry, I cannot.", {}, False),
    ("starts-with:Yes", "Yes, it is.", {}, True),
    ("starts-with:Yes", "  Yes, it is.", {}, False),
    ("starts-with:Yes", "No. Yes.", {}, False),
    ("regex:^\\d{4}-\\d{2}-\\d{2}$", "1969-07-20", {}, True),
    ("regex:^\\d{4}$", "in 1969", {}, False),
    ("not-regex:https?://", "no links here", {}, True),
    ("is-json", '{"a": 1}', {}, True),
    ("is-json", "{'a': 1}", {}, False),
    ("max-length:5", "12345", {}, True),
    ("max-length:5", "123456", {}, False),
])
def test_deterministic_checks_on_exact_examples(text, answer, values, passed):
    check = checks.validate([checks.parse(text)], [values] if values else [])[0]
    outcome = checks.deterministic(check, answer, values)
    assert outcome.passed is passed and (outcome.reason == "") is passed


def test_json_schema_checks_the_shape_and_says_why():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    check = checks.validate([checks.from_dict({"type": "json-schema", "value": schema})])[0]
    assert checks.deterministic(check, '{"city": "Paris"}', {}).passed
    failed = checks.deterministic(check, '{"town": "Paris"}', {})
    assert failed.passed is False and "'city' is a required property" in failed.reason
    assert checks.deterministic(check, "Paris", {}).reason.startswith("not JSON")
    same_as_is_json = checks.validate([checks.from_dict({"type": "is-json", "value": schema})])[0]
    assert checks.deterministic(same_as_is_json, '{"town": 1}', {}).passed is False


@pytest.mark.parametrize("check,message", [
    ("regex:[unclosed", "invalid regular expression"),
    ("not-regex:(a", "invalid regular expression"),
    ("contains", "needs a value"),
    ("max-length:many", "whole number of characters"),
    ("llm-rubric:Is correct", "needs a judge model"),
    ("similar:{{answer}}", "missing variable {{answer}}"),
    ("levensthein:3", "unknown check type 'levensthein'"),
])
def test_bad_checks_are_refused_with_one_line(check, message):
    with pytest.raises(SpreadError) as error:
        checks.validate([checks.parse(check)], [{"expected": "x"}])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_invalid_schema_and_checks_file_errors(tmp_path):
    with pytest.raises(SpreadError, match="invalid JSON schema"):
        checks.validate([checks.from_dict({"type": "json-schema", "value": {"type": "no-such-type"}})])
    bad = tmp_path / "checks.yaml"
    bad.write_text("- type: contains\n  value: [unclosed\n")
    with pytest.raises(SpreadError, match="not valid YAML"):
        checks.read_file(bad)
    good = tmp_path / "good.yaml"
    good.write_text("assert:\n  - type: icontains\n    value: '{{expected}}'\n  - type: similar\n"
                    "    value: Paris\n    threshold: 0.7\n")
    loaded = checks.read_file(good)
    assert [c.type for c in loaded] == ["icontains", "similar"] and loaded[1].threshold == 0.7


def equivalence(method="minilm"):
    return checks.Equivalence(method, meaning.DEFAULT_THRESHOLD, embed.embed)


@pytest.mark.parametrize("answer,passed", [
    ("Paris.", True),
    ("The capital of France is Paris.", True),
    ("Lyon.", False),
    ("The capital of France is Lyon.", False),
])
def test_similar_is_meaning_not_wording(answer, passed):
    check = Check("similar", "{{expected}}")
    outcome = checks.similar(check, answer, {"expected": "Paris"}, References(), "What is the capital of France?",
                             equivalence())
    assert outcome.passed is passed


def test_similar_fails_an_answer_as_close_to_a_rejected_one():
    check = Check("similar")
    right = checks.similar(check, "It is Paris.", {}, References(["Paris"], ["Lyon"]), "Capital of France?",
                           equivalence())
    assert right.passed and "same meaning as 'Paris'" in right.reason
    # Reviewers passed one spelling and failed another of the same text: a tie goes to "rejected".
    references = References(accepted=["Paris", "It is Paris"], rejected=["it is paris."])
    exact = checks.Equivalence("exact", meaning.DEFAULT_THRESHOLD, embed.embed)
    wrong = checks.similar(check, "It is Paris!", {}, references, "", exact)
    assert wrong.passed is False and "rejected 'it is paris.'" in wrong.reason
    assert checks.similar(check, "Paris", {}, references, "", exact).passed
    assert checks.similar(check, "x", {}, References(), "", exact).passed is None  # nothing to compare with


def test_similar_and_the_clusters_agree_on_the_same_pairs():
    texts = ["Paris", "The capital of France is Paris.", "Lyon", "It's Lyon.", "Marseille", "Paris, France",
             "I think it is Paris", "Definitely Lyon", "It's forty-two.", "42"]
    context = "What is the capital of France?"
    compare = equivalence()

    def clustered(pair):
        rows = [{"id": i + 1, "run_id": 1, "model": "m", "temperature": 1.0, "sample_idx": i, "text": t,
                 "error_type": None} for i, t in enumerate(pair)]
        answers = spread.analyse(rows, method="minilm", context=context, with_map=False).answers
        return answers["cluster"].nunique() == 1

    pairs = [(a, b) for a in texts for b in texts if a < b]
    for a, b in pairs:  # the check is the clusters' own rule, applied to the pair
        assert compare.compare(a, b, context)[0] == clustered([a, b]), (a, b)
    # Over a whole set, average linkage may join two answers through a third: still, nearly all agree.
    rows = [{"id": i + 1, "run_id": 1, "model": "m", "temperature": 1.0, "sample_idx": i, "text": t,
             "error_type": None} for i, t in enumerate(texts)]
    cluster_of = dict(zip(*[spread.analyse(rows, method="minilm", context=context, with_map=False)
                            .answers[c] for c in ("text", "cluster")]))
    agree = sum(compare.compare(a, b, context)[0] == (cluster_of[a] == cluster_of[b]) for a, b in pairs)
    assert agree >= 0.9 * len(pairs)


def test_pass_rates_reducers_and_clustered_intervals():
    # Two inputs × one cell each: input 0 passes 9/10, input 1 passes 3/10.
    answers = pd.DataFrame([{"id": i + 1, "variant": 0, "input": i // 10, "model": "m", "temperature": 1.0}
                            for i in range(20)])
    verdicts = {i + 1: (i < 9) if i < 10 else (i < 13) for i in range(20)}
    scored = rates.frame(answers, verdicts)
    per_cell = rates.by_group(scored, ["variant", "input", "model", "temperature"])
    assert [(c["passes"], c["answers"], c["pass_rate"]) for c in per_cell] == [(9, 10, 0.9), (3, 10, 0.3)]
    low, high = spread.wilson(9, 10)
    assert per_cell[0]["pass_rate_low"] == round(low, 4) and per_cell[0]["pass_rate_high"] == round(high, 4)
    (overall,) = rates.by_group(scored, ["model"])
    assert overall["pass_rate"] == pytest.approx(0.6) and overall["inputs"] == 2
    # The interval comes from the two inputs (t with 1 degree of freedom), far wider than a pooled Wilson's.
    pooled_low, _ = spread.wilson(12, 20)
    assert overall["pass_rate_low"] < pooled_low
    cells = rates.reducers(scored)
    assert [(c["all_pass"], c["any_pass"], c["majority_pass"]) for c in cells] == [(False, True, True),
                                                                                 (False, True, False)]
    (reduced,) = rates.reducer_rates(cells, ["model"])
    assert (reduced["all_pass"], reduced["any_pass"], reduced["majority_pass"]) == (0.0, 1.0, 0.5)


def test_an_unmade_check_leaves_the_answer_out_instead_of_passing_or_failing_it():
    results = [{"response_id": 1, "check_key": "a", "passed": 1}, {"response_id": 1, "check_key": "b", "passed": None},
               {"response_id": 2, "check_key": "a", "passed": 0}, {"response_id": 2, "check_key": "b", "passed": None},
               {"response_id": 3, "check_key": "a", "passed": 1}, {"response_id": 3, "check_key": "b", "passed": 1}]
    assert rates.answer_verdicts(results) == {1: None, 2: False, 3: True}


def test_checks_against_people_count_false_passes_and_false_fails():
    results = [{"response_id": i, "check_key": "c", "passed": p} for i, p in enumerate([1, 1, 1, 0, 0, 1, 0, 1])]
    human = dict(enumerate(["pass", "pass", "fail", "fail", "pass", "pass", "fail", "unsure"]))
    (row,) = rates.agreement_with_people(results, human)
    assert row["answers"] == 7 and row["false_passes"] == 1 and row["false_fails"] == 1
    assert row["agreement"] == pytest.approx(5 / 7, abs=1e-4)
    from sklearn.metrics import cohen_kappa_score

    assert row["kappa"] == pytest.approx(cohen_kappa_score([1, 1, 0, 0, 1, 1, 0], [1, 1, 1, 0, 0, 1, 0]), abs=1e-4)


def test_a_run_is_scored_stored_and_rescored_only_for_what_is_new(store, stub):
    stub.respond = lambda body: "Paris." if "France" in body["messages"][-1]["content"] else "Lyon."
    spec = plan.RunSpec(prompt="Capital of {{country}}?", inputs=[{"country": "France", "expected": "Paris"},
                                                                  {"country": "Peru", "expected": "Lima"}],
                        models=["openai/stub-a"], temperatures=[1.0], n=3, api_base=stub.base_url,
                        checks=[{"type": "similar", "value": "{{expected}}"}])
    run_id = plan.create(store, spec)
    asyncio.run(runner.execute(store, run_id))
    results = scoring.score_run_sync(store, run_id)
    assert len(results) == 6 and sum(r["passed"] for r in results) == 3
    scoring.attach(store, run_id, [checks.parse("max-length:3")])
    again = scoring.score_run_sync(store, run_id)
    assert len(again) == 12
    first = {(r["response_id"], r["check_key"]): r["created_at"] for r in results}
    assert all(r["created_at"] == first[(r["response_id"], r["check_key"])] for r in again
               if (r["response_id"], r["check_key"]) in first)  # nothing scored twice
    # Reviewers agree with the similar check on France, disagree on one Peru answer.
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
    for row in rows:
        labels.label(store, row["id"], "ana", labels.Label("pass" if row["input"] == 0 or row["sample_idx"] == 0 else "fail"))
    from core.evaluate import regress

    agreement = {r["check"]: r for r in regress.human_agreement(store, run_id)}
    similar = agreement[checks.Check("similar", "{{expected}}").key()]
    assert similar["answers"] == 6 and similar["false_fails"] == 1 and similar["false_passes"] == 0


def test_the_judge_reads_json_or_words_and_reports_its_self_consistency(store, stub):
    assert judge.verdict('{"pass": true, "reason": "right city"}') == (True, "right city")
    assert judge.verdict("Verdict: FAIL") == (False, "")
    assert judge.verdict("hmm")[0] is None
    replies = iter(['{"pass": true, "reason": "ok"}', '{"pass": false, "reason": "no"}',
                    '{"pass": true, "reason": "ok"}'])
    stub.respond = lambda body: next(replies)
    check = Check("llm-rubric", "Names the capital", judge="openai/judge", samples=3)
    outcome = asyncio.run(judge.grade(store, check, "Capital of France?", "Paris", api_base=stub.base_url))
    assert outcome.passed is True and outcome.score == pytest.approx(2 / 3, abs=1e-3)
    assert outcome.judge_calls == 3 and outcome.judge_cost_usd is None  # the judge's price is unknown
    assert "agreed with itself 67% of 3 times" in outcome.reason
    judged = stub.requests[-1]["body"]["messages"]
    assert "Names the capital" in judged[-1]["content"] and "Paris" in judged[-1]["content"]
    stub.inject("401", "401", "401")
    failed = asyncio.run(judge.grade(store, check, "q", "a", api_base=stub.base_url))
    assert failed.passed is None and "no verdict" in failed.reason  # never a made-up verdict


def test_exact_equivalence_never_compares_vectors_of_different_batches():
    compare = checks.Equivalence("exact", meaning.DEFAULT_THRESHOLD, embed.embed)
    assert compare.compare("Paris.", "paris", "")[0] is True
    assert compare.compare("Paris", "Lyon", "")[0] is False
    assert np.isclose(compare.compare("Paris", "Lyon", "")[1], 0.0)
