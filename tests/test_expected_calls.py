"""Expected tool calls as a correction: a reviewer gives the calls a tool-call answer should
have made; the golden set, the gate, the checks, the exports and golden-set inputs use them;
and no answer that could not be checked leaves a pass rate in silence."""

import asyncio
import json

import pytest
import yaml

from core.store import Store, responses, runs
from core.config import SpreadError
from core.formats import golden_files as export
from core.review import golden, labels
from core.run import plan, runner
from test_cli import last_json, spread as cli
from test_prompt_shapes import WEATHER, call, run_spec

CITIES = ["Paris", "Rome", "Lyon", "Oslo"]
RIGHT = {city: {"name": "get_weather", "arguments": {"city": city}} for city in CITIES}


def city_of(body) -> str:
    return next(c for c in CITIES if c in body["messages"][-1]["content"])


def weather_run(store, stub, answer) -> tuple[int, dict[str, int]]:
    """A tool-call run over four cities (one sample each): city -> answer id."""
    stub.respond = lambda body: answer(city_of(body))
    chat = [{"role": "user", "content": "Weather in {{city}}?"}]
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("", messages=chat, tools=WEATHER)], n=1,
                                  inputs=[{"city": c} for c in CITIES]))
    asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
        names = {i["input"]: i["vars"]["city"] for i in runs.run_inputs(db, run_id)}
    return run_id, {names[r["input"]]: r["id"] for r in rows}


def right_for_two(city):
    """Paris and Rome right; Lyon and Oslo call the wrong tool."""
    if city in ("Paris", "Rome"):
        return call("get_weather", json.dumps({"city": city}))
    return call("search", json.dumps({"q": f"weather {city}"}))


def labelled_set(store, stub) -> dict[str, int]:
    """Two right answers passed, two wrong ones failed with the calls they should have made;
    all four in the golden set "weather"."""
    _, ids = weather_run(store, stub, right_for_two)
    for city in ("Paris", "Rome"):
        labels.label(store, ids[city], "ana", labels.Label("pass"))
    for city in ("Lyon", "Oslo"):
        labels.label(store, ids[city], "ana", labels.Label("fail", correction_calls=[
            {"name": "get_weather", "arguments": json.dumps({"city": city})}]))
    golden.create_set(store, "weather")
    golden.add_responses(store, "weather", [ids[c] for c in CITIES], who="ana")
    return ids


# --- the correction itself ---------------------------------------------------------------------

def test_a_label_stores_expected_calls_parsed_and_checked_against_the_runs_tools(store, stub):
    _, ids = weather_run(store, stub, right_for_two)
    labels.label(store, ids["Lyon"], "ana", labels.Label("fail", correction="It should look the weather up.",
                                                  correction_calls=[{"name": "get_weather",
                                                                     "arguments": '{ "unit": "c", "city": "Lyon" }'}]))
    (stored,) = labels.labels_for(store, [ids["Lyon"]])
    assert stored["correction_calls"] == [{"name": "get_weather", "arguments": {"city": "Lyon", "unit": "c"}}]
    assert stored["correction"] == "It should look the weather up."
    assert labels.history(store, ids["Lyon"])[-1]["correction_calls"] == stored["correction_calls"]
    assert labels.tools_for(store, ids["Lyon"]) == WEATHER

    bad = {
        "the expected calls: call 1 names 'get_wether', not one of the run's tools (get_weather, search)":
            [{"name": "get_wether", "arguments": '{"city": "Oslo"}'}],
        "the expected calls: call 1 (get_weather): the arguments are not JSON":
            [{"name": "get_weather", "arguments": "{city: Oslo}"}],
        "the expected calls: call 1 (get_weather): arguments: 'city' is a required property":
            [{"name": "get_weather", "arguments": '{"unit": "c"}'}],
        "the expected calls: call 2 (get_weather): arguments.unit: 'kelvin' is not one of ['c', 'f']":
            [{"name": "search", "arguments": {"q": "x"}}, {"name": "get_weather",
                                                         "arguments": {"city": "Oslo", "unit": "kelvin"}}],
        "the expected calls: call 1 (search): the arguments are a JSON object":
            [{"name": "search", "arguments": "[1, 2]"}],
    }
    for message, calls in bad.items():
        with pytest.raises(SpreadError) as refused:
            labels.label(store, ids["Oslo"], "ana", labels.Label("fail", correction_calls=calls))
        assert str(refused.value).startswith(message) and "\n" not in str(refused.value)
    assert labels.labels_for(store, [ids["Oslo"]]) == []  # nothing written


def test_expected_calls_need_a_run_with_tools(store, stub):
    stub.respond = lambda body: "Sunny."
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("Weather in Paris?")], n=1))
    asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        (row,) = responses.of_run(db, run_id)
    with pytest.raises(SpreadError, match="declares no tools"):
        labels.label(store, row["id"], "ana", labels.Label("fail", correction_calls=[RIGHT["Paris"]]))
    assert labels.labels_for(store, [row["id"]]) == []


def test_cli_label_takes_expected_calls_and_refuses_a_bad_one_in_one_line(store, stub):
    _, ids = weather_run(store, stub, right_for_two)
    result = cli("label", str(ids["Oslo"]), "--verdict", "fail", "--reviewer", "ana",
                 "--expected-call", "get_weather", '{"city": "Oslo"}', "--expected-call", "search", '{"q": "Oslo"}',
                 "--json")
    assert last_json(result)["correction_calls"] == [RIGHT["Oslo"], {"name": "search", "arguments": {"q": "Oslo"}}]
    refused = cli("label", str(ids["Lyon"]), "--verdict", "fail", "--reviewer", "ana",
                  "--expected-call", "get_weather", '{"city": 3}', check=False)
    assert refused.returncode != 0
    assert "call 1 (get_weather): arguments.city: 3 is not of type 'string'" in refused.stderr
    assert refused.stderr.strip().count("\n") == 0
    assert labels.labels_for(store, [ids["Lyon"]]) == []


# --- downstream: golden sets, the gate, exports, inputs ----------------------------------------

def test_corrected_calls_become_the_golden_items_expected_calls_and_pass_the_gate(store, stub):
    labelled_set(store, stub)
    items = {i["vars"]["city"]: i for i in golden.items(store, "weather")}
    assert {city: item["tool_calls"] for city, item in items.items()} == {c: [RIGHT[c]] for c in CITIES}
    assert items["Lyon"]["reference"] == 'get_weather({"city": "Lyon"})'
    assert items["Lyon"]["rejected"] == ['search({"q": "weather Lyon"})']

    # A candidate making exactly the corrected calls passes every item, corrected ones included.
    stub.respond = lambda body: call("get_weather", json.dumps({"city": city_of(body)}))
    args = ["regress", "weather", "--model", "openai/stub-a", "--api-base", stub.base_url, "--n", "3", "--json"]
    result = last_json(cli(*args, "--min-pass-rate", "0.9"))
    assert result["gate"] == "pass" and result["pass_rate"] == 1.0
    assert {i["label"].split("=")[-1]: (i["passes"], i["samples"]) for i in result["items"]} == {
        c: (3, 3) for c in CITIES}
    assert result["unchecked"] == 0 and result["unchecked_why"] == [] and result["notes"] == []
    # The wrong tool for the corrected items fails them.
    stub.respond = lambda body: call("get_weather", json.dumps({"city": city_of(body)})) \
        if city_of(body) in ("Paris", "Rome") else call("search", json.dumps({"q": city_of(body)}))
    worse = last_json(cli(*args))
    assert {i["label"].split("=")[-1]: i["passes"] for i in worse["items"]} == {
        "Paris": 3, "Rome": 3, "Lyon": 0, "Oslo": 0}


def test_golden_add_takes_expected_calls_for_a_failed_answer(store, stub):
    _, ids = weather_run(store, stub, right_for_two)
    labels.label(store, ids["Lyon"], "ana", labels.Label("fail"))
    cli("golden", "create", "weather")
    refused = cli("golden", "add", "weather", "--response", str(ids["Lyon"]), check=False)
    assert refused.returncode != 0 and "the calls it should make" in refused.stderr
    bad = cli("golden", "add", "weather", "--response", str(ids["Lyon"]), "--expected-call", "get_weather", "{}",
              check=False)
    assert bad.returncode != 0 and "'city' is a required property" in bad.stderr
    assert golden.items(store, "weather") == []
    cli("golden", "add", "weather", "--response", str(ids["Lyon"]), "--expected-call", "get_weather",
        '{"city": "Lyon"}')
    (item,) = golden.items(store, "weather")
    assert item["tool_calls"] == [RIGHT["Lyon"]] and item["reference"] == 'get_weather({"city": "Lyon"})'


def test_exports_carry_the_expected_calls(store, stub):
    labelled_set(store, stub)
    lines = [json.loads(x) for x in export.export(store, "weather", "openai").decode().splitlines()]
    assert len(lines) == 4
    for line in lines:
        city = next(c for c in CITIES if c in line["messages"][0]["content"])
        last = line["messages"][-1]
        assert last["content"] is None and [c["function"] for c in last["tool_calls"]] == [
            {"name": "get_weather", "arguments": json.dumps({"city": city})}]
        assert line["tools"] == WEATHER
    records = [json.loads(x) for x in export.export(store, "weather", "jsonl").decode().splitlines()]
    assert sorted(r["tool_calls"][0]["arguments"]["city"] for r in records) == sorted(CITIES)
    tests = yaml.safe_load(export.export(store, "weather", "promptfoo").decode())
    for test in tests:
        assert {"type": "tool-call-f1", "value": ["get_weather"], "threshold": 1} in test["assert"]
        assert not any(a["type"] in ("similar", "not-similar") for a in test["assert"])
        assert test["metadata"]["expected_tool_calls"][0]["name"] == "get_weather"


def test_golden_inputs_keep_the_expected_calls_and_no_answer_leaves_the_pass_rate_unsaid(store, stub, tmp_path):
    labelled_set(store, stub)
    rows = golden.as_inputs(store, "weather")
    assert sorted(json.loads(r["expected_tool_calls"])[0]["arguments"]["city"] for r in rows) == sorted(CITIES)
    (tmp_path / "tools.json").write_text(json.dumps(WEATHER))
    # A candidate that answers Oslo in words: `similar` to calls cannot compare it; tool-call-f1 fails it.
    stub.respond = lambda body: "It is sunny in Oslo." if city_of(body) == "Oslo" else \
        call("get_weather", json.dumps({"city": city_of(body)}))
    run = last_json(cli("run", "--prompt", "{{prompt}}", "--tools-file", str(tmp_path / "tools.json"),
                        "--inputs-from-golden", "weather", "--model", "openai/stub-a", "--temperature", "1",
                        "--n", "1", "--api-base", stub.base_url, "--json"))
    similar = last_json(cli("checks", str(run["run_id"]), "--check", "similar", "--json"))
    assert similar["per_check"] == [{"check": "similar", "type": "similar", "scored": 3, "passed": 3, "unknown": 1}]
    assert similar["by_model"][0]["answers"] == 3 and similar["by_model"][0]["pass_rate"] == 1.0
    assert similar["unchecked"] == 1 and similar["unchecked_why"] == [
        {"reason": "similar: the reference is tool calls and the answer calls none (tool-call-f1 fails it)",
         "answers": 1}]
    said = cli("checks", str(run["run_id"])).stdout
    assert "1 of 4 answers could not be checked, so no pass rate counts them: similar: the reference is tool " \
           "calls and the answer calls none (tool-call-f1 fails it) (1)" in said
    both = last_json(cli("checks", str(run["run_id"]), "--check", "tool-call-f1", "--json"))
    assert both["by_model"][0]["answers"] == 4 and both["by_model"][0]["passes"] == 3 and both["unchecked"] == 0


# --- the Review page's editor ---------------------------------------------------------------------

def shown(markdown: str) -> str:
    """A message as the page drew it (display.inert's escapes and word joiners), as plain text."""
    return markdown.replace("\\", "").replace("\u2060", "")


def test_review_page_corrects_a_tool_call_answer_with_the_expected_call(store, stub):
    from test_pages import app

    stub.respond = lambda body: call("search", '{"q": "weather Paris"}')
    chat = [{"role": "user", "content": "Weather in Paris?"}]
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("", messages=chat, tools=WEATHER)], n=1))
    asyncio.run(runner.execute(store, run_id))
    at = app().run()
    at.sidebar.text_input(key="reviewer").input("ana").run()
    at.switch_page("pages/review.py").run()
    assert not at.exception
    rid = at.session_state["review_item"]
    assert at.selectbox(key=f"call_tool_{rid}").options == ["get_weather", "search"]
    # A call whose arguments break the tool's schema is refused next to the editor, and not kept.
    at.selectbox(key=f"call_tool_{rid}").set_value("get_weather")
    at.text_area(key=f"call_args_{rid}").input('{"unit": "c"}')
    at.button(key=f"call_add_{rid}").click().run()
    assert any("call 1 (get_weather): arguments: 'city' is a required property" in shown(e.value) for e in at.error)
    assert f"calls_{rid}" not in at.session_state
    at.text_area(key=f"call_args_{rid}").input('{"city": "Paris", "unit": "c"}')
    at.button(key=f"call_add_{rid}").click().run()
    assert not at.exception and not at.error
    assert any(c.value == 'get_weather({"city": "Paris", "unit": "c"})' for c in at.code)
    assert at.text_area(key=f"call_args_{rid}").value == ""
    # A call typed but not added is not dropped in silence.
    at.text_area(key=f"call_args_{rid}").input('{"city": "Lyon"}')
    at.button(key="fail").click().run()
    assert any("not added yet" in shown(e.value) for e in at.error)
    assert labels.labels_for(store, [rid]) == []
    at.text_area(key=f"call_args_{rid}").input("")
    at.button(key="fail").click().run()
    assert not at.exception
    (given,) = labels.labels_for(store, [rid])
    assert (given["verdict"], given["correction_calls"]) == (
        "fail", [{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}])


def test_review_page_offers_no_call_editor_for_a_text_run(store, stub):
    from test_pages import app

    stub.respond = lambda body: "Paris."
    plan.create(store, run_spec(stub, variants=[plan.Variant("Capital of France?")], n=1))
    asyncio.run(runner.execute(store, 1))
    at = app().run()
    at.sidebar.text_input(key="reviewer").input("ana").run()
    at.switch_page("pages/review.py").run()
    assert not at.exception
    assert not [w for w in at.selectbox if str(w.key).startswith("call_tool_")]


# --- the gate says what it could not check ---------------------------------------------------------

def test_the_gate_counts_and_says_the_answers_it_could_not_check(store, stub, tmp_path):
    from test_pages import app

    golden.create_set(store, "weather")
    golden.add_items(store, "weather", [golden.Item(
        prompt=f"Weather in {city}?", vars={"city": city}, messages=[{"role": "user", "content": f"Weather in {city}?"}],
        shape={"tools": WEATHER}, tool_calls=[RIGHT[city]], reference=f'get_weather({{"city": "{city}"}})',
        assertions=[{"type": "similar"}]) for city in ("Paris", "Oslo")])
    # Oslo is answered in words: `similar` to calls cannot compare it, so no verdict.
    stub.respond = lambda body: "Sunny in Oslo." if city_of(body) == "Oslo" else \
        call("get_weather", json.dumps({"city": city_of(body)}))
    result = cli("regress", "weather", "--model", "openai/stub-a", "--api-base", stub.base_url, "--n", "3",
                 "--min-pass-rate", "0.5", "--junit", str(tmp_path / "junit.xml"), "--json")
    report = last_json(result)
    assert (report["unchecked"], report["samples"], report["pass_rate"]) == (3, 3, 1.0)
    assert report["unchecked_why"] == [{"reason": "similar: the reference is tool calls and the answer calls none "
                                                  "(tool-call-f1 fails it)", "answers": 3}]
    said = ("3 of 6 answers could not be checked, so no pass rate counts them: similar: the reference is tool calls "
            "and the answer calls none (tool-call-f1 fails it) (3)")
    assert report["notes"] == [said]
    assert {i["label"].split("=")[-1]: (i["samples"], i["unchecked"]) for i in report["items"]} == {
        "Paris": (3, 0), "Oslo": (0, 3)}
    assert '<property name="unchecked" value="3"' in (tmp_path / "junit.xml").read_text()
    printed = cli("regress", "weather", "--model", "openai/stub-a", "--api-base", stub.base_url, "--n", "1").stdout
    said_once = said.replace("3 of 6", "1 of 2").replace("(3)", "(1)")
    assert f"  note: {said_once}" in printed
    at = app().run()
    at.switch_page("pages/regress.py").run()  # the latest regress run of the set
    assert not at.exception
    assert any(said_once in shown(w.value) for w in at.warning)
    table = at.dataframe[0].value
    assert dict(zip(table["item"], table["could not check"])) == {"#1 city=Paris": 0, "#2 city=Oslo": 1}
    assert any(shown(e.label).endswith("0/0 pass · 1 could not be checked") for e in at.expander)


def test_a_failed_answer_whose_label_gives_the_calls_needs_no_typed_reference(store, stub):
    """Review's golden popover enables Add for a failed answer when its label already carries
    the correction (here the expected calls), as the core then uses them."""
    _, ids = weather_run(store, stub, right_for_two)
    labels.label(store, ids["Lyon"], "ana", labels.Label("fail"))
    assert not golden.labelled_correction(store, ids["Lyon"])
    labels.label(store, ids["Lyon"], "ana", labels.Label("fail", correction_calls=[
        {"name": "get_weather", "arguments": json.dumps({"city": "Lyon"})}]))
    assert golden.labelled_correction(store, ids["Lyon"])
    assert not golden.labelled_correction(store, ids["Paris"])
