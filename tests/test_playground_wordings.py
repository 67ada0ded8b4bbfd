"""The Playground's wordings: duplicated whole, a tool turn's call id, and problems shown by the Run button."""

import json

from core.store import Store, runs
from core.run import drafts
from test_pages import app, wait_until_done
from test_prompt_shapes import WEATHER

SCHEMA = {"type": "json_schema", "json_schema": {"name": "weather", "strict": True, "schema": {
    "type": "object", "properties": {"sky": {"type": "string"}}, "required": ["sky"], "additionalProperties": False}}}


def conversation_wording(at):
    """Wording 0 as a conversation: system, user, a tool result with its call id, user."""
    at.text_area(key="prompt_0").input("Weather in {{city}}?")
    at.radio(key="kind_0").set_value("conversation").run()
    for _ in range(3):
        at.button(key="add_turn_0").click().run()
    ids = [turn["id"] for turn in at.session_state["turns_0"]]
    for tid, (role, content) in zip(ids, [("system", "Use the tools."), ("user", "Weather in {{city}}?"),
                                          ("tool", '{"sky": "clear"}'), ("user", "And tomorrow?")]):
        at.selectbox(key=f"role_0_{tid}").set_value(role).run()
        at.text_area(key=f"content_0_{tid}").input(content)
    at.text_input(key=f"tool_call_id_0_{ids[2]}").input("call_42")
    at.text_area(key="tools_0").input(json.dumps(WEATHER))
    at.text_input(key="tool_choice_0").input("get_weather")
    at.text_area(key="response_format_0").input(json.dumps(SCHEMA)).run()
    return ids


def test_duplicating_a_conversation_wording_copies_the_conversation_tools_and_format(store, stub):
    at = app().run()
    conversation_wording(at)
    at.button(key="duplicate_0").click().run()
    assert not at.exception
    state = at.session_state
    assert state["kind_1"] == "conversation"
    first, copy = state["turns_0"], state["turns_1"]
    assert [(t["role"], t["content"], t.get("tool_call_id")) for t in copy] == \
        [(t["role"], t["content"], t.get("tool_call_id")) for t in first]
    assert not {t["id"] for t in copy} & {t["id"] for t in first}  # its own turns: editing one leaves the other
    assert (state["tools_1"], state["tool_choice_1"], state["response_format_1"]) == \
        (state["tools_0"], state["tool_choice_0"], state["response_format_0"])
    at.text_area(key=f"content_1_{copy[3]['id']}").input("And the day after?").run()
    assert state["turns_0"][3]["content"] == "And tomorrow?"
    at.radio(key="inputs_source").set_value("pasted text").run()
    at.text_area(key="inputs_pasted").input("city\nParis").run()
    at.multiselect(key="models").set_value(["openai/stub-a"])
    at.text_input(key="api_base").input(stub.base_url)
    at.text_input(key="temperatures").input("1")
    at.number_input(key="n").set_value(1).run()
    stub.respond = lambda body: '{"sky": "clear"}'
    at.button(key="run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run_id = at.session_state["active_run"]
    wait_until_done(store, run_id)
    with store.connection() as db:
        variants = runs.run_variants(db, run_id)
        sent = runs.sent_messages(db, run_id)
    assert all(v["tools"] == WEATHER and v["response_format"] == SCHEMA for v in variants)
    assert [m["role"] for m in sent[(1, 0)]] == ["system", "user", "tool", "user"]
    assert sent[(1, 0)][2] == {"role": "tool", "content": '{"sky": "clear"}', "tool_call_id": "call_42"}
    assert sent[(1, 0)][3]["content"] == "And the day after?" and sent[(0, 0)][3]["content"] == "And tomorrow?"
    bodies = [r["body"] for r in stub.requests]
    assert {b["messages"][2].get("tool_call_id") for b in bodies} == {"call_42"}
    assert all(b["response_format"]["json_schema"]["strict"] is True for b in bodies)
    # Loaded back from the run, the call id and strict come back too.
    loaded = drafts.from_run(store, run_id)
    assert loaded["turns_0"][2]["tool_call_id"] == "call_42"
    assert json.loads(loaded["response_format_0"]) == SCHEMA


def test_a_bad_tools_or_response_format_entry_is_shown_under_the_run_button(store):
    at = app().run()
    at.text_area(key="prompt_0").input("Hi")
    at.text_area(key="tools_0").input('[{"name": "bad name!"}]').run()
    at.button(key="run").click().run()
    assert not at.exception

    def under_run_button() -> str:
        children = list(at.main.children.values())
        at_run = next(k for k, child in enumerate(children)
                      if hasattr(child, "__iter__") and any(getattr(n, "key", None) == "run" for n in child))
        shown = children[at_run + 1]
        return shown.value.replace("\\", "").replace("\u2060", "") if type(shown).__name__ == "Error" else ""

    assert "tool 1: a function name is 1-64 letters" in under_run_button()
    at.text_area(key="tools_0").input("").run()
    at.button(key="add_variant").click().run()
    at.text_area(key="prompt_1").input("Hello")
    at.text_area(key="response_format_1").input('{"type": "nonsense-type"}').run()
    at.button(key="run").click().run()
    assert "wording B: the response format is not a valid JSON Schema" in under_run_button()
    with store.connection() as db:
        assert db["runs"].count == 0


def test_runs_and_spread_show_the_tools_a_run_offered_as_plain_text(store, stub):
    import asyncio

    from core.prompts import shapes
    from core.run import plan, runner
    from test_prompt_shapes import call, run_spec

    stub.respond = lambda body: call("get_weather", '{"city": "Paris"}')
    variant = plan.Variant("Weather in Paris?", tools=WEATHER, tool_choice=shapes.checked_tool_choice("auto", WEATHER))
    run_id = plan.create(store, run_spec(stub, variants=[variant], n=2))
    asyncio.run(runner.execute(store, run_id))
    expected = ['get_weather(city: string, unit?: "c" | "f", where?: object) — The weather in a city',
                "search(q: string)", "tool choice: auto"]
    for page in ("pages/runs.py", "pages/spread.py"):
        at = app()
        at.switch_page(page).run()
        assert not at.exception
        (shown,) = [c.value for c in at.code if c.value.startswith("Tools offered by wording A:")]
        assert shown.splitlines()[1:] == expected, page
