"""Conversations, tool calls and structured output, end to end against the loopback stub."""

import asyncio
import json

import pytest

from core.store import Store, responses, runs
from core.analyse import meaning, spread
from core.config import SpreadError
from core.evaluate import checks, scoring, tool_checks
from core.models import llm
from core.prompts import conversation, inputs, shapes
from core.review import golden
from core.run import plan, runner
from test_cli import last_json, spread as cli

WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]},
        "where": {"type": "object", "properties": {"country": {"type": "string"}}}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "search", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]

FEW_SHOT = [
    {"role": "system", "content": "You answer with a capital city."},
    {"role": "user", "content": "Capital of Italy?"},
    {"role": "assistant", "content": "Rome."},
    {"role": "history", "from": "messages"},
    {"role": "user", "content": "And of {{country}}?"},
]


def call(name, arguments):
    return {"content": None, "tool_calls": [{"name": name, "arguments": arguments}]}


def run_spec(stub, **fields) -> plan.RunSpec:
    base = dict(models=["openai/stub-a"], temperatures=[1.0], n=2, api_base=stub.base_url, seed=1)
    return plan.RunSpec(**(base | fields))


# --- conversations --------------------------------------------------------------------------

def test_a_conversation_variant_sends_its_turns_and_the_inputs_history_and_keeps_them_as_sent(store, stub):
    stub.echo_roles = True
    history = [{"role": "user", "content": "Hello {{country}}"}, {"role": "assistant", "content": "Hi."}]
    spec = run_spec(stub, variants=[plan.Variant("", name="chat", messages=FEW_SHOT),
                                    plan.Variant("Capital of {{country}}?")],
                    inputs=[{"country": "Peru", "messages": json.dumps(history)}])
    run_id = plan.create(store, spec)
    assert asyncio.run(runner.execute(store, run_id))["errors"] == 0
    chat = [r["body"]["messages"] for r in stub.requests if r["body"]["messages"][0]["role"] == "system"]
    assert len(chat) == 2
    assert chat[0] == [
        {"role": "system", "content": "You answer with a capital city."},
        {"role": "user", "content": "Capital of Italy?"}, {"role": "assistant", "content": "Rome."},
        {"role": "user", "content": "Hello {{country}}"},  # the input's history is data: never filled
        {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "And of Peru?"}]
    with store.connection() as db:
        sent = runs.sent_messages(db, run_id)
        texts = {r["variant"]: r["text"] for r in responses.of_run(db, run_id)}
        variants = runs.run_variants(db, run_id)
        assert runs.rendered_prompts(db, run_id)[(0, 0)] == ("You answer with a capital city.", "And of Peru?")
    assert sent[(0, 0)] == chat[0]  # stored exactly as sent
    assert sent[(1, 0)] == [{"role": "user", "content": "Capital of Peru?"}]
    assert texts == {0: "roles: system user assistant user assistant user", 1: "roles: user"}
    assert variants[0]["messages"][3] == {"role": "history", "from": "messages"}
    assert "[assistant] Rome." in variants[0]["prompt"]  # the conversation as text: versioned and diffed
    assert "messages" not in variants[1]  # a text variant reads as before


def test_a_conversation_needs_its_history_column_and_roles_it_knows(store, stub):
    with pytest.raises(SpreadError, match=r"missing variable \{\{messages\}\}"):
        plan.validate(store, run_spec(stub, variants=[plan.Variant("", messages=FEW_SHOT)], inputs=[{"country": "Peru"}]),
                      check_providers=False)
    with pytest.raises(SpreadError, match=r"input 1: the column 'messages' is not a JSON list of messages"):
        plan.validate(store, run_spec(stub, variants=[plan.Variant("", messages=FEW_SHOT)],
                               inputs=[{"country": "Peru", "messages": "hello"}]), check_providers=False)
    with pytest.raises(SpreadError, match=r"message 2: unknown role 'bot'"):
        conversation.checked([{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}], "chat.json")


def test_chat_jsonl_gives_one_input_per_conversation_with_its_final_answer_as_reference(tmp_path):
    lines = [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                           {"role": "assistant", "content": "4"}]},
             {"messages": [{"role": "user", "content": "Hi"}], "topic": "greeting"}]
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    rows = inputs.read_file(path)
    assert rows[0] == {"messages": json.dumps(lines[0]["messages"][:2]), "reference": "4"}
    assert rows[1] == {"topic": "greeting", "messages": json.dumps(lines[1]["messages"])}
    path.write_text(json.dumps(lines[0]) + "\n" + json.dumps({"messages": [{"role": "user"}]}) + "\n")
    with pytest.raises(SpreadError, match=r"chat.jsonl line 2: message 1 \(user\) has no content"):
        inputs.read_file(path)


def test_a_bad_chat_file_starts_nothing(store, tmp_path, stub):
    path = tmp_path / "chat.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "Hi"}]}\n{"messages": "nope"}\n'
                    '{"messages": [{"role": "user", "content": "x"}, {"role": "wizard", "content": "y"}]}\n')
    messages = tmp_path / "chat.yaml"
    messages.write_text("- role: history\n  from: messages\n")
    result = cli("run", "--messages-file", str(messages), "--vars-file", str(path), "--model", "openai/stub-a",
                 "--temperature", "1", "--n", "1", "--api-base", stub.base_url, check=False)
    assert result.returncode != 0 and "chat.jsonl line 3: message 2: unknown role 'wizard'" in result.stderr
    assert stub.count() == 0
    with store.connection() as db:
        assert db["runs"].count == 0


# --- tool calls and JSON ----------------------------------------------------------------------

@pytest.mark.parametrize("stream", [True, False])
def test_tool_calls_are_stored_parsed_in_order_streamed_or_not(store, stub, stream):
    both = {"content": "Let me look.", "tool_calls": [
        {"name": "get_weather", "arguments": '{"city": "Paris", "where": {"country": "FR"}}'},
        {"name": "search", "arguments": '{"q": "Paris weather"}'}]}
    stub.respond = lambda body: both
    spec = run_spec(stub, variants=[plan.Variant("Weather in Paris?", tools=WEATHER, tool_choice="auto")],
                    stream=stream)
    run_id = plan.create(store, spec)
    assert asyncio.run(runner.execute(store, run_id))["errors"] == 0
    body = stub.requests[0]["body"]
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather", "search"]
    assert body["tool_choice"] == "auto"
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
    for row in rows:
        assert row["text"] == "Let me look." and row["finish_reason"] == "tool_calls"
        assert json.loads(row["tool_calls"]) == [
            {"name": "get_weather", "arguments": {"city": "Paris", "where": {"country": "FR"}}},
            {"name": "search", "arguments": {"q": "Paris weather"}}]


def test_malformed_streamed_arguments_are_kept_raw_with_the_reason(store, stub):
    stub.respond = lambda body: call("get_weather", '{"city": "Par')
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("Weather?", tools=WEATHER)], n=1))
    asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        (row,) = responses.of_run(db, run_id)
    (stored,) = json.loads(row["tool_calls"])
    assert stored["arguments"] == '{"city": "Par' and stored["error"].startswith("arguments are not JSON")


def test_a_json_schema_response_format_is_sent_and_answers_are_kept_parsed(store, stub, tmp_path):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    answers = {1: '{"city": "Paris"}', 2: '{ "city" :"Paris" }', 3: "Paris"}  # by seed: sample 0, 1, 2
    stub.respond = lambda body: answers[body["seed"]]
    response_format = shapes.checked_response_format(schema, "capital")
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("Capital?", response_format=response_format)], n=3,
                                  checks=[{"type": "is-json"}]))
    asyncio.run(runner.execute(store, run_id))
    assert stub.requests[0]["body"]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "capital", "schema": schema}}
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
    assert [r["json_value"] for r in rows] == ['{"city": "Paris"}', '{"city": "Paris"}', None]
    analysis = spread.analyse_run(store, run_id, method="exact", with_map=False)
    assert sorted(c["size"] for c in analysis.cells[0]["clusters"]) == [1, 2]  # spacing never splits a value
    results = scoring.score_run_sync(store, run_id)
    passed = {r["response_id"]: r["passed"] for r in results}
    assert [passed[r["id"]] for r in rows] == [1, 1, 0]  # the run's schema, though the check names none


def test_the_run_says_before_it_starts_when_a_model_cannot_take_tools(store, stub):
    spec = run_spec(stub, variants=[plan.Variant("Weather?", tools=WEATHER)], models=["local/gemma-3-270m"])
    with pytest.raises(SpreadError, match=r"local/gemma-3-270m: the embedded model does not take tools; choose"):
        plan.validate(store, spec)
    assert llm.unsupported_shapes("openai/stub-a", tools=True, schema=True, json_mode=True) is None  # unknown: allowed
    with pytest.raises(SpreadError, match="tool choice 'lookup' is not a declared tool"):
        shapes.checked_tool_choice("lookup", WEATHER)
    assert shapes.checked_tool_choice("search", WEATHER) == {"type": "function", "function": {"name": "search"}}


# --- meaning of calls -------------------------------------------------------------------------

def rows_of(answers):
    rows = []
    for k, answer in enumerate(answers):
        text, calls = (answer, None) if isinstance(answer, str) else ("", answer)
        rows.append({"id": k + 1, "run_id": 1, "variant": 0, "input": 0, "model": "m", "temperature": 1.0,
                     "sample_idx": k, "text": text, "tool_calls": json.dumps(calls) if calls else None})
    return rows


def test_calls_cluster_by_name_and_parsed_arguments():
    paris = {"city": "Paris", "where": {"country": "FR"}}
    answers = [
        [shapes.call_record("get_weather", '{"city": "Paris", "where": {"country": "FR"}}')],
        [shapes.call_record("get_weather", '{ "where":{"country":"FR"},\n "city":"Paris" }')],  # order, spacing
        [{"name": "get_weather", "arguments": paris}],
        [shapes.call_record("get_weather", '{"city": "Paris", "where": {"country": "US"}}')],  # nested value
        [shapes.call_record("get_weather", '{"city": "Lyon", "where": {"country": "FR"}}')],  # changed value
        [shapes.call_record("search", '{"city": "Paris", "where": {"country": "FR"}}')],  # another function
        'get_weather({"city": "Paris", "where": {"country": "FR"}})',  # text that looks like the call
    ]
    analysis = spread.analyse(rows_of(answers), method="tfidf", with_map=False)
    labels = list(analysis.answers.sort_values("id")["cluster"])
    assert labels[0] == labels[1] == labels[2]
    assert len(set(labels)) == 5
    (cell,) = analysis.cells
    assert cell["clusters"][0]["size"] == 3
    assert cell["clusters"][0]["tool_calls"] == [{"name": "get_weather", "arguments": paris}]
    assert cell["clusters"][0]["representative"] == 'get_weather({"city": "Paris", "where": {"country": "FR"}})'
    assert {t["tool"]: t["count"] for t in cell["tools"]} == {"get_weather": 5, "search": 1, "no tool": 1}
    city = next(a for a in cell["arguments"] if a["tool"] == "get_weather" and a["argument"] == "city")
    assert city["values"] == [{"value": "Paris", "count": 4, "share": 0.8}, {"value": "Lyon", "count": 1, "share": 0.2}]


def test_canonical_forms_of_answers_that_are_data():
    assert meaning.canonical([{"name": "f", "arguments": {"a": 1, "b": [1, 2]}}], None) == \
        meaning.canonical([{"name": "f", "arguments": {"b": [1, 2], "a": 1}}], None)
    assert meaning.canonical([{"name": "f", "arguments": {"a": 1}}], None) != \
        meaning.canonical([{"name": "f", "arguments": {"a": 2}}], None)
    assert meaning.canonical(None, '{"a": 1, "b": 2}') == meaning.canonical(None, '{"b":2,"a":1}')
    assert meaning.canonical(None, None) is None


# --- checks ---------------------------------------------------------------------------------

def outcome(check, calls=None, text="", values=None, variant=None, json_value=None):
    answer = {"text": text, "tool_calls": json.dumps(calls) if calls else None, "json_value": json_value}
    return scoring.outcome_of(checks.validate([checks.from_dict(check)])[0], answer, values or {},
                              variant if variant is not None else {"tools": WEATHER},
                              similar=lambda text, ref: checks.Outcome(text.lower() == ref.lower()))


def test_is_valid_openai_tools_call_on_exact_examples():
    check = {"type": "is-valid-openai-tools-call"}
    good = [shapes.call_record("get_weather", '{"city": "Paris", "unit": "c"}')]
    assert outcome(check, good).passed is True
    result = outcome(check, [shapes.call_record("get_weather", '{"city": "Paris",')])
    assert result.passed is False and result.reason.startswith("call 1 (get_weather): arguments are not JSON")
    result = outcome(check, [shapes.call_record("delete_all", "{}")])
    assert result.passed is False and "names 'delete_all', not a declared tool (get_weather, search)" in result.reason
    result = outcome(check, [shapes.call_record("get_weather", '{"unit": "kelvin"}')])
    assert result.passed is False and "'city' is a required property" in result.reason
    assert outcome(check, good + [shapes.call_record("get_weather", '{"city": "Paris", "unit": "k"}')]).passed is False
    assert outcome(check, None, text="Sunny.").reason == "no tool call"


def test_tool_call_f1_on_exact_examples():
    calls = [shapes.call_record("get_weather", '{"city": "Paris"}'), shapes.call_record("search", '{"q": "x"}')]
    assert outcome({"type": "tool-call-f1", "value": ["get_weather", "search"]}, calls).score == 1.0
    half = outcome({"type": "tool-call-f1", "value": "get_weather"}, calls)  # P 1/2, R 1: F1 2/3
    assert half.passed is False and half.score == pytest.approx(0.6667, abs=1e-4)
    assert outcome({"type": "tool-call-f1", "value": "get_weather", "threshold": 0.6}, calls).passed is True
    with_arguments = {"type": "tool-call-f1", "value": [{"name": "get_weather", "arguments": {"city": "Lyon"}}]}
    assert outcome(with_arguments, calls).score == 0.0
    assert outcome({"type": "tool-call-f1"}, calls,
                   values={"expected_tool_calls": '[{"name": "search", "arguments": "{\\"q\\": \\"x\\"}"}]'}
                   ).score == pytest.approx(0.6667, abs=1e-4)
    assert outcome({"type": "tool-call-f1"}, calls).passed is None  # nothing expected: not made


def test_json_field_and_is_json_against_the_run_schema():
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "n": {"type": "integer"}},
              "required": ["city"]}
    variant = {"response_format": shapes.checked_response_format(schema)}
    assert scoring.without_a_model(checks.from_dict({"type": "is-json"}), variant)
    assert outcome({"type": "is-json"}, text='{"city": "Paris"}', variant=variant).passed is True
    failed = outcome({"type": "is-json"}, text='{"n": 2}', variant=variant)
    assert failed.passed is False and "'city' is a required property" in failed.reason
    answer = '{"address": {"city": "Paris", "lines": ["1 rue", "2e"]}, "n": 2}'
    assert outcome({"type": "json-field", "value": "$.address.city=Paris"}, text=answer).passed is True
    assert outcome({"type": "json-field", "value": "address.lines.1=2e"}, text=answer).passed is True
    assert outcome({"type": "json-field", "value": "$.address.lines[1]=2e"}, text=answer).passed is True
    assert outcome({"type": "json-field", "value": "$.n=2.0"}, text=answer).passed is True
    assert outcome({"type": "json-field", "value": {"path": "$.n", "equals": 3}}, text=answer).reason == \
        "$.n is 2, not 3"
    assert outcome({"type": "json-field", "value": "$.address.city~=PARIS"}, text=answer).passed is True
    assert outcome({"type": "json-field", "value": "$.zip=1"}, text=answer).reason == "no $.zip in the answer"
    calls = [shapes.call_record("get_weather", '{"city": "Paris"}')]
    assert outcome({"type": "json-field", "value": "$.tool_calls[0].arguments.city=Paris"}, calls).passed is True
    with pytest.raises(SpreadError, match="json-field:PATH=VALUE"):
        checks.validate([checks.parse("json-field:nothing")])


# --- the command line ---------------------------------------------------------------------------

def test_cli_messages_tools_and_show_json_contracts(stub, tmp_path):
    db = tmp_path / "cli.db"
    (tmp_path / "chat.yaml").write_text(
        "- role: system\n  content: You call tools.\n- role: user\n  content: Weather in {{city}}?\n")
    (tmp_path / "tools.json").write_text(json.dumps(WEATHER))
    (tmp_path / "checks.yaml").write_text("- type: is-valid-openai-tools-call\n")
    replies = {0: call("get_weather", '{"city": "Paris"}'), 1: call("get_weather", '{ "city":"Paris" }'),
               2: call("get_weather", '{"city": "Lyon"}'), 3: "It is sunny."}
    stub.respond = lambda body: replies[body["seed"] % 4]
    result = cli("--db", str(db), "run", "--messages-file", str(tmp_path / "chat.yaml"), "--prompt", "Weather?",
                 "--tools-file", str(tmp_path / "tools.json"), "--tool-choice", "get_weather",
                 "--var", "city=Paris", "--model", "openai/stub-a", "--temperature", "1", "--n", "4", "--seed", "0",
                 "--api-base", stub.base_url, "--checks-file", str(tmp_path / "checks.yaml"), "--json")
    assert last_json(result)["pass_rate"] == 0.75
    bodies = [r["body"] for r in stub.requests]
    assert {b["tool_choice"]["function"]["name"] for b in bodies} == {"get_weather"}
    assert {tuple(m["role"] for m in b["messages"]) for b in bodies} == {("system", "user"), ("user",)}
    shown = last_json(cli("--db", str(db), "show", "1", "--json"))
    cell = shown["cells"][0]
    paris, lyon = ([{"name": "get_weather", "arguments": {"city": city}}] for city in ("Paris", "Lyon"))
    assert [a.get("tool_calls") for a in cell["answers"]] == [paris, paris, lyon, None]
    assert [c["size"] for c in cell["clusters"]] == [2, 1, 1] and cell["pass_rate"] == 0.75
    assert shown["variants"][0]["tools"] == WEATHER


def test_cli_response_format_json_and_refusal_on_the_embedded_model(stub, tmp_path):
    stub.respond = lambda body: '{"a": 1}'
    result = cli("run", "--prompt", "JSON please", "--response-format", "json", "--model", "openai/stub-a",
                 "--temperature", "1", "--n", "1", "--api-base", stub.base_url, "--json")
    assert last_json(result)["errors"] == 0
    assert stub.requests[0]["body"]["response_format"] == {"type": "json_object"}
    assert last_json(cli("show", "1", "--json"))["cells"][0]["answers"][0]["json"] == {"a": 1}
    refused = cli("run", "--prompt", "JSON please", "--response-format", "json", "--model", "local/gemma-3-270m",
                  "--temperature", "1", "--n", "1", check=False)
    assert refused.returncode != 0
    assert "local/gemma-3-270m: the embedded model does not take a response format" in refused.stderr


# --- golden sets and the gate ---------------------------------------------------------------------

def test_a_golden_item_keeps_its_conversation_tools_and_expected_calls_and_gates_a_candidate(store, stub, tmp_path):
    from core.review import golden, labels

    chat = [{"role": "system", "content": "Call tools."}, {"role": "user", "content": "Weather in {{city}}?"}]
    stub.respond = lambda body: call("get_weather", '{"city": "Paris"}')
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("", messages=chat, tools=WEATHER)], n=1,
                                  inputs=[{"city": "Paris"}]))
    asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        (row,) = responses.of_run(db, run_id)
    labels.label(store, row["id"], "ana", labels.Label("pass"))
    golden.create_set(store, "weather")
    golden.add_responses(store, "weather", [row["id"]], who="ana")
    (item,) = golden.items(store, "weather")
    assert item["tool_calls"] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert item["messages"] == [{"role": "system", "content": "Call tools."},
                                {"role": "user", "content": "Weather in Paris?"}]
    assert item["shape"] == {"tools": WEATHER}
    assert item["reference"] == 'get_weather({"city": "Paris"})'
    assert json.loads(golden.as_inputs(store, "weather")[0]["expected_tool_calls"]) == item["tool_calls"]

    stub.requests.clear()
    stub.respond = lambda body: call("get_weather", '{ "city" : "Paris" }')  # same call, other spacing
    args = ["regress", "weather", "--model", "openai/stub-a", "--api-base", stub.base_url, "--n", "3", "--json"]
    same = last_json(cli(*args))
    assert same["gate"] is None and same["pass_rate"] == 1.0  # no gate set
    assert stub.requests[0]["body"]["messages"] == item["messages"]
    assert [t["function"]["name"] for t in stub.requests[0]["body"]["tools"]] == ["get_weather", "search"]
    stub.respond = lambda body: call("get_weather", '{"city": "Lyon"}')
    worse = cli(*args, "--min-pass-rate", "0.9", check=False)
    assert worse.returncode == 1 and last_json(worse)["pass_rate"] == 0.0


# --- the Playground's conversation editor -------------------------------------------------------

def test_playground_edits_a_conversation_variant_turn_by_turn_and_runs_it_with_tools(store, stub):
    from test_pages import app, wait_until_done

    at = app().run()
    at.text_area(key="prompt_0").input("Weather in {{city}}?")
    at.button(key="add_variant").click().run()
    at.text_area(key="prompt_1").input("What is the weather in {{city}}?")
    at.radio(key="kind_1").set_value("conversation").run()
    assert not at.exception
    first = at.session_state["turns_1"][0]["id"]
    assert at.text_area(key=f"content_1_{first}").value == "What is the weather in {{city}}?"  # the text moved in
    at.button(key="add_turn_1").click().run()
    at.button(key="add_turn_1").click().run()
    ids = [turn["id"] for turn in at.session_state["turns_1"]]
    assert [at.selectbox(key=f"role_1_{i}").value for i in ids] == ["user", "assistant", "user"]
    at.text_area(key=f"content_1_{ids[1]}").input("Sunny in Rome.")
    at.text_area(key=f"content_1_{ids[2]}").input("And in {{city}}?")
    at.selectbox(key=f"role_1_{ids[0]}").set_value("user")
    at.text_area(key=f"content_1_{ids[0]}").input("Weather in Rome?").run()
    # Reorder and remove: a system turn added last, moved to the top; one turn added then removed.
    at.button(key="add_turn_1").click().run()
    extra = at.session_state["turns_1"][-1]["id"]
    at.selectbox(key=f"role_1_{extra}").set_value("system")
    at.text_area(key=f"content_1_{extra}").input("Call a tool.").run()
    for _ in range(3):
        at.button(key=f"turn_up_1_{extra}").click().run()
    at.button(key="add_turn_1").click().run()
    at.button(key=f"turn_remove_1_{at.session_state['turns_1'][-1]['id']}").click().run()
    assert [t["role"] for t in at.session_state["turns_1"]] == ["system", "user", "assistant", "user"]
    # The word diff compares the conversation as text.
    diff = next(c.value for c in at.code if "+ " in c.value or "- " in c.value)
    assert "[system] Call a tool." in diff and "[assistant] Sunny in Rome." in diff
    for key in (0, 1):
        at.text_area(key=f"tools_{key}").input(json.dumps(WEATHER))
        at.text_input(key=f"tool_choice_{key}").input("auto")
    at.radio(key="inputs_source").set_value("pasted text").run()
    at.text_area(key="inputs_pasted").input("city\nParis").run()
    at.multiselect(key="models").set_value(["openai/stub-a"])
    at.text_input(key="api_base").input(stub.base_url)
    at.text_input(key="temperatures").input("1")
    at.number_input(key="n").set_value(2).run()
    assert not at.exception and not at.error
    stub.respond = lambda body: call("get_weather", '{"city": "Paris"}')
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    run_id = at.session_state["active_run"]
    wait_until_done(store, run_id)
    with store.connection() as db:
        variants = runs.run_variants(db, run_id)
        sent = runs.sent_messages(db, run_id)
        rows = responses.of_run(db, run_id)
    assert "messages" not in variants[0] and variants[0]["tools"] == WEATHER
    assert [(m["role"], m["content"]) for m in sent[(1, 0)]] == [
        ("system", "Call a tool."), ("user", "Weather in Rome?"), ("assistant", "Sunny in Rome."),
        ("user", "And in Paris?")]
    assert all(json.loads(r["tool_calls"])[0]["name"] == "get_weather" for r in rows) and len(rows) == 4


def test_playground_refuses_tools_that_are_not_a_tools_list(store):
    from test_pages import app

    at = app().run()
    at.text_area(key="prompt_0").input("Hi")
    at.text_area(key="tools_0").input('[{"name": "bad name!"}]').run()
    at.button(key="run").click().run()
    assert not at.exception
    assert any("tool 1: a function name is 1-64 letters" in e.value.replace("\\", "") for e in at.error)
    with store.connection() as db:
        assert db["runs"].count == 0


def test_a_golden_set_of_tool_calls_survives_export_and_import_and_exports_as_openai_chat(store, tmp_path):
    from core.formats import golden_files
    from core.review import golden

    golden.create_set(store, "calls")
    golden.add_items(store, "calls", [golden.Item(
        prompt="Weather in Paris?", messages=[{"role": "user", "content": "Weather in Paris?"}],
        shape={"tools": WEATHER, "tool_choice": "auto"},
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Paris"}}], reference='get_weather({"city": "Paris"})')])
    data = golden_files.export(store, "calls", "jsonl")
    golden.create_set(store, "again")
    golden_files.import_bytes(store, "again", data, "jsonl")
    (item,) = golden.items(store, "again")
    assert (item["messages"], item["shape"], item["tool_calls"]) == (
        [{"role": "user", "content": "Weather in Paris?"}], {"tools": WEATHER, "tool_choice": "auto"},
        [{"name": "get_weather", "arguments": {"city": "Paris"}}])
    (line,) = [json.loads(x) for x in golden_files.export(store, "calls", "openai").decode().splitlines()]
    assert line["tools"] == WEATHER
    assert line["messages"][-1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    # Read back as chat JSONL inputs: the final assistant turn calls a tool, so it is no text reference.
    (tmp_path / "chat.jsonl").write_bytes(golden_files.export(store, "calls", "openai"))
    (row,) = inputs.read_file(tmp_path / "chat.jsonl")
    assert json.loads(row["messages"])[-1]["tool_calls"] and "reference" not in row


def test_a_conversation_run_loads_back_into_the_playground_plan_and_review_shows_calls(store, stub):
    from core.review import labels
    from core.run import drafts

    stub.respond = lambda body: call("get_weather", '{"city": "Paris"}')
    schema = shapes.checked_response_format({"type": "object"})
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("", messages=FEW_SHOT, tools=WEATHER,
                                                               tool_choice="search", response_format=schema)],
                                  inputs=[{"country": "Peru", "messages": "[]"}], n=1, checks=[]))
    loaded = drafts.from_run(store, run_id)
    assert loaded["kind_0"] == "conversation"
    assert [(t["role"], t["content"]) for t in loaded["turns_0"]][2:4] == [("assistant", "Rome."), ("history", "messages")]
    assert json.loads(loaded["tools_0"]) == WEATHER and loaded["tool_choice_0"] == "search"
    assert json.loads(loaded["response_format_0"]) == {"type": "object"}
    asyncio.run(runner.execute(store, run_id))
    (item,) = labels.queue(store, [run_id], "ana", method="exact")["items"]
    assert item["representative"] == 'get_weather({"city": "Paris"})'
    assert labels.members(store, item["member_ids"], "ana")[0]["text"] == 'get_weather({"city": "Paris"})'


def test_streamed_call_pieces_join_as_litellm_objects_or_as_json():
    from types import SimpleNamespace as O

    from core.models.reply import ToolCallDeltas

    for delta in (lambda i, name, args: O(index=i, function=O(name=name, arguments=args)),
                  lambda i, name, args: {"index": i, "function": {"name": name, "arguments": args}}):
        calls = ToolCallDeltas()
        calls.add([delta(0, "get_weather", ""), delta(1, "search", '{"q"')])
        calls.add([delta(0, None, '{"ci'), delta(1, None, ': "x"}')])
        calls.add([delta(0, None, 'ty": "Paris"}')])
        assert calls.calls() == [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                 {"name": "search", "arguments": {"q": "x"}}]
