"""Conversations: a prompt variant, or an input, as a list of chat messages.

A conversation variant is a list of turns `{"role", "content"}` with roles `system`,
`user`, `assistant` and `tool` (an assistant turn may carry `tool_calls`, a tool turn
its `tool_call_id`); every turn's content may use `{{variables}}`. One more turn places
a conversation that an input holds:

    {"role": "history", "from": "messages"}

is replaced by the messages in the input's `messages` column (a JSON list of messages,
as in OpenAI chat JSONL or promptfoo's `messages` variable). The input's messages are
data: their `{{…}}` are never filled. A variant's few-shot turns, the input's history,
then the variant's last user turn — whatever order the variant's turns say.

`text()` is a conversation written as text ("[user] …" per turn): what a prompt version
is keyed by and what the word diff compares. `readable()` is a conversation as the views
show it, turn by turn (roles, tool calls with their arguments, tool results with the call
they answer); `sent_for()` and `answered_with()` read what a run sent.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.config import SpreadError
from core.prompts import templates
from core.store import Store, runs

ROLES = ("system", "user", "assistant", "tool")
HISTORY = "history"
MAX_TURNS = 500


def read_file(path: str | Path) -> list[dict]:
    """A JSON or YAML file holding a list of messages (or {"messages": [...]})."""
    from core.prompts import shapes

    data = shapes.load_file(path, "prompt")
    if isinstance(data, dict) and "messages" in data:
        data = data["messages"]
    return checked(data, str(path), templated=True)


def checked(messages, where: str, *, templated: bool = False) -> list[dict]:
    """A list of messages as Spread keeps it, or a one-line SpreadError naming the turn.
    `templated`: a variant's turns (a history turn allowed), not an input's data."""
    if not isinstance(messages, list) or not messages:
        raise SpreadError(f"{where}: expected a non-empty list of messages ({{role, content}})", "prompt")
    if len(messages) > MAX_TURNS:
        raise SpreadError(f"{where}: {len(messages)} messages, more than {MAX_TURNS}", "prompt")
    out = []
    for number, turn in enumerate(messages, start=1):
        what = f"{where}: message {number}"
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str):
            raise SpreadError(f"{what} needs a role ({', '.join(ROLES)})", "prompt")
        role = turn["role"].strip()
        if role == HISTORY and templated:
            column = turn.get("from")
            if not isinstance(column, str) or not column.strip():
                raise SpreadError(f"{what}: a history turn names the input column it comes from: "
                                  '{"role": "history", "from": "messages"}', "prompt")
            out.append({"role": HISTORY, "from": column.strip()})
            continue
        if role not in ROLES:
            allowed = ROLES + ((HISTORY,) if templated else ())
            raise SpreadError(f"{what}: unknown role {role!r} (use {', '.join(allowed)})", "prompt")
        content = turn.get("content")
        if isinstance(content, list):  # parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
        calls = turn.get("tool_calls")
        if content is None and not (role == "assistant" and calls):
            raise SpreadError(f"{what} ({role}) has no content", "prompt")
        if content is not None and not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        message = {"role": role, "content": content}
        if role == "assistant" and calls:
            message["tool_calls"] = calls
        for key in ("tool_call_id", "name"):
            if isinstance(turn.get(key), str):
                message[key] = turn[key]
        out.append(message)
    return out


def history_columns(messages: list[dict]) -> list[str]:
    return [turn["from"] for turn in messages if turn["role"] == HISTORY]


def text(messages: list[dict]) -> str:
    """The conversation as text, one "[role] content" block per turn; a history turn shows
    as the placeholder of its column, so that the plan asks each input for it."""
    blocks = []
    for turn in messages:
        if turn["role"] == HISTORY:
            blocks.append(f"[history] {{{{{turn['from']}}}}}")
            continue
        block = f"[{turn['role']}] {turn.get('content') or ''}".rstrip()
        for call in turn.get("tool_calls") or []:
            function = call.get("function", call) if isinstance(call, dict) else {}
            block += f"\n  → {function.get('name')}({function.get('arguments', '')})"
        blocks.append(block)
    return "\n".join(blocks)


def render(messages: list[dict], values: dict[str, str]) -> list[dict]:
    """The messages as sent for one input: placeholders filled, history turns replaced by
    the input's conversation (the caller has checked the input with `check_input`)."""
    out = []
    for turn in messages:
        if turn["role"] == HISTORY:
            out += [dict(m) for m in from_value(values[turn["from"]], turn["from"])]
            continue
        sent = dict(turn)
        if sent.get("content") is not None:
            sent["content"] = templates.render(sent["content"], values)
        out.append(sent)
    return out


def from_value(value: str, column: str) -> list[dict]:
    """An input's column holding a conversation (a JSON list of messages)."""
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as e:
        raise SpreadError(f"the column {column!r} is not a JSON list of messages ({e.msg})", "inputs") from None
    return [] if data == [] else checked(data, f"the column {column!r}")  # no history yet: nothing placed


def check_inputs(messages: list[dict], inputs: list[dict[str, str]]) -> None:
    """Every input holds a conversation in each column a history turn takes."""
    for column in history_columns(messages):
        for number, values in enumerate(inputs, start=1):
            if values.get(column) is None:
                continue  # templates.check_inputs names the missing variable
            try:
                from_value(values[column], column)
            except SpreadError as e:
                raise SpreadError(f"input {number}: {e}", "inputs") from None


def split_reference(messages: list[dict]) -> tuple[list[dict], str | None]:
    """A chat example's messages without its final assistant answer, and that answer
    (the reference an answer is checked against), if it ends with one."""
    last = messages[-1]
    if last["role"] == "assistant" and last.get("content") and not last.get("tool_calls") and len(messages) > 1:
        return messages[:-1], last["content"]
    return messages, None


def last_user_text(messages: list[dict]) -> str:
    """The turn an answer replies to: the last user (or tool) message."""
    for turn in reversed(messages):
        if turn["role"] in ("user", "tool") and turn.get("content"):
            return turn["content"]
    return ""


def system_text(messages: list[dict]) -> str:
    return "\n".join(turn["content"] for turn in messages if turn["role"] == "system" and turn.get("content"))


def _tool_turn(turn: dict) -> dict:
    """A tool turn from the Playground: its result and, when given, the id of the call it
    answers (`tool_call_id`), which the provider pairs with the assistant's call."""
    message = {"role": "tool", "content": turn.get("content") or ""}
    call_id = (turn.get("tool_call_id") or "").strip()
    if call_id:
        message["tool_call_id"] = call_id
    return message


def from_turns(turns: list[dict]) -> list[dict]:
    """Turns as the Playground edits them ({role, content}, a tool turn's `tool_call_id`; a
    history turn's content is the column it comes from) as a variant's messages."""
    return [{"role": HISTORY, "from": (turn.get("content") or "").strip()} if turn.get("role") == HISTORY
            else _tool_turn(turn) if turn.get("role") == "tool"
            else {"role": turn.get("role") or "user", "content": turn.get("content") or ""} for turn in turns]


# --- what was sent, as a reader sees it -------------------------------------------------------

def as_sent(messages: list[dict] | None, system: str = "", prompt: str = "") -> list[dict]:
    """The messages sent: as kept, or, for a run from before they were kept, its system text
    and prompt (all a text prompt sent)."""
    if messages:
        return messages
    return ([{"role": "system", "content": system}] if (system or "").strip() else []) + \
        [{"role": "user", "content": prompt or ""}]


def sent_for(store: Store, run_id: int, variant: int, input_idx: int) -> list[dict]:
    """The messages a run sent for one (wording, input); [] when it has none."""
    with store.connection() as db:
        found = runs.prompt_sent(db, run_id, variant, input_idx)
    return [] if found is None else as_sent(*found)


def answered_with(store: Store, response_id: int) -> list[dict]:
    """The messages an answer replied to; [] when there is no such answer."""
    with store.connection() as db:
        found = runs.prompt_answered(db, response_id)
    return [] if found is None else as_sent(*found)


def readable(messages: list[dict] | None) -> list[dict]:
    """A conversation turn by turn, for people: each turn's `heading` (its role, and for a
    tool result the call it answers), its `text`, and its `calls` (name, arguments as JSON
    text, id). Everything is plain text to be shown as text: model output is data."""
    turns = []
    for message in messages or []:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "?")
        content = message.get("content")
        if isinstance(content, list):  # parts: the text ones read, the others named
            content = "\n".join(p.get("text", "") if isinstance(p, dict) and p.get("type") == "text"
                                else f"({p.get('type', 'part') if isinstance(p, dict) else 'part'})" for p in content)
        elif content is not None and not isinstance(content, str):
            content = json.dumps(content, ensure_ascii=False)
        calls = [_readable_call(call) for call in message.get("tool_calls") or []]
        heading = role
        if role == HISTORY:
            heading, content = "history", f"(the input's {message.get('from')!r} conversation)"
        if message.get("name"):
            heading += f" ({message['name']})"
        if role == "tool" and message.get("tool_call_id"):
            heading += f" · result of call {message['tool_call_id']}"
        if calls:
            heading += " · calls " + ", ".join(str(c["name"]) for c in calls)
        turns.append({"role": role, "heading": heading, "text": content or "", "calls": calls,
                      "tool_call_id": message.get("tool_call_id")})
    return turns


def _readable_call(call) -> dict:
    function = call.get("function", call) if isinstance(call, dict) else {}
    arguments = function.get("arguments", "")
    if isinstance(arguments, str):
        try:
            arguments = json.dumps(json.loads(arguments), ensure_ascii=False)
        except ValueError:
            pass  # shown as the model wrote it
    else:
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"name": function.get("name") or "?", "arguments": arguments,
            "id": call.get("id") if isinstance(call, dict) else None}


def turn_text(turn: dict) -> str:
    """A readable turn's text and its calls, one "→ name(arguments)" line each (with the id)."""
    lines = [turn["text"]] if turn["text"] else []
    lines += [f"→ {c['name']}({c['arguments']})" + (f"  [id {c['id']}]" if c["id"] else "") for c in turn["calls"]]
    return "\n".join(lines) or "(empty)"
