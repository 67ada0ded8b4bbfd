"""One LLM call as Spread keeps it, whatever format it came in: the row of `llm_calls`.

Messages are kept in the OpenAI chat shape Spread's conversations use (core.prompts.
conversation): `{"role", "content"}` turns, an assistant turn's `tool_calls`
(`{"id", "type": "function", "function": {"name", "arguments"}}`), a tool turn's
`tool_call_id`. The output is its text, its tool calls (`{"name", "arguments"}`, the
arguments parsed when they are JSON) and the JSON value when the text is JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone


class Malformed(ValueError):
    """A record that claims to be an LLM call but cannot be read as one: listed, skipped."""


@dataclass
class Call:
    source_key: str  # unique: "span:TRACE:SPAN" or "line:SHA256" (re-importing adds nothing)
    format: str
    started_at: str | None = None  # ISO 8601, UTC
    ended_at: str | None = None
    service: str | None = None
    operation: str | None = None
    provider: str | None = None
    model_requested: str | None = None
    model_reported: str | None = None
    prompt_name: str | None = None
    prompt_version: str | None = None
    prompt_template: str | None = None
    prompt_variables: dict | None = None
    messages: list[dict] = field(default_factory=list)
    tools: list | None = None
    parameters: dict = field(default_factory=dict)
    output_text: str | None = None
    output_calls: list[dict] | None = None
    finish_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None  # NULL when the trace does not say: never a made-up 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    status: str = "ok"  # ok or error
    error_message: str | None = None
    attributes: dict = field(default_factory=dict)

    @property
    def system(self) -> str:
        return "\n\n".join(m.get("content") or "" for m in self.messages if m.get("role") == "system")

    def row(self) -> dict:
        """The stored row: JSON columns as text, the grouping hashes computed."""
        output_json = parsed_json(self.output_text) if self.output_text else None
        return {
            "source_key": self.source_key, "format": self.format, "started_at": self.started_at,
            "ended_at": self.ended_at, "service": self.service, "operation": self.operation,
            "provider": self.provider, "model_requested": self.model_requested,
            "model_reported": self.model_reported, "prompt_name": self.prompt_name,
            "prompt_version": None if self.prompt_version is None else str(self.prompt_version),
            "prompt_template": self.prompt_template,
            "prompt_variables": _json(self.prompt_variables), "system": self.system,
            "messages": _json(self.messages), "tools": _json(self.tools), "parameters": _json(self.parameters),
            "output_text": self.output_text, "output_calls": _json(self.output_calls),
            "output_json": None if output_json is _NOT_JSON else _json(output_json),
            "finish_reason": self.finish_reason, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens, "cost_usd": self.cost_usd, "latency_ms": self.latency_ms,
            "ttft_ms": self.ttft_ms, "trace_id": self.trace_id, "span_id": self.span_id,
            "parent_span_id": self.parent_span_id, "status": self.status, "error_message": self.error_message,
            "attributes": _json(self.attributes), "input_hash": input_hash(self.messages, self.tools),
            "prompt_key": prompt_key(self),
        }


_NOT_JSON = object()


def parsed_json(text: str):
    """The JSON value an answer's text is (objects and arrays only), else _NOT_JSON."""
    stripped = text.strip()
    if not stripped or stripped[0] not in "[{":
        return _NOT_JSON
    try:
        return json.loads(stripped)
    except ValueError:
        return _NOT_JSON


def _json(value) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=False)


def input_hash(messages: list[dict], tools) -> str:
    """What "the same input" means: the same conversation (roles, contents, calls) and tools."""
    return hashlib.sha256(json.dumps([messages, tools or None], sort_keys=True, ensure_ascii=False)
                          .encode()).hexdigest()[:32]


def prompt_key(call: Call) -> str:
    """What "the same prompt" means: its name and version when the trace says, else the
    normalised system message (whitespace collapsed, case kept)."""
    if call.prompt_name:
        return f"name:{call.prompt_name}@{call.prompt_version or ''}"
    if call.prompt_template:
        return "template:" + _digest(" ".join(call.prompt_template.split()))
    return "system:" + _digest(" ".join(call.system.split()))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def line_key(line: bytes | str) -> str:
    data = line.encode() if isinstance(line, str) else line
    return "line:" + hashlib.sha256(data.strip()).hexdigest()


def iso_from_ns(ns: int | None) -> str | None:
    if not ns:
        return None
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).isoformat(timespec="microseconds")


def iso(value) -> str | None:
    """A time as ISO 8601 UTC: from an ISO string (any offset), epoch seconds, ms or ns."""
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        seconds = value / 1e9 if value > 1e17 else value / 1e3 if value > 1e11 else value
        return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="microseconds")
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"not a time: {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def text_of(content) -> str | None:
    """A message content as text: a string, or the text parts of a list of parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                value = part.get("text", part.get("content"))
                if isinstance(value, str) and part.get("type", "text") in ("text", "input_text", "output_text"):
                    texts.append(value)
        return "".join(texts)
    if isinstance(content, dict):
        return json.dumps(content, ensure_ascii=False)
    return str(content)


def arguments_of(arguments):
    """Tool-call arguments parsed when they are JSON text (so equal calls compare equal)."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def tool_call(name, arguments, call_id=None) -> dict:
    """One call in a message's `tool_calls` (arguments as JSON text, the OpenAI shape)."""
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {}, ensure_ascii=False)
    found = {"type": "function", "function": {"name": str(name or ""), "arguments": arguments}}
    if call_id:
        found["id"] = str(call_id)
    return found


def message(role, content=None, tool_calls=None, tool_call_id=None, name=None) -> dict:
    role = str(role or "user").lower()
    role = {"human": "user", "ai": "assistant", "model": "assistant", "developer": "system",
            "function": "tool"}.get(role, role)
    found: dict = {"role": role, "content": text_of(content) or ""}
    if tool_calls:
        found["tool_calls"] = tool_calls
    if tool_call_id:
        found["tool_call_id"] = str(tool_call_id)
    if name and role == "tool":
        found["name"] = str(name)
    return found


def openai_messages(value, what: str) -> list[dict]:
    """A list of OpenAI-style messages (dicts with role/content/tool_calls) normalised."""
    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    if not isinstance(value, list):
        raise Malformed(f"{what} is not a list of messages")
    found = []
    for m in value:
        if not isinstance(m, dict):
            raise Malformed(f"{what} holds a message that is not an object")
        calls = [tool_call((c.get("function") or {}).get("name", c.get("name")),
                           (c.get("function") or {}).get("arguments", c.get("arguments")), c.get("id"))
                 for c in m.get("tool_calls") or [] if isinstance(c, dict)]
        if isinstance(m.get("function_call"), dict):
            calls.append(tool_call(m["function_call"].get("name"), m["function_call"].get("arguments")))
        found.append(message(m.get("role"), m.get("content"), calls or None, m.get("tool_call_id"), m.get("name")))
    return found


def output_from_message(call: Call, answer: dict | None) -> None:
    """Fill a call's output from the assistant message it answered with."""
    if not answer:
        return
    call.output_text = answer.get("content") if answer.get("content") != "" or not answer.get("tool_calls") else None
    if answer.get("tool_calls"):
        call.output_calls = [{"name": c["function"]["name"], "arguments": arguments_of(c["function"]["arguments"])}
                             for c in answer["tool_calls"]]


def as_int(value) -> int | None:
    try:
        return None if value in (None, "") else int(float(value))
    except (TypeError, ValueError):
        return None


def as_float(value) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None
