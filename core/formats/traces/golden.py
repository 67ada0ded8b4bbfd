"""Production calls into golden sets: the conversation, its tools and the production
answer kept. A production answer has no reviewer's verdict yet: it is the item's
reference unless a correction is given, and then it is kept as a rejected answer (a
failed production answer needs a correction, as any failed answer does)."""

from __future__ import annotations

from core.config import SpreadError, check_text
from core.prompts import conversation, shapes
from core.review import golden
from core.store import Store
from core.store import traces as stored

PRODUCTION_TAG = "production"


def find_call(store: Store, reference: str) -> dict:
    """A stored call by its id in Spread, or its span id (OTLP) / observation id."""
    with store.connection() as db:
        if reference.isdigit():
            found = stored.get_call(db, int(reference))
            if found:
                return found
        ids = [row["id"] for row in db.query("select id from llm_calls where span_id = ? order by id", [reference])]
        if ids:
            return stored.get_call(db, ids[0])
    raise SpreadError(f"no stored production call {reference!r} (an id from the Traces page, or a span id)")


def item_from_call(call: dict, *, who: str, correction: str | None = None,
                   correction_calls: list[dict] | None = None) -> golden.Item:
    messages = [m for m in call["messages"] or [] if m.get("role") != "system"]
    users = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    if not users or not users[-1].strip():
        raise SpreadError(f"call {call['id']} has no user message to keep as the item's input")
    answer_calls = call["output_calls"] or None
    answer = shapes.readable(call["output_text"] or "", answer_calls or [])
    if call["status"] == "error" or not answer.strip():
        if not correction and not correction_calls:
            raise SpreadError(f"call {call['id']} has no production answer (it failed): give the correct answer")
    if correction is not None:
        check_text(correction, "the correction")
    tools = None
    if call["tools"]:
        try:
            tools = shapes.checked_tools(call["tools"], "the call's tools")
        except SpreadError:
            tools = None  # tools the trace recorded in another shape: the conversation is kept without them
    if correction_calls:
        correction_calls = shapes.checked_calls(correction_calls, tools)
    reference = (correction or "").strip() or (shapes.readable("", correction_calls) if correction_calls else answer)
    corrected = reference != answer
    sent = conversation.checked(([{"role": "system", "content": call["system"]}] if call["system"] else [])
                                + messages, f"call {call['id']}")
    return golden.Item(
        prompt=users[-1], system=call["system"] or "", reference=reference,
        accepted=[] if corrected else [answer], rejected=[answer] if corrected and answer.strip() else [],
        tags=[PRODUCTION_TAG], added_by=who, prompt_name=call["prompt_name"],
        vars=call["prompt_variables"] or {}, template=call["prompt_template"],
        messages=sent if len(sent) > 1 + bool(call["system"]) or tools else None,
        shape={"tools": tools} if tools else None,
        tool_calls=correction_calls or (answer_calls if not corrected else None))


def add_calls(store: Store, name: str, references: list[str], *, who: str = "", correction: str | None = None,
              correction_calls: list[dict] | None = None) -> int:
    """New items from production calls (one new version of the set)."""
    if not references:
        raise SpreadError("no production call chosen to add")
    golden.get_set(store, name)
    items = [item_from_call(find_call(store, ref), who=who, correction=correction,
                            correction_calls=correction_calls) for ref in references]
    return golden.add_items(store, name, items, who=who)
