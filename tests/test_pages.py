"""Every page through streamlit.testing.v1.AppTest, on a temporary database."""

import asyncio
import json
import time

import pytest
from streamlit.testing.v1 import AppTest

from core.store import Store, responses, runs
from core.run import plan, runner
from conftest import ROOT

TIMEOUT = 60


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def finished_run(store, stub, **overrides) -> int:
    fields = dict(prompt="What is the capital of France?", models=["openai/stub-a"],
                  temperatures=[0.0, 1.0], n=3, api_base=stub.base_url, seed=1)
    fields.update(overrides)
    run_id = plan.create(store, plan.RunSpec(**fields))
    asyncio.run(runner.execute(store, run_id))
    return run_id


def wait_until_done(store, run_id: int, timeout_s: float = 30) -> None:
    """A run the Playground started in the background, finished."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        with store.connection() as db:
            if runs.get_run(db, run_id)["status"] == "done":
                return
        time.sleep(0.2)


def test_playground_opens_with_the_local_model_preselected():
    at = app().run()
    assert not at.exception
    assert at.multiselect(key="models").value == ["local/smollm2-135m-instruct"]
    assert any("instruction-tuned" in c.value for c in at.caption)
    assert at.text_input(key="temperatures").value == "0, 0.7, 1.0"


@pytest.mark.parametrize("field,value,where,message", [
    ("prompt", "", "prompt", "prompt is empty"),
    ("temperatures", "0, 3", "temperatures", "outside 0..2"),
    ("temperatures", "hot", "temperatures", "not a number"),
    ("models", [], "models", "no model chosen"),
    ("models", ["openai/gpt-4o-mini"], "models", "missing key"),
    ("seed", "x1", "seed", "not a whole number"),
])
def test_playground_refuses_bad_input_next_to_the_control(store, field, value, where, message):
    at = app().run()
    at.text_area(key="prompt_0").input("What is 2+2?")
    key = "prompt_0" if field == "prompt" else field
    widget = {"prompt": at.text_area, "models": at.multiselect}.get(field, at.text_input)(key=key)
    widget.set_value(value)
    at.button(key="run").click().run()
    assert not at.exception
    assert [e.value for e in at.error] and message in at.error[0].value.replace("\\", "")  # shown escaped
    with store.connection() as db:
        assert db["runs"].count == 0


def test_playground_starts_a_background_run_against_a_stub_and_shows_progress(store, stub):
    at = app().run()
    at.text_area(key="prompt_0").input("What is the capital of France?")
    at.multiselect(key="models").set_value(["openai/stub-a"])
    at.text_input(key="api_base").input(stub.base_url)
    at.text_input(key="temperatures").input("0, 1")
    at.number_input(key="n").set_value(4)
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    run_id = at.session_state["active_run"]
    wait_until_done(store, run_id)
    at.run()
    assert any(f"Run {run_id}: done" in h.value for h in at.subheader)
    grid = next(df.value for df in at.dataframe if "T=1" in df.value.columns)
    assert grid.loc["openai/stub-a", "T=1"] == "4/4"


def test_runs_page_lists_runs_and_shows_a_cell_table(store, stub):
    run_id = finished_run(store, stub)
    at = app()
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    listing = at.dataframe[0].value
    assert list(listing["run"]) == [run_id]
    assert list(listing["cost"]) == ["unknown (6 answers unpriced)"]  # the stub has no price: never $0
    assert at.selectbox[0].value == run_id
    cells = at.dataframe[1].value
    assert list(cells["answers"]) == [3, 3]
    assert {"latency p50 (ms)", "mean length (tokens)", "wording", "input", "cost"} <= set(cells.columns)
    assert set(cells["cost"]) == {"unknown (3 answers unpriced)"}
    shown = at.dataframe[2].value
    assert len(shown) == 6 and set(shown["prompt"]) == {"What is the capital of France?"}


def test_runs_page_offers_resume_for_an_interrupted_run(store, stub):
    run_id = plan.create(store, plan.RunSpec(prompt="Q?", models=["openai/stub-a"], temperatures=[1.0],
                                          n=3, api_base=stub.base_url))
    with store.connection() as db:
        runs.set_run_status(db, run_id, "running")
        db.execute("update runs set heartbeat_at = 0 where id = ?", [run_id])
        db.conn.commit()
    at = app()
    at.switch_page("pages/runs.py").run()
    assert any("interrupted" in h.value for h in at.subheader)
    resume = [b for b in at.button if "Resume" in b.label]
    assert resume and "3 missing" in resume[0].label


def test_answers_are_shown_as_text_not_markup(store, stub):
    stub.answers = ['<img src=x onerror="alert(1)"> ![x](http://example.invalid/p.png)']
    finished_run(store, stub, temperatures=[0.0], n=1)
    at = app()
    at.switch_page("pages/runs.py").run()
    assert not at.markdown or all("onerror" not in m.value for m in at.markdown)
    texts = [df.value for df in at.dataframe]
    assert any("onerror" in str(df.get("text", "")) for df in texts if hasattr(df, "get"))


def test_spread_page_shows_the_grid_clusters_and_charts(store, stub):
    stub.answers = ["Paris.", "The capital of France is Paris.", "Lyon.", "It is Lyon"]
    run_id = finished_run(store, stub, models=["openai/stub-a", "openai/stub-b"], temperatures=[0.0, 1.0], n=6)
    at = app()
    at.switch_page("pages/spread.py").run()
    assert not at.exception
    assert at.selectbox(key="spread_run").value == run_id
    charts = at.get("plotly_chart")
    assert len(charts) == 5  # heatmap, cluster bars, map, lengths, latency: no cost axis of unknown prices
    assert any("No cost chart: no answer of this run has a known price" in c.value for c in at.caption)
    # the T=0 cell of stub-a repeats one answer: consistency 100%
    assert at.metric[0].value == "100%"
    clusters = [e for e in at.expander if e.label.startswith("#")]
    assert clusters[0].label.startswith("#0 · 6 answers (100%)")
    at.selectbox(key="cell_temperature").set_value(1.0).run()
    assert at.metric[0].value != "100%" and len([e for e in at.expander if e.label.startswith("#")]) >= 2
    at.radio(key="method").set_value("exact").run()
    assert not at.exception


def test_spread_page_explains_a_pair_and_a_reviewers_split_is_respected(store, stub):
    stub.answers = ["Paris.", "The capital of France is Paris.", "Paris, France."]
    run_id = finished_run(store, stub, temperatures=[1.0], n=9)
    at = app()
    at.switch_page("pages/spread.py").run()
    at.text_input(key="reviewer").input("ana").run()
    assert at.metric[1].value == "1"  # one meaning: every answer says Paris
    answers = at.selectbox(key="why_a").options
    assert len(answers) == 3
    assert any(t.value.startswith("Spread says: the same meaning") for t in at.text)
    at.button(key="decide_split").click().run()
    assert not at.exception
    assert at.metric[1].value == "2"  # the split is applied to the analysis
    with store.connection() as db:
        (decision,) = list(db.query("select * from cluster_decisions"))
    assert decision["action"] == "split" and decision["reviewer"] == "ana" and decision["run_id"] == run_id


def test_compare_page_shows_shared_and_unique_meanings_with_the_shift(store, stub):
    stub.answers = ["Paris.", "Lyon.", "Marseille."]
    run_id = finished_run(store, stub, temperatures=[0.0, 1.0], n=12)
    at = app()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert at.selectbox(key="run_A").value == run_id
    assert [m.label for m in at.metric] == ["Consistency A", "Consistency B", "Shift (A − B)"]
    assert at.metric[0].value == "100%"  # A: T=0 answers "Paris." every time
    headers = [h.value for h in at.subheader]
    assert "Meanings both sides gave (1)" in headers and "Only in A (0)" in headers
    assert any(c.language == "diff" for c in at.code)


def reviewed_app(name="ana") -> AppTest:
    at = app().run()
    at.sidebar.text_input(key="reviewer").input(name).run()
    return at


def test_review_page_asks_for_a_reviewer_first(store, stub):
    finished_run(store, stub)
    at = app().run()
    at.switch_page("pages/review.py").run()
    assert "Enter your name" in at.warning[0].value


def test_a_cluster_label_from_the_review_page_reaches_every_member(store, stub):
    from core.review import labels

    stub.answers = ["Paris.", "Lyon."]
    run_id = finished_run(store, stub, temperatures=[0.0], n=5)  # T=0: five times "Paris."
    at = reviewed_app("ana")
    at.switch_page("pages/review.py").run()
    assert not at.exception
    assert at.subheader[0].value == "1 of 1 · Meaning cluster of 5 answers"
    assert "0/5 answers labelled by ana" in at.get("progress")[0].proto.text
    at.text_input(key=f"note_{at.session_state['review_item']}").input("capital is right")
    at.button(key="pass").click().run()
    assert not at.exception
    with store.connection() as db:
        ids = [r["id"] for r in responses.of_run(db, run_id)]
    given = labels.labels_for(store, ids)
    assert len(given) == 5 and {(r["verdict"], r["reviewer"], r["note"]) for r in given} == {
        ("pass", "ana", "capital is right")}
    assert "5/5 answers labelled by ana" in at.get("progress")[0].proto.text


def test_review_page_shows_agreement_and_disagreements_between_reviewers(store, stub):
    from core.review import labels

    run_id = finished_run(store, stub, temperatures=[1.0], n=4)
    with store.connection() as db:
        ids = [r["id"] for r in responses.of_run(db, run_id)]
    for rid, (a, b) in zip(ids, [("pass", "pass"), ("pass", "fail"), ("fail", "fail"), ("fail", "fail")]):
        labels.label(store, rid, "ana", labels.Label(a))
        labels.label(store, rid, "ben", labels.Label(b))
    at = reviewed_app("ana")
    at.switch_page("pages/review.py").run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[f"Run {run_id}: agreement"] == "75%"
    assert metrics["Cohen's kappa"] == "0.50"
    disputed = at.dataframe[-1].value
    assert list(disputed["answer"]) == [ids[1]]


def test_the_agreement_section_counts_this_reviewers_own_labels_at_once(store, stub):
    finished_run(store, stub, temperatures=[0.0], n=3)
    at = reviewed_app("ana")
    at.switch_page("pages/review.py").run()
    assert any("so far: nobody" in c.value for c in at.caption)
    at.button(key="pass").click().run()  # within the 5 s the others' labels are not recounted
    assert any("so far: ana;" in c.value and "counted at" in c.value for c in at.caption)


def test_golden_page_creates_a_set_adds_from_review_and_exports(store, stub):
    stub.answers = ["Paris."]
    finished_run(store, stub, temperatures=[0.0], n=3)
    at = reviewed_app("ana")
    at.switch_page("pages/review.py").run()
    at.button(key="pass").click().run()
    at.text_input(key=f"golden_new_{at.session_state['review_item']}").input("capitals")
    at.button(key="golden_add").click().run()
    assert not at.exception and "version 1" in at.success[0].value
    at.switch_page("pages/golden.py").run()
    assert not at.exception
    assert at.selectbox(key="golden_set").value == "capitals"
    table = at.dataframe[0].value
    assert list(table["prompt"]) == ["What is the capital of France?"] and list(table["accepted"]) == [1]
    downloads = at.get("download_button")
    assert len(downloads) == 5
    remove = [b for b in at.button if b.label == "Remove"]
    remove[0].click().run()
    assert at.dataframe[0].value.empty
    at.toggle(key="golden_removed").set_value(True).run()
    [b for b in at.button if b.label == "Restore"][0].click().run()
    at.toggle(key="golden_removed").set_value(False).run()
    assert len(at.dataframe[0].value) == 1
    assert "v3" in at.selectbox(key="golden_set").format_func("capitals")  # add, remove, restore


CAPITALS = {"France": "Paris.", "Japan": "Tokyo.", "Egypt": "Cairo.", "Peru": "Lima."}


def capitals_run(store, stub) -> int:
    """One answer per country (four review items), each the country's capital."""
    stub.respond = lambda body: next(city for country, city in CAPITALS.items()
                                     if country in body["messages"][-1]["content"])
    return finished_run(store, stub, prompt="", variants=[plan.Variant("What is the capital of {{country}}?")],
                        inputs=[{"country": c} for c in CAPITALS], temperatures=[0.0], n=1)


def test_the_golden_popover_starts_from_the_answer_on_screen_and_honours_the_set_chosen(store, stub):
    """A reference typed for one answer never reaches the next; once a set is created its
    name leaves the new-set box, so choosing another set in the list is what Add uses."""
    from core.review import golden

    capitals_run(store, stub)
    at = reviewed_app("ana")
    at.switch_page("pages/review.py").run()
    first = at.session_state["review_item"]
    at.text_input(key=f"golden_new_{first}").input("capitals")
    at.text_area(key=f"golden_correction_{first}").input("Typed for the first").run()
    at.button(key="golden_add").click().run()
    assert not at.exception and "version 1" in at.success[0].value
    assert at.text_input(key=f"golden_new_{first}").value == ""
    assert at.selectbox(key=f"golden_target_{first}").value == "capitals"
    golden.create_set(store, "other", created_by="ben")
    at.button(key="next").click().run()
    second = at.session_state["review_item"]
    assert second != first
    assert at.text_area(key=f"golden_correction_{second}").value == ""
    assert at.text_input(key=f"golden_new_{second}").value == ""
    assert at.selectbox(key=f"golden_target_{second}").value == "capitals"  # the set last added to
    at.selectbox(key=f"golden_target_{second}").set_value("other").run()
    at.button(key="golden_add").click().run()
    assert not at.exception
    assert [i["reference"] for i in golden.items(store, "capitals")] == ["Typed for the first"]
    with store.connection() as db:
        second_text = db.execute("select text from responses where id = ?", [second]).fetchone()[0]
    assert [i["reference"] for i in golden.items(store, "other")] == [second_text]


def test_a_failed_cluster_goes_into_a_golden_set_only_as_a_rejected_answer_and_the_page_fixes_old_items(store, stub):
    from core.review import golden

    stub.answers = ["Lima."]
    finished_run(store, stub, temperatures=[0.0], n=3)
    at = reviewed_app("ana")
    at.switch_page("pages/review.py").run()
    at.button(key="fail").click().run()  # F on the cluster
    at.text_input(key=f"golden_new_{at.session_state['review_item']}").input("capitals").run()
    assert at.button(key="golden_add").disabled  # no reference yet: a failed answer cannot be one
    at.text_area(key=f"golden_correction_{at.session_state['review_item']}").input("Paris").run()
    at.button(key="golden_add").click().run()
    assert not at.exception and "version 1" in at.success[0].value
    (item,) = golden.items(store, "capitals")
    assert item["reference"] == "Paris" and item["rejected"] == ["Lima."] and item["accepted"] == []
    with store.connection() as db:  # as an item made before items were kept consistent
        db.execute("update golden_items set reference = 'Lima', accepted = ? where id = ?",
                   [json.dumps(["Lima"]), item["id"]])
    at.switch_page("pages/golden.py").run()
    at.button(key="golden_check").click().run()
    assert "also rejected: 'Lima' (reference), 'Lima' (accepted)" in at.text[0].value
    at.button(key="golden_fix").click().run()
    assert not at.exception and "1 item(s) fixed: version 2" in at.success[0].value
    assert golden.check(store, "capitals")["items"] == [] and golden.items(store, "capitals")[0]["reference"] is None


AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "test-secret",
        "client_id": "id", "client_secret": "secret",
        "server_metadata_url": "https://login.example.invalid/.well-known/openid-configuration"}


@pytest.mark.parametrize("page", ["pages/playground.py", "pages/runs.py", "pages/spread.py", "pages/compare.py",
                                  "pages/review.py", "pages/golden.py", "pages/models.py"])
def test_with_login_configured_every_page_refuses_an_anonymous_visitor(store, stub, page):
    finished_run(store, stub)
    at = app()
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": False}
    at.run()
    at.switch_page(page).run()
    assert [b.label for b in at.button] == ["Log in"]
    assert not at.dataframe and not at.text_area and not at.get("plotly_chart")


@pytest.mark.parametrize("user, identity", [
    ({"email": "ana@example.com", "name": "Ana", "sub": "1"}, "ana@example.com"),
    ({"sub": "google-oauth2|1234"}, "google-oauth2|1234"),  # a provider that shares neither e-mail nor name
])
def test_with_login_labels_carry_the_logged_in_identity(store, stub, user, identity):
    from core.review import labels

    stub.answers = ["Paris."]
    run_id = finished_run(store, stub, temperatures=[0.0], n=2)
    at = app()
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, **user}
    at.run()
    assert not at.sidebar.text_input  # no name to type: the login says who
    at.switch_page("pages/review.py").run()
    at.button(key="pass").click().run()
    with store.connection() as db:
        ids = [r["id"] for r in responses.of_run(db, run_id)]
    assert {r["reviewer"] for r in labels.labels_for(store, ids)} == {identity}


def test_with_login_endpoints_a_promptfoo_suite_adds_carry_the_logged_in_identity(store, stub, tmp_path):
    from test_import_promptfoo import write_suite

    at = app()
    at.secrets["auth"] = AUTH
    at.user = {"is_logged_in": True, "email": "ana@example.com"}
    at.run()
    suite = write_suite(tmp_path, stub.base_url, prompts=("Capital of {{country}}? One word.",))
    at.text_input(key="promptfoo_path").input(str(suite))
    at.button(key="import_promptfoo").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    with store.connection() as db:
        assert [r["created_by"] for r in db.query("select created_by from endpoints")] == ["ana@example.com"]


def test_playground_builds_a_two_wording_three_input_run_with_an_estimate(store, stub):
    at = app().run()
    at.text_area(key="prompt_0").input("What is the capital of {{country}}?")
    at.button(key="add_variant").click().run()
    at.text_area(key="prompt_1").input("Name the capital city of {{ country }}.")
    at.text_input(key="variant_name_1").input("terse")
    at.radio(key="inputs_source").set_value("pasted text").run()
    at.text_area(key="inputs_pasted").input("country,expected\nFrance,Paris\nPeru,Lima\nJapan,Tokyo").run()
    at.multiselect(key="models").set_value(["openai/stub-a"])
    at.text_input(key="api_base").input(stub.base_url)
    at.text_input(key="temperatures").input("0, 1")
    at.number_input(key="n").set_value(2).run()
    assert not at.exception and not at.error
    assert any("**24 calls** = 2 wordings × 3 inputs × 1 models × 2 temperatures × N=2" in i.value for i in at.info)
    assert any("3 inputs" in c.value for c in at.caption)
    # Duplicate and remove a wording: the plan follows.
    at.button(key="duplicate_1").click().run()
    assert at.text_area(key="prompt_2").value == "Name the capital city of {{ country }}."
    assert any("**36 calls**" in i.value for i in at.info)
    at.button(key="remove_2").click().run()
    assert any("**24 calls**" in i.value for i in at.info)
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    run_id = at.session_state["active_run"]
    wait_until_done(store, run_id)
    with store.connection() as db:
        assert [v["label"] for v in runs.run_variants(db, run_id)] == ["A", "terse"]
        assert [i["vars"]["country"] for i in runs.run_inputs(db, run_id)] == ["France", "Peru", "Japan"]
        assert db["responses"].count == 24
    at.run()
    grid = next(df.value for df in at.dataframe if "T=1" in df.value.columns)
    assert grid.loc["openai/stub-a", "T=1"] == "12/12"


def test_playground_names_a_missing_variable_next_to_the_inputs(store):
    at = app().run()
    at.text_area(key="prompt_0").input("Capital of {{country}} in {{year}}?")
    at.radio(key="inputs_source").set_value("pasted text").run()
    at.text_area(key="inputs_pasted").input("country\nPeru").run()
    assert any("missing variable" in e.value.replace("\\", "") and "year" in e.value for e in at.error)
    at.button(key="run").click().run()
    with store.connection() as db:
        assert db["runs"].count == 0


def test_spread_page_lets_you_choose_the_axes_and_reports_wording_sensitivity(store, stub):
    stub.answers = ["Paris.", "Lyon."]
    run_id = plan.create(store, plan.RunSpec(
        variants=[plan.Variant("Capital of {{c}}?"), plan.Variant("Name the capital of {{c}}.")],
        inputs=[{"c": "France"}, {"c": "Italy"}], models=["openai/stub-a"], temperatures=[1.0], n=6,
        api_base=stub.base_url))
    asyncio.run(runner.execute(store, run_id))
    at = app()
    at.switch_page("pages/spread.py").run()
    assert not at.exception
    assert at.selectbox(key="y_axis").value == "variant"
    title = json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"]
    assert title.endswith("wording × model")
    at.selectbox(key="y_axis").set_value("input").run()
    assert not at.exception
    assert json.loads(at.get("plotly_chart")[0].proto.spec)["layout"]["title"]["text"].endswith("input × model")
    assert any(h.value == "Wording or sampling?" for h in at.subheader)
    assert any("spread due to wording" in str(df.value.columns.tolist()) for df in at.dataframe)
    per_input = next(df.value for df in at.dataframe if "p (Holm-adjusted)" in df.value.columns)
    assert {"p (raw)", "interval (95%, all rows together)"} <= set(per_input.columns)


def test_regression_page_runs_a_golden_set_in_the_background_and_shows_the_verdict(store, stub, tmp_path):
    from core.formats import golden_files
    from test_regress import answer_with, golden_file

    path, items = golden_file(tmp_path, n_items=3)
    golden_files.import_file(store, "capitals", path)
    stub.respond = answer_with(items, right=True)
    at = app()
    at.switch_page("pages/regress.py").run()
    assert not at.exception
    at.text_input(key="regress_model").input("openai/stub-a")
    at.text_input(key="regress_api_base").input(stub.base_url)
    at.number_input(key="regress_k").set_value(4)
    at.number_input(key="regress_min").set_value(0.5)
    at.button[0].click().run()
    assert not at.exception and not at.error
    from core.evaluate import regress

    run_id = at.session_state["regress_run"]  # sampled and judged where runs go, not by the page
    deadline = time.monotonic() + 60
    while regress.for_run(store, run_id) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    at.run()
    assert any("the gate holds" in h.value for h in at.subheader)
    assert at.metric[0].value == "100%"
    items_table = next(df.value for df in at.dataframe if "p (Holm)" in df.value.columns)
    assert len(items_table) == 3
    assert len(at.get("plotly_chart")) == 1  # the history


def test_spread_page_shows_pass_rates_and_each_checks_agreement_with_reviewers(store, stub):
    from core.review import labels

    stub.answers = ["Paris.", "Lyon."]
    run_id = plan.create(store, plan.RunSpec(prompt="Capital of {{c}}?", inputs=[{"c": "France", "expected": "Paris"}],
                                      models=["openai/stub-a"], temperatures=[1.0], n=8, api_base=stub.base_url,
                                      checks=[{"type": "similar", "value": "{{expected}}"}]))
    asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        for row in responses.of_run(db, run_id):
            labels.label(store, row["id"], "ana", labels.Label("pass" if row["text"] == "Paris." else "fail"))
    at = app()
    at.switch_page("pages/spread.py").run()
    assert not at.exception
    assert any(h.value == "Checks" for h in at.subheader)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith("pass rate") for t in titles)
    agreement = next(df.value for df in at.dataframe if "passes reviewers failed" in df.value.columns)
    assert agreement.iloc[0]["agrees with reviewers"] == "100%" and agreement.iloc[0]["answers both judged"] == 8
    at.text_area(key="spread_checks").input("max-length:3\nregex:[oops")
    at.button(key="spread_add_checks").click().run()
    assert any("invalid regular expression" in e.value.replace("\\", "") for e in at.error)
    at.text_area(key="spread_checks").input("max-length:6")
    at.button(key="spread_add_checks").click().run()
    assert not at.exception
    with store.connection() as db:
        assert len(runs.get_run(db, run_id)["spec"]["checks"]) == 2


def test_playground_refuses_a_bad_check_before_the_run(store):
    at = app().run()
    at.text_area(key="prompt_0").input("What is 2+2?")
    at.text_area(key="checks_text").input("contains:4\nregex:(unclosed").run()
    at.button(key="run").click().run()
    assert any("invalid regular expression" in e.value.replace("\\", "") for e in at.error)
    with store.connection() as db:
        assert db["runs"].count == 0


def models_page() -> AppTest:
    at = app()
    at.switch_page("pages/models.py").run()
    assert not at.exception
    return at


def test_models_page_adds_tests_edits_duplicates_and_removes_an_endpoint(store, stub):
    from core.models import endpoints

    at = models_page()
    assert any("No endpoints yet" in i.value for i in at.info)
    at.text_input(key="ep_name").input("team")
    at.text_input(key="ep_model").input("openai/served")
    at.text_input(key="ep_api_base").input(stub.base_url)
    at.text_area(key="ep_params").input("top_k=40")
    at.text_input(key="ep_price_in").input("1")
    at.text_input(key="ep_price_out").input("2")
    at.button(key="ep_test_button").click().run()  # test before saving: nothing is written
    assert not at.exception and not at.error
    assert [t.value for t in at.text] == ["Paris."]  # the answer, as plain text
    assert any("model reported: served\\-2024\\-stub" in c.value and "tokens" in c.value and "cost $" in c.value
               for c in at.caption)
    assert stub.requests[-1]["body"]["top_k"] == 40 and endpoints.names(store) == []

    at.button(key="ep_save").click().run()
    assert endpoints.get(store, "team").params == {"top_k": 40}
    table = at.dataframe[0].value
    assert list(table["name"]) == ["team"] and list(table["ready"]) == ["yes"]
    assert list(table["server"]) == ["reachable"] and list(table["key"]) == ["not needed"]
    assert at.selectbox(key="ep_pick").value == "team"

    at.text_input(key="ep_rpm").input("120")
    at.button(key="ep_save").click().run()
    assert endpoints.get(store, "team").rpm == 120
    at.button(key="ep_duplicate").click().run()
    assert at.selectbox(key="ep_pick").value == "team copy" and at.text_input(key="ep_rpm").value == "120"
    at.button(key="ep_remove").click().run()
    assert endpoints.names(store) == ["team"] and at.selectbox(key="ep_pick").value == "(new endpoint)"
    at.selectbox(key="ep_pick").set_value("team").run()
    assert at.text_input(key="ep_api_base").value == stub.base_url and at.text_area(key="ep_params").value == "top_k=40"


def test_models_page_refuses_a_bad_endpoint_and_shows_a_failed_test_in_one_line(store, stub):
    from core.models import endpoints

    at = models_page()
    at.text_input(key="ep_name").input("leaky")
    at.text_input(key="ep_model").input("openai/served")
    at.text_input(key="ep_key_env").input("sk-live-0123456789")
    at.button(key="ep_save").click().run()
    assert "never the key itself" in at.error[0].value.replace("\\", "") and endpoints.names(store) == []
    at.text_input(key="ep_key_env").input("")
    at.text_input(key="ep_api_base").input(stub.base_url)
    stub.inject("401")
    at.button(key="ep_test_button").click().run()
    (error,) = at.error
    assert "auth" in error.value and "Incorrect API key" in error.value.replace("\\", "")
    assert not at.text


def test_models_page_imports_a_litellm_config_after_a_preview_and_exports_it(store):
    from core.models import endpoints
    from test_endpoints import BAD, GOOD

    at = models_page()
    at.text_area(key="ep_import_text").input(BAD).run()
    assert any("nothing imported" in e.value for e in at.error) and endpoints.names(store) == []
    at.text_area(key="ep_import_text").input(GOOD).run()
    preview = next(df.value for df in at.dataframe if "key variable" in df.value.columns and len(df.value) == 2)
    assert list(preview["name"]) == ["team-llama", "mini"] and endpoints.names(store) == []
    assert any("temperature ignored" in c.value for c in at.caption)
    at.button(key="ep_import").click().run()
    assert not at.exception
    assert endpoints.names(store) == ["mini", "team-llama"]
    assert any("Imported" in s.value for s in at.success)
    assert list(at.dataframe[0].value["name"]) == ["mini", "team-llama"]
    export = at.get("download_button")[0]
    assert not export.proto.disabled


def test_playground_lists_catalogue_endpoints_first_and_runs_one_by_name(store, stub):
    from core.models import endpoints

    endpoints.add(store, endpoints.Endpoint("team", "openai/served", api_base=stub.base_url, params={"top_k": 7}))
    at = app().run()
    models = at.multiselect(key="models")
    assert models.options[0] == "team" and "local/gemma-3-270m" in models.options
    at.text_area(key="prompt_0").input("What is the capital of France?")
    models.set_value(["team"])
    at.text_input(key="temperatures").input("1")
    at.number_input(key="n").set_value(2)
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    run_id = at.session_state["active_run"]
    deadline = time.time() + 30
    while time.time() < deadline:
        with store.connection() as db:
            if runs.get_run(db, run_id)["status"] == "done":
                break
        time.sleep(0.2)
    with store.connection() as db:
        assert {r["model"] for r in responses.of_run(db, run_id)} == {"team"}
    assert stub.count() == 2 and all(r["body"]["top_k"] == 7 for r in stub.requests)
    at.switch_page("pages/runs.py").run()
    used = at.dataframe[-1].value
    assert list(used["name"]) == ["team"] and list(used["api base"]) == [stub.base_url]


def fill_two_wording_plan(at: AppTest, stub) -> AppTest:
    at.text_area(key="system").input("Answer in one word.")
    at.text_area(key="prompt_0").input("What is the capital of {{country}}?")
    at.button(key="add_variant").click().run()
    at.text_area(key="prompt_1").input("Name the capital city of {{ country }}.")
    at.text_input(key="variant_name_1").input("terse")
    at.radio(key="inputs_source").set_value("pasted text").run()
    at.text_area(key="inputs_pasted").input("country,expected\nFrance,Paris\nPeru,Lima").run()
    at.multiselect(key="models").set_value(["openai/stub-a"])
    at.text_input(key="api_base").input(stub.base_url)
    at.text_input(key="temperatures").input("0, 1")
    at.number_input(key="n").set_value(2)
    at.number_input(key="max_tokens").set_value(64)
    at.text_input(key="seed").input("7")
    at.text_input(key="name").input("capitals")
    at.text_area(key="checks_text").input("icontains:{{expected}}")
    return at.run()


def assert_the_plan_is_back(at: AppTest, stub) -> None:
    assert not at.exception
    assert at.text_area(key="system").value == "Answer in one word."
    assert at.text_area(key="prompt_0").value == "What is the capital of {{country}}?"
    assert at.text_area(key="prompt_1").value == "Name the capital city of {{ country }}."
    assert at.text_input(key="variant_name_1").value == "terse"
    assert at.radio(key="inputs_source").value == "pasted text"
    assert at.text_area(key="inputs_pasted").value == "country,expected\nFrance,Paris\nPeru,Lima"
    assert at.multiselect(key="models").value == ["openai/stub-a"]
    assert at.text_input(key="api_base").value == stub.base_url
    assert at.text_input(key="temperatures").value == "0, 1"
    assert (at.number_input(key="n").value, at.number_input(key="max_tokens").value) == (2, 64)
    assert (at.text_input(key="seed").value, at.text_input(key="name").value) == ("7", "capitals")
    assert at.text_area(key="checks_text").value == "icontains:{{expected}}"
    assert any("**16 calls**" in i.value for i in at.info)


def test_the_playground_plan_survives_other_pages_and_a_reload(stub):
    at = fill_two_wording_plan(app().run(), stub)
    assert any("**16 calls**" in i.value for i in at.info)
    for page in ["spread", "compare", "review", "regress", "runs", "golden", "models"]:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
    at.switch_page("pages/playground.py").run()
    assert_the_plan_is_back(at, stub)
    # A reload is a new session: the draft in the database brings the plan back.
    assert_the_plan_is_back(app().run(), stub)


def test_a_rerun_never_sends_kept_values_back_to_the_browser(stub):
    """A widget's value goes to the browser only when the widget is drawn again after
    another page: a field typed into while a rerun is still drawing keeps what was typed."""
    def pushed(at: AppTest) -> list[str]:
        """The plan's widgets whose value this run sent to the browser."""
        shown = [at.text_area(key="system"), at.text_area(key="prompt_1"), at.text_input(key="variant_name_1"),
                 at.radio(key="inputs_source"), at.text_area(key="inputs_pasted"), at.multiselect(key="models"),
                 at.text_input(key="temperatures"), at.number_input(key="n"), at.text_input(key="name")]
        return [w.key for w in shown if w.proto.set_value]

    at = fill_two_wording_plan(app().run(), stub).run()
    assert pushed(at) == []
    at.switch_page("pages/runs.py").run()
    assert len(pushed(at.switch_page("pages/playground.py").run())) == 9  # drawn afresh: each shows its kept value
    assert pushed(at.run()) == []


def test_page_selections_survive_other_pages(store, stub):
    finished_run(store, stub, models=["openai/stub-a", "openai/stub-b"])
    at = app()
    at.switch_page("pages/runs.py").run()
    at.multiselect(key="runs_models").set_value(["openai/stub-b"])
    at.multiselect(key="runs_temperatures").set_value([1.0]).run()
    at.switch_page("pages/spread.py").run()
    at.radio(key="method").set_value("exact").run()
    for page in ["playground", "compare", "runs"]:
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, page
    assert at.multiselect(key="runs_models").value == ["openai/stub-b"]
    assert at.multiselect(key="runs_temperatures").value == [1.0]
    at.switch_page("pages/spread.py").run()
    assert at.radio(key="method").value == "exact"


def test_typed_input_rows_survive_another_page(stub):
    at = app().run()
    at.text_area(key="prompt_0").input("Capital of {{country}}?").run()
    at.session_state["typed_rows"] = [{"country": "France"}, {"country": "Peru"}]
    at.switch_page("pages/runs.py").run()
    at.switch_page("pages/playground.py").run()
    assert any("2 inputs" in c.value for c in at.caption)


def test_load_this_runs_plan_refills_the_playground_from_an_earlier_run(store, stub):
    run_id = finished_run(store, stub, prompt="", variants=[plan.Variant("Capital of {{country}}?", "Be brief."),
                                                      plan.Variant("{{country}}'s capital is", "", "open")],
                          inputs=[{"country": "France"}, {"country": "Chile"}], temperatures=[0.5], n=2,
                          name="old plan", checks=[{"type": "contains", "value": "{{country}}"}])
    at = app().run()
    at.text_input(key="temperatures").input("2").run()  # a plan being written is replaced, field by field
    at.switch_page("pages/runs.py").run()
    at.button(key="load_plan").click().run()
    assert not at.exception
    at.switch_page("pages/playground.py").run()
    assert at.text_area(key="prompt_0").value == "Capital of {{country}}?"
    assert at.text_area(key="prompt_1").value == "{{country}}'s capital is"
    assert at.text_input(key="variant_name_1").value == "open"
    assert at.text_area(key="system").value == "Be brief."
    assert at.radio(key="inputs_source").value == "an earlier run"
    assert at.text_input(key="temperatures").value == "0.5"
    assert at.text_input(key="name").value == "old plan"
    assert at.text_area(key="checks_text").value == "contains:{{country}}"
    assert any("**8 calls**" in i.value for i in at.info), [i.value for i in at.info]


def test_inputs_are_named_by_their_variables_on_compare_and_runs(store, stub):
    run_id = finished_run(store, stub, prompt="", variants=[plan.Variant("Capital of {{country}}?"),
                                                      plan.Variant("Name the capital of {{country}}.")],
                          inputs=[{"country": "France"}, {"country": "Peru"}], temperatures=[1.0], n=2)
    at = app()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    per_input = next(df.value for df in at.dataframe if "top meaning share A" in df.value.columns)
    assert set(per_input["input"]) == {"#1 country=France", "#2 country=Peru"}
    at.switch_page("pages/runs.py").run()
    cells = next(df.value for df in at.dataframe if "latency p50 (ms)" in df.value.columns)
    assert set(cells["input"]) == {"#1 country=France", "#2 country=Peru"}
    answers = next(df.value for df in at.dataframe if "text" in df.value.columns)
    assert set(answers["input"]) == {"#1 country=France", "#2 country=Peru"}
    # Two unnamed wordings of a new run are A and B, each version 1 of its own wording.
    with store.connection() as db:
        assert [(v["label"], v["version"]) for v in runs.run_variants(db, run_id)] == [("A", 1), ("B", 1)]


def test_review_keeps_its_place_when_a_filter_changes(store, stub):
    from core.review import labels

    cities = iter(["Paris", "Lima", "Tokyo", "Oslo", "Rome", "Cairo", "Quito", "Bern"])
    stub.respond = lambda body: next(cities)  # eight meanings, one answer each
    run_id = finished_run(store, stub, temperatures=[1.0], n=8)
    with store.connection() as db:
        ids = [r["id"] for r in responses.of_run(db, run_id)]
    at = reviewed_app("ana")
    at.switch_page("pages/review.py").run()
    total = int(at.subheader[0].value.split(" of ")[1].split(" ")[0])
    assert total >= 4
    # Label the first two, step to the fourth item, then show only what is unlabelled.
    at.button(key="pass").click().run()
    at.button(key="fail").click().run()
    at.button(key="next").click().run()
    assert at.subheader[0].value.startswith(f"4 of {total}")
    current = at.session_state["review_item"]
    at.toggle(key="review_unlabelled").set_value(True).run()
    assert at.session_state["review_item"] == current  # the same answer stays on screen
    assert at.subheader[0].value.startswith(f"2 of {total - 2}")  # items 1-2 left the list: it is now 2nd
    # Labelling it moves to the next unlabelled answer, not past it.
    at.button(key="pass").click().run()
    assert at.subheader[0].value.startswith(f"2 of {total - 3}")
    assert len(labels.labels_for(store, ids)) == 3
