"""Every page renders, without an exception, for the runs that break views: a model whose
every sample is an error, a run with no answer, a one-answer cell, and hostile text in
every field — and hostile text never becomes a link or markup."""

import re

import pytest
from streamlit.testing.v1 import AppTest

from core.store import Store, responses, runs
from core.review import golden, labels
from core.run import plan
from conftest import ROOT

HOSTILE = [
    "<img src=x onerror=alert(1)>", "![pixel](http://127.0.0.1:9/leak.png)", "[click](javascript:alert(1))",
    'http://127.0.0.1:9/x">link</a>', "www.example.com", "me@example.com", "$$\\frac{1}{0}$$", ":red[alarm]",
    "<script>alert(1)</script>", '" onmouseover="alert(1)', "**bold** _it_ `code`",
]
PAGES = ["playground", "runs", "spread", "compare", "review", "golden", "regress", "models", "serve"]


def write_run(store, stub, *, name, models, inputs, answers_by_model, n=1, temperatures=(1.0,)) -> int:
    """A finished run whose rows are written as given: text, or an error for `None`."""
    run_id = plan.create(store, plan.RunSpec(prompt="", variants=[plan.Variant("Say something about {{topic}}")],
                                      inputs=inputs, models=models, temperatures=list(temperatures), n=n,
                                      api_base=stub.base_url, name=name))
    rows = []
    for model in models:
        for i in range(len(inputs)):
            for t in temperatures:
                for s in range(n):
                    text = answers_by_model[model][(i + s) % len(answers_by_model[model])]
                    error = {"error_type": "auth", "error_message": "Incorrect API key provided."} if text is None \
                        else {"finish_reason": "stop", "completion_tokens": 5, "prompt_tokens": 7, "latency_ms": 40.0}
                    rows.append({"run_id": run_id, "variant": 0, "input": i, "model": model, "temperature": t,
                                 "sample_idx": s, "text": text, **error})
    with store.connection() as db:
        responses.save_responses(db, rows)
        runs.set_run_status(db, run_id, "done")
    return run_id


@pytest.fixture
def awkward_runs(store, stub):
    ids = {
        "all errors": write_run(store, stub, name="all errors", models=["openai/ok", "openai/broken"],
                                inputs=[{"topic": "France"}, {"topic": "Peru"}], n=3,
                                answers_by_model={"openai/ok": ["Paris", "Lima"], "openai/broken": [None]}),
        "one answer": write_run(store, stub, name="one answer", models=["openai/ok"], inputs=[{"topic": "one"}],
                                answers_by_model={"openai/ok": ["Only this"]}),
        "hostile": write_run(store, stub, name=HOSTILE[3], models=["openai/ok"],
                             inputs=[{"topic": text} for text in HOSTILE[:4]], n=3, temperatures=(0.0, 1.0),
                             answers_by_model={"openai/ok": HOSTILE}),
    }
    ids["empty"] = plan.create(store, plan.RunSpec(prompt="Nothing yet", models=["openai/ok"], temperatures=[1.0], n=2,
                                            api_base=stub.base_url, name="empty"))
    golden.create_set(store, "hostile-set", description=HOSTILE[1] + " " + HOSTILE[3], created_by="ann")
    with store.connection() as db:
        first_answer = db.execute("select min(id) from responses where run_id = ? and error_type is null",
                                  [ids["hostile"]]).fetchone()[0]
    labels.label(store, first_answer, "ann", labels.Label("fail", note=HOSTILE[0], correction=HOSTILE[1]))
    golden.add_responses(store, "hostile-set", [first_answer], who="ann")
    return ids


def markdown_sources(at: AppTest) -> list[str]:
    """Every string the page hands to a markdown renderer."""
    texts = [e.value for kind in ("markdown", "caption", "title", "header", "subheader", "info", "success",
                                  "warning", "error") for e in getattr(at, kind)]
    texts += [e.label for e in at.expander]
    return texts


def assert_no_live_markup(at: AppTest, page: str) -> None:
    for text in markdown_sources(at):
        assert not re.search(r"(?i)(?<!\\)<(img|script|a)\b", text), (page, text)
        assert not re.search(r"(?i)https?://|www\.(?=\w)|\w@\w", text), (page, text)  # no autolink survives
        assert "](" not in text.replace("\\](", "").replace("]\\(", ""), (page, text)


@pytest.mark.parametrize("which", ["all errors", "one answer", "hostile", "empty"])
def test_every_page_renders_an_awkward_run(awkward_runs, which):
    run_id = awkward_runs[which]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["reviewer"] = "ann"
    at.session_state["active_run"] = run_id
    at.session_state["spread_run"] = at.session_state["runs_run"] = run_id
    at.session_state["review_runs"] = [run_id]
    at.session_state["golden_set"] = "hostile-set"
    at.run()
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        assert_no_live_markup(at, page)
    if which != "empty":  # a cell with answers: open its drill-down and the review item's members
        at.switch_page("pages/spread.py").run()
        assert any(e.label.startswith("#") for e in at.expander) or which == "all errors"
        at.switch_page("pages/review.py").run()
        assert not at.exception
        if at.button(key="next").disabled is False:
            at.button(key="next").click().run()
            assert not at.exception


def test_every_page_renders_a_run_mixing_free_priced_and_unpriced_models(store, stub):
    """The embedded model costs 0, a cloud model has a price, an endpoint has none (NULL): a
    cell of each, and tables that keep them as numbers and "unknown", never a crash."""
    models = ["local/smollm2-135m-instruct", "openai/gpt-4o-mini", "openai/unpriced-endpoint"]
    cost = {"local/smollm2-135m-instruct": 0.0, "openai/gpt-4o-mini": 0.00012, "openai/unpriced-endpoint": None}
    run_id = plan.create(store, plan.RunSpec(prompt="", variants=[plan.Variant("Capital of {{country}}?")],
                                      inputs=[{"country": "France"}, {"country": "Peru"}], models=models,
                                      temperatures=[1.0], n=2, api_base=stub.base_url, name="mixed costs"))
    with store.connection() as db:
        responses.save_responses(db, [
            {"run_id": run_id, "variant": 0, "input": i, "model": model, "temperature": 1.0, "sample_idx": s,
             "text": ["Paris", "Lima"][i], "finish_reason": "stop", "completion_tokens": 3, "prompt_tokens": 9,
             "latency_ms": 30.0, "cost_usd": cost[model]}
            for model in models for i in range(2) for s in range(2)])
        runs.set_run_status(db, run_id, "done")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["reviewer"] = "ann"
    at.session_state["spread_run"] = at.session_state["runs_run"] = run_id
    at.session_state["review_runs"] = [run_id]
    at.run()
    for page in PAGES:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
    at.switch_page("pages/runs.py").run()
    cells = next(d.value for d in at.dataframe if {"wording", "model", "cost"} <= set(d.value.columns))
    by_model = dict(zip(cells["model"], cells["cost"]))
    assert by_model["local/smollm2-135m-instruct"] == "$0" and by_model["openai/gpt-4o-mini"] == "$0.000240"
    assert by_model["openai/unpriced-endpoint"].startswith("unknown")
