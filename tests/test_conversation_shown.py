"""The whole conversation, everywhere an answer is judged: Review, the Spread page's cell,
Compare, golden items and `spread show --json` show every message sent (roles, turns,
tool calls with their arguments, tool results with their call id), as plain text, the
earlier turns of a long one folded away."""

import asyncio
import json

from streamlit.testing.v1 import AppTest

from conftest import ROOT
from core.store import Store, responses, runs
from core.prompts import conversation
from core.review import golden
from core.run import plan, runner
from test_cli import last_json, spread as cli

SUPPORT = [
    {"role": "system", "content": "You are a support agent."},
    {"role": "history", "from": "messages"},
    {"role": "user", "content": "(Reply to the customer's last message above.)"},
]
HISTORY = [
    {"role": "user", "content": "My order 1234 never arrived."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_7", "type": "function", "function": {"name": "lookup_order", "arguments": '{"order":"1234"}'}}]},
    {"role": "tool", "tool_call_id": "call_7", "content": '{"status": "lost in transit"}'},
    {"role": "assistant", "content": "I am sorry: it was lost."},
    {"role": "user", "content": "Can I get a refund? ![x](http://127.0.0.1:9/leak.png)"},
]
SEEN = ["My order 1234 never arrived.", '→ lookup_order({"order": "1234"})  [id call_7]',
        '{"status": "lost in transit"}', "I am sorry: it was lost.",
        "Can I get a refund? ![x](http://127.0.0.1:9/leak.png)", "You are a support agent.",
        "(Reply to the customer's last message above.)"]


def support_run(store, stub) -> int:
    stub.answers = ["A refund is on its way."]
    run_id = plan.create(store, plan.RunSpec(
        prompt="", variants=[plan.Variant("", name="support", messages=SUPPORT)],
        inputs=[{"messages": json.dumps(HISTORY)}], models=["openai/stub-a"], temperatures=[0.0], n=2,
        api_base=stub.base_url, seed=1))
    asyncio.run(runner.execute(store, run_id))
    return run_id


def test_readable_turns_name_roles_calls_and_the_call_a_result_answers():
    sent = conversation.render(SUPPORT, {"messages": json.dumps(HISTORY)})
    turns = conversation.readable(sent)
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "tool", "assistant", "user", "user"]
    assert turns[2]["heading"] == "assistant · calls lookup_order"
    assert turns[2]["calls"] == [{"name": "lookup_order", "arguments": '{"order": "1234"}', "id": "call_7"}]
    assert turns[3]["heading"] == "tool · result of call call_7" and turns[3]["tool_call_id"] == "call_7"
    assert [conversation.turn_text(t) for t in turns] == [SEEN[5], *SEEN[:5], SEEN[6]]
    parts = conversation.readable([{"role": "user", "content": [{"type": "text", "text": "Look:"},
                                                                  {"type": "image_url", "image_url": {}}]}])
    assert conversation.turn_text(parts[0]) == "Look:\n(image_url)"
    # A run from before messages were kept: its system text and prompt are what it sent.
    assert conversation.as_sent(None, "Be brief.", "Hi") == [{"role": "system", "content": "Be brief."},
                                                             {"role": "user", "content": "Hi"}]


def page_texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def test_every_page_that_judges_an_answer_shows_the_whole_conversation(store, stub):
    run_id = support_run(store, stub)
    with store.connection() as db:
        first = min(r["id"] for r in responses.of_run(db, run_id))
    golden.create_set(store, "support", created_by="ann")
    golden.add_responses(store, "support", [first], who="ann")
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["reviewer"] = "ann"
    at.session_state["spread_run"] = run_id
    at.session_state["review_runs"] = [run_id]
    at.session_state["golden_set"] = "support"
    at.run()
    for page in ("review", "spread", "compare", "golden"):
        at.switch_page(f"pages/{page}.py").run()
        assert not at.exception, (page, [e.value for e in at.exception])
        texts = page_texts(at)
        for shown in SEEN:
            assert shown in texts, (page, shown)
        captions = [c.value for c in at.caption]
        assert "tool · result of call call\\_7" in captions, page  # escaped: a caption renders markdown
        # Seven turns: the five earlier ones fold into an expander, the last two stay in view.
        assert "The 5 earlier turns (7 in all)" in [e.label for e in at.expander], page


def test_spread_show_json_gives_each_cell_its_messages_as_sent(store, stub):
    run_id = support_run(store, stub)
    text_run = plan.create(store, plan.RunSpec(prompt="Capital of France?", system="One word.", models=["openai/stub-a"],
                                        temperatures=[0.0], n=1, api_base=stub.base_url, seed=1))
    asyncio.run(runner.execute(store, text_run))
    with store.connection() as db:
        sent = runs.sent_messages(db, run_id)[(0, 0)]
        db.execute("update run_prompts set messages = null where run_id = ?", [text_run])  # as a run from before
    with store.connection() as db:
        assert runs.sent_messages(db, text_run) == {}
    (cell,) = last_json(cli("show", str(run_id), "--json"))["cells"]
    assert cell["messages"] == sent and len(sent) == 7 and sent[2]["tool_calls"][0]["id"] == "call_7"
    assert cell["prompt"] == "(Reply to the customer's last message above.)"  # the existing keys stay
    (cell,) = last_json(cli("show", str(text_run), "--json"))["cells"]
    assert cell["messages"] == [{"role": "system", "content": "One word."},
                                {"role": "user", "content": "Capital of France?"}]
