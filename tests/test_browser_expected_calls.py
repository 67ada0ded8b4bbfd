"""A reviewer corrects a wrong tool call with the right one, in a real headless Chromium."""

import asyncio
import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from core.store import Store
from core.run import plan, runner
from test_browser import goto, page, pytestmark, served_app  # noqa: F401 — fixtures and the browser marks
from test_prompt_shapes import WEATHER, call


def test_a_reviewer_gives_the_expected_call_of_a_wrong_tool_call_answer(served_app, page, stub):  # noqa: F811
    url, db_path = served_app
    store = Store(db_path)
    stub.respond = lambda body: call("search", '{"q": "weather Paris"}')
    run_id = plan.create(store, plan.RunSpec(variants=[plan.Variant("", messages=[{"role": "user", "content": "Weather in "
                                                                                    "Paris?"}], tools=WEATHER)],
                                      models=["openai/stub-a"], temperatures=[1.0], n=1, api_base=stub.base_url))
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API owns this thread's event loop
        pool.submit(asyncio.run, runner.execute(store, run_id)).result()
    page.goto(url)
    page.get_by_role("textbox", name="Reviewer").fill("ana")
    page.get_by_role("textbox", name="Reviewer").press("Enter")
    goto(page, "Review")
    page.get_by_text('search({"q": "weather Paris"})').first.wait_for(timeout=60_000)

    page.get_by_text("Expected tool calls").wait_for()
    tool = page.locator('[data-testid="stSelectbox"]').filter(has_text="Tool")
    for _ in range(3):  # a click landing while the page reruns is dropped: click again, as a user would
        tool.click()
        try:
            page.get_by_role("option", name="search", exact=True).wait_for(timeout=5_000)  # the run's tools
            break
        except Exception:  # playwright's TimeoutError
            page.keyboard.press("Escape")
    page.get_by_role("option", name="get_weather", exact=True).click()
    arguments = page.get_by_role("textbox", name="Arguments (JSON)")
    arguments.fill('{"city": 3}')
    arguments.press("Control+Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Add the call").click()
    page.get_by_text("is not of type 'string'").wait_for(timeout=30_000)  # said beside the editor

    arguments.fill('{"unit": "c", "city": "Paris"}')
    arguments.press("Control+Enter")
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Add the call").click()
    page.get_by_text('get_weather({"city": "Paris", "unit": "c"})').wait_for(timeout=30_000)
    page.get_by_role("button", name=re.compile(r"^Fail")).click()
    page.get_by_text("1/1 answers labelled by ana").wait_for(timeout=30_000)
    with sqlite3.connect(db_path) as db:
        (verdict, calls), = db.execute("select verdict, correction_calls from labels").fetchall()
    assert verdict == "fail" and json.loads(calls) == [{"name": "get_weather",
                                                        "arguments": {"city": "Paris", "unit": "c"}}]
