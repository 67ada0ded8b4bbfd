"""A conversation wording with tools, built and run through the UI in a real headless Chromium."""

import json
import sqlite3

from test_browser import ARTIFACTS, page, pytestmark, served_app  # noqa: F401 (fixtures)
from core.store import Store

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def test_a_two_turn_conversation_with_tools_through_the_ui_then_its_calls_on_the_spread_page(served_app, page, stub):
    url, db_path = served_app
    store = Store(db_path)
    stub.respond = lambda body: {"content": None, "tool_calls": [
        {"name": "get_weather", "arguments": json.dumps({"city": body["messages"][-1]["content"].split()[-1][:-1]})}]}
    from core.models import endpoints

    endpoints.add(store, endpoints.Endpoint("team-stub", "openai/stub-a", stub.base_url))
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").wait_for(timeout=60_000)
    page.get_by_text("conversation", exact=True).click()
    page.get_by_role("button", name="Add a turn").wait_for(timeout=30_000)
    # Turn 1: the system message; turn 2, added: the user's question.
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Turn 1").click()
    page.get_by_role("option", name="system", exact=True).click()
    first = page.get_by_role("textbox", name="Content").nth(0)
    first.fill("Call a tool for the weather.")
    first.press("Control+Enter")
    page.get_by_role("button", name="Add a turn").click()
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Turn 2").wait_for(timeout=30_000)
    second = page.get_by_role("textbox", name="Content").nth(1)
    second.fill("Weather in {{city}}?")
    second.press("Control+Enter")
    page.get_by_text("Tools and response format").click()
    tools = page.get_by_role("textbox", name="Tools (OpenAI tools list, JSON or YAML)")
    tools.fill(json.dumps(TOOLS))
    tools.press("Control+Enter")
    choice = page.get_by_role("textbox", name="Tool choice")
    choice.fill("get_weather")
    choice.press("Enter")
    page.get_by_text("pasted text").click()
    inputs = page.get_by_role("textbox", name="CSV with a header row, or JSON Lines")
    inputs.fill("city\nParis\nLima")
    inputs.press("Control+Enter")
    page.get_by_text("2 inputs · variables: city").wait_for(timeout=30_000)
    # The model: the embedded one out (it takes no tools), the stub's endpoint in.
    page.locator('[data-testid="stMultiSelect"]').first.click()
    page.keyboard.press("Backspace")
    page.get_by_role("option", name="team-stub").click()
    page.keyboard.press("Escape")
    page.get_by_text("1 models").first.wait_for(timeout=30_000)
    for role, name, value, shown in (("textbox", "Temperatures", "0, 1", "× 2 temperatures"),
                                     ("spinbutton", "Samples (N)", "2", "N=2")):
        field = page.get_by_role(role, name=name)
        field.fill(value)
        field.press("Enter")
        page.get_by_text(shown).first.wait_for(timeout=30_000)
    page.get_by_text("8 calls").wait_for(timeout=30_000)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Run 1: done").wait_for(timeout=180_000)
    with sqlite3.connect(db_path) as db:
        sent = [json.loads(m) for (m,) in db.execute("select messages from run_prompts order by input")]
        calls = [json.loads(c) for (c,) in db.execute("select tool_calls from responses")]
        (tools_sent,) = db.execute("select tools from run_variants").fetchone()
    assert sent[0] == [{"role": "system", "content": "Call a tool for the weather."},
                       {"role": "user", "content": "Weather in Paris?"}]
    assert json.loads(tools_sent) == TOOLS and len(calls) == 8
    assert {c[0]["arguments"]["city"] for c in calls} == {"Paris", "Lima"}
    assert all(r["body"]["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
               for r in stub.requests)

    page.get_by_role("link", name="See how run 1 spread").click()
    page.get_by_role("heading", name="Spread", exact=True).wait_for(timeout=30_000)
    page.get_by_text("Tools chosen").wait_for(timeout=60_000)
    page.get_by_text('get_weather({"city": "Paris"})').first.wait_for(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "spread-tool-calls.png"), full_page=True)
