"""The Traces page through AppTest, on stored production calls."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from conftest import ROOT
from otel_traces import Recorder, current_chat, shared

from core import config
from core.formats import traces
from core.review import golden
from core.store import Store


def app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def test_an_empty_store_says_how_to_bring_traces_in():
    at = app()
    at.switch_page("pages/traces.py").run()
    assert not at.exception and "spread import-traces" in at.info[0].value


def test_volume_prompts_spread_and_a_call_are_shown_as_text(tmp_path):
    r = Recorder()
    for k in range(5):
        current_chat(r, "What is the capital of France?",
                     "Paris." if k < 3 else "<img src=x onerror=alert(1)> Lyon is the capital.")
    current_chat(r, "Tell me a joke", "No.")
    path = tmp_path / "t.pb"
    path.write_bytes(r.protobuf())
    traces.import_files(shared(), [path])
    golden.create_set(shared(), "prod")
    at = app()
    at.switch_page("pages/traces.py").run()
    assert not at.exception
    assert at.metric[0].value == "6"
    assert len(at.get("plotly_chart")) == 2  # volume, latency: no cost known
    assert any("no call in these traces says what it cost" in c.value for c in at.caption)
    assert at.metric[3].value == "60%"  # consistency of the repeated input: 3 of 5
    assert at.metric[4].value == "2"
    shown = [t.value for t in at.text]
    assert "<img src=x onerror=alert(1)> Lyon is the capital." in shown  # text, never markup
    at.button(key="traces_add_golden").click().run()
    assert not at.exception and at.success
    assert len(golden.items(shared(), "prod")) == 1
    at.selectbox(key="traces_model").set_value("gpt-4o-mini-2024-07-18").run()
    assert not at.exception and at.metric[0].value == "6"


def test_the_playground_draws_inputs_from_production_traces(tmp_path):
    r = Recorder()
    for question in ("Where is my order?", "Do you ship to Canada?", "Opening hours?"):
        current_chat(r, question, "Sure.")
    path = tmp_path / "t.pb"
    path.write_bytes(r.protobuf())
    traces.import_files(shared(), [path])
    at = app()
    at.switch_page("pages/playground.py").run()
    at.radio(key="inputs_source").set_value("production traces").run()
    at.number_input(key="inputs_traces_n").set_value(2).run()
    assert not at.exception
    assert any(c.value.startswith("2 inputs · variables:") and "messages" in c.value for c in at.caption), [c.value for c in at.caption] + [e.value for e in at.error]
    at.number_input(key="inputs_traces_n").set_value(5).run()
    assert any("only 3 distinct production input" in e.value for e in at.error), [e.value for e in at.error]


def test_the_traces_page_reruns_a_sample_on_a_candidate(stub, tmp_path):
    from core.models import endpoints
    from core.store import responses

    r = Recorder()
    for question in ("Where is my order?", "Do you ship to Canada?", "Opening hours?"):
        current_chat(r, question, "Sure.")
    path = tmp_path / "t.pb"
    path.write_bytes(r.protobuf())
    traces.import_files(shared(), [path])
    endpoints.add(shared(), endpoints.Endpoint(name="candidate", model="openai/stub-c", api_base=stub.base_url))
    at = app()
    at.switch_page("pages/traces.py").run()
    at.number_input(key="traces_sample").set_value(3)
    at.text_input(key="traces_candidate").input("candidate").run()
    at.button(key="traces_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = int(at.success[0].value.split()[1])
    deadline = time.time() + 60
    while time.time() < deadline:
        with shared().connection() as db:
            answered = responses.of_run(db, run_id)
        if len(answered) == 3:
            break
        time.sleep(0.3)
    assert len(answered) == 3
    sent = [r["body"]["messages"] for r in stub.requests if r["path"].endswith("/chat/completions")]
    assert sorted(m[-1]["content"] for m in sent) == ["Do you ship to Canada?", "Opening hours?", "Where is my order?"]
