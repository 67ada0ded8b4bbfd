"""An OTLP span as an LLM call, or None when it is not one.

Three attribute layouts are read:
- the OpenTelemetry GenAI semantic conventions, **v1.37.0** (status: Development), the
  current layout: `gen_ai.input.messages`, `gen_ai.output.messages`,
  `gen_ai.system_instructions`, `gen_ai.tool.definitions` (JSON, as attributes or on the
  `gen_ai.client.inference.operation.details` event), `gen_ai.request.*`,
  `gen_ai.response.*`, `gen_ai.usage.*`; and the older shapes still in the wild: the
  indexed attributes of OpenLLMetry (`gen_ai.prompt.N.role/content`,
  `gen_ai.completion.N.*`, `llm.request.functions.N.*`), and the span events of
  v1.26–v1.36 (`gen_ai.system/user/assistant/tool.message`, `gen_ai.choice`,
  `gen_ai.content.prompt/completion`);
- OpenInference (`openinference.span.kind` LLM: `llm.input_messages.N.message.*`,
  `llm.output_messages.N.message.*`, `llm.model_name`, `llm.invocation_parameters`,
  `llm.tools.N.tool.json_schema`, `llm.token_count.*`, `llm.cost.*`,
  `llm.prompt_template.*`).

What a layout names is taken out of the attributes; the rest are kept as JSON.
"""

from __future__ import annotations

import json
import re

from core.formats.traces import calls as c
from core.formats.traces.calls import Call, Malformed

SEMCONV_VERSION = "1.37.0"

# gen_ai.operation.name values that are a model generating text.
GENERATING = {"chat", "text_completion", "generate_content", "completion"}
NOT_GENERATING = {"embeddings", "execute_tool", "invoke_agent", "create_agent", "embedding"}
PARAMETERS = ("temperature", "top_p", "top_k", "max_tokens", "frequency_penalty", "presence_penalty",
              "stop_sequences", "seed", "choice.count", "encoding_formats")


def call_from_span(span: dict) -> Call | None:
    attributes = dict(span["attributes"])
    if str(attributes.get("openinference.span.kind", "")).upper() == "LLM":
        call = _openinference(attributes)
    elif _is_genai(attributes, span):
        call = _genai(attributes, span)
    else:
        return None
    if call is None:
        return None
    call.source_key = f"span:{span['trace_id']}:{span['span_id']}"
    call.trace_id, call.span_id, call.parent_span_id = span["trace_id"], span["span_id"], span["parent_span_id"]
    call.started_at, call.ended_at = c.iso_from_ns(span["start_ns"]), c.iso_from_ns(span["end_ns"])
    if span["start_ns"] and span["end_ns"] and span["end_ns"] >= span["start_ns"]:
        call.latency_ms = (span["end_ns"] - span["start_ns"]) / 1e6
    call.service = span["resource"].get("service.name")
    if span["status"]["code"] == 2:
        call.status = "error"
        call.error_message = span["status"]["message"] or attributes.get("error.type")
    call.attributes = {"span.name": span["name"], "scope": span["scope"],
                       **{f"resource.{k}": v for k, v in span["resource"].items()}, **call.attributes}
    return call


def _is_genai(attributes: dict, span: dict) -> bool:
    operation = attributes.get("gen_ai.operation.name") or attributes.get("llm.request.type")
    if operation in NOT_GENERATING:
        return False
    if operation in GENERATING:
        return True
    if any(k.startswith(("gen_ai.request.model", "gen_ai.input.messages", "gen_ai.prompt.")) for k in attributes):
        return True
    return any(e["name"].startswith("gen_ai.") for e in span["events"]) and "gen_ai.system" in attributes


def _loads(attributes: dict, name: str, what: str):
    value = attributes.pop(name, None)
    if value is None or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise Malformed(f"{name} is not valid JSON ({what})") from None


# --- GenAI semantic conventions ----------------------------------------------------------

def _genai(attributes: dict, span: dict) -> Call:
    call = Call(source_key="", format="otlp")
    for event in span["events"]:  # v1.37's event carrying the messages: the same attributes
        if event["name"] == "gen_ai.client.inference.operation.details":
            for key, value in event["attributes"].items():
                attributes.setdefault(key, value)
    call.operation = attributes.pop("gen_ai.operation.name", None) or attributes.pop("llm.request.type", None)
    call.provider = attributes.pop("gen_ai.provider.name", None) or attributes.pop("gen_ai.system", None)
    call.model_requested = attributes.pop("gen_ai.request.model", None)
    call.model_reported = attributes.pop("gen_ai.response.model", None)
    for name in PARAMETERS:
        if f"gen_ai.request.{name}" in attributes:
            call.parameters[name] = attributes.pop(f"gen_ai.request.{name}")
    call.input_tokens = c.as_int(_pop_first(attributes, "gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"))
    call.output_tokens = c.as_int(_pop_first(attributes, "gen_ai.usage.output_tokens",
                                             "gen_ai.usage.completion_tokens"))
    reasons = attributes.pop("gen_ai.response.finish_reasons", None)
    if reasons:
        call.finish_reason = reasons[0] if isinstance(reasons, list) else str(reasons)
    call.prompt_name = _pop_first(attributes, "traceloop.prompt.key", "gen_ai.prompt.name")
    call.prompt_version = _pop_first(attributes, "traceloop.prompt.version", "gen_ai.prompt.version")
    call.prompt_template = attributes.pop("traceloop.prompt.template", None)
    variables = {k.split(".", 3)[3]: attributes.pop(k) for k in list(attributes)
                 if k.startswith("traceloop.prompt.template_variables.")}
    call.prompt_variables = variables or None

    if "gen_ai.input.messages" in attributes or "gen_ai.output.messages" in attributes \
            or "gen_ai.system_instructions" in attributes:
        _current_layout(call, attributes)
    elif any(k.startswith(("gen_ai.prompt.", "gen_ai.completion.")) for k in attributes):
        _indexed_layout(call, attributes)
    else:
        _event_layout(call, span["events"])
    call.attributes = attributes
    return call


def _pop_first(attributes: dict, *names):
    found = None
    for name in names:
        value = attributes.pop(name, None)
        if found is None and value is not None:
            found = value
    return found


def _parts_message(role, parts, finish_reason=None) -> dict:
    """A message of the current layout ({role, parts: [{type, …}]}) in the OpenAI shape."""
    if not isinstance(parts, list):
        return c.message(role, parts if isinstance(parts, str) else None)
    texts, calls, answered = [], [], None
    for part in parts:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text":
            texts.append(str(part.get("content", "")))
        elif kind == "tool_call":
            calls.append(c.tool_call(part.get("name"), part.get("arguments"), part.get("id")))
        elif kind == "tool_call_response":
            answered = part.get("id")
            response = part.get("response", part.get("result"))
            texts.append(response if isinstance(response, str) else json.dumps(response, ensure_ascii=False))
    if answered is not None:
        role = "tool"
    return c.message(role, "".join(texts), calls or None, answered)


def _current_layout(call: Call, attributes: dict) -> None:
    system = _loads(attributes, "gen_ai.system_instructions", "expected a list of parts")
    inputs = _loads(attributes, "gen_ai.input.messages", "expected a list of messages") or []
    outputs = _loads(attributes, "gen_ai.output.messages", "expected a list of messages") or []
    call.tools = _loads(attributes, "gen_ai.tool.definitions", "expected a list of tools")
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise Malformed("gen_ai.input.messages / gen_ai.output.messages is not a list")
    if system:
        text = system if isinstance(system, str) else "".join(
            str(p.get("content", "")) for p in system if isinstance(p, dict) and p.get("type", "text") == "text")
        call.messages.append(c.message("system", text))
    for m in inputs:
        if not isinstance(m, dict):
            raise Malformed("gen_ai.input.messages holds a message that is not an object")
        call.messages.append(_parts_message(m.get("role"), m.get("parts", m.get("content"))))
    if outputs:
        first = outputs[0] if isinstance(outputs[0], dict) else {}
        c.output_from_message(call, _parts_message("assistant", first.get("parts", first.get("content"))))
        call.finish_reason = call.finish_reason or first.get("finish_reason")


_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(.+)$")


def _indexed_layout(call: Call, attributes: dict) -> None:
    turns: dict[tuple[str, int], dict] = {}
    for key in list(attributes):
        found = _INDEXED.match(key)
        if found:
            turns.setdefault((found[1], int(found[2])), {})[found[3]] = attributes.pop(key)
    for (side, _), fields in sorted(turns.items(), key=lambda item: (item[0][0] != "prompt", item[0][1])):
        calls = []
        for k in sorted({int(m[1]) for f in fields if (m := re.match(r"tool_calls\.(\d+)\.", f))}):
            calls.append(c.tool_call(fields.get(f"tool_calls.{k}.name"), fields.get(f"tool_calls.{k}.arguments"),
                                     fields.get(f"tool_calls.{k}.id")))
        content = fields.get("content")
        if isinstance(content, str) and content.startswith("[") and side == "prompt":
            try:  # OpenLLMetry writes a list of content parts as JSON text
                content = c.text_of(json.loads(content))
            except ValueError:
                pass
        turn = c.message(fields.get("role") or ("user" if side == "prompt" else "assistant"), content,
                         calls or None, fields.get("tool_call_id"))
        if side == "prompt":
            call.messages.append(turn)
        elif call.output_text is None and call.output_calls is None:
            c.output_from_message(call, turn)
            call.finish_reason = call.finish_reason or fields.get("finish_reason")
    functions: dict[int, dict] = {}
    for key in list(attributes):
        found = re.match(r"^llm\.request\.functions\.(\d+)\.(name|description|parameters)$", key)
        if found:
            functions.setdefault(int(found[1]), {})[found[2]] = attributes.pop(key)
    if functions:
        call.tools = []
        for _, f in sorted(functions.items()):
            parameters = f.get("parameters")
            if isinstance(parameters, str):
                try:
                    parameters = json.loads(parameters)
                except ValueError:
                    raise Malformed("llm.request.functions.N.parameters is not valid JSON") from None
            call.tools.append({"type": "function", "function": {
                "name": f.get("name"), "description": f.get("description"), "parameters": parameters}})
    for name in ("llm.usage.total_tokens", "llm.is_streaming"):
        if name in attributes:
            call.parameters[name.rsplit(".", 1)[1]] = attributes.pop(name)


_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_content(attributes: dict):
    """An event's message: its `gen_ai.event.content` JSON, else its content attribute."""
    if "gen_ai.event.content" in attributes:
        try:
            return json.loads(attributes["gen_ai.event.content"])
        except (TypeError, ValueError):
            raise Malformed("gen_ai.event.content is not valid JSON") from None
    return dict(attributes)


def _event_layout(call: Call, events: list[dict]) -> None:
    for event in events:
        name = event["name"]
        if name in _EVENT_ROLES:
            body = _event_content(event["attributes"])
            call.messages.append(c.openai_messages([{"role": body.get("role") or _EVENT_ROLES[name], **body}],
                                                   name)[0])
        elif name == "gen_ai.choice" and call.output_text is None and call.output_calls is None:
            body = _event_content(event["attributes"])
            answer = body.get("message", body)
            if isinstance(answer, str):
                try:
                    answer = json.loads(answer)
                except ValueError:
                    answer = {"content": answer}
            c.output_from_message(call, c.openai_messages([{"role": "assistant", **answer}], name)[0])
            call.finish_reason = call.finish_reason or body.get("finish_reason")
        elif name == "gen_ai.content.prompt":
            prompt = _event_content({"gen_ai.event.content": event["attributes"].get("gen_ai.prompt", "[]")})
            call.messages.extend(c.openai_messages(prompt, "gen_ai.prompt"))
        elif name == "gen_ai.content.completion":
            completion = _event_content({"gen_ai.event.content": event["attributes"].get("gen_ai.completion", "[]")})
            answers = c.openai_messages(completion, "gen_ai.completion")
            if answers:
                c.output_from_message(call, answers[0])


# --- OpenInference -------------------------------------------------------------------------

def _indexed(attributes: dict, prefix: str) -> list[dict]:
    """`prefix.N.rest` attributes as a list of {rest: value}, taken out of attributes."""
    found: dict[int, dict] = {}
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.+)$")
    for key in list(attributes):
        match = pattern.match(key)
        if match:
            found.setdefault(int(match[1]), {})[match[2]] = attributes.pop(key)
    return [fields for _, fields in sorted(found.items())]


def _openinference_message(fields: dict) -> dict:
    calls = []
    for k in sorted({int(m[1]) for f in fields if (m := re.match(r"message\.tool_calls\.(\d+)\.", f))}):
        base = f"message.tool_calls.{k}.tool_call"
        calls.append(c.tool_call(fields.get(f"{base}.function.name"), fields.get(f"{base}.function.arguments"),
                                 fields.get(f"{base}.id")))
    content = fields.get("message.content")
    if content is None:
        parts = sorted((int(m[1]), v) for f, v in fields.items()
                       if (m := re.match(r"message\.contents\.(\d+)\.message_content\.text$", f)))
        content = "".join(str(v) for _, v in parts) if parts else None
    return c.message(fields.get("message.role"), content, calls or None, fields.get("message.tool_call_id"),
                     fields.get("message.name"))


def _openinference(attributes: dict) -> Call:
    call = Call(source_key="", format="openinference")
    attributes.pop("openinference.span.kind")
    call.operation = "chat"
    call.provider = _pop_first(attributes, "llm.provider", "llm.system")
    call.model_requested = call.model_reported = attributes.pop("llm.model_name", None)
    parameters = _loads(attributes, "llm.invocation_parameters", "expected an object")
    if parameters is not None and not isinstance(parameters, dict):
        raise Malformed("llm.invocation_parameters is not an object")
    call.parameters = parameters or {}
    if call.parameters.get("model"):
        call.model_requested = call.parameters.pop("model")
    call.messages = [_openinference_message(f) for f in _indexed(attributes, "llm.input_messages")]
    outputs = [_openinference_message(f) for f in _indexed(attributes, "llm.output_messages")]
    if outputs:
        c.output_from_message(call, outputs[0])
    elif isinstance(attributes.get("output.value"), str) and attributes.get("output.mime_type") != "application/json":
        call.output_text = attributes["output.value"]
    tools = []
    for fields in _indexed(attributes, "llm.tools"):
        schema = fields.get("tool.json_schema")
        try:
            tools.append(json.loads(schema) if isinstance(schema, str) else schema)
        except ValueError:
            raise Malformed("llm.tools.N.tool.json_schema is not valid JSON") from None
    call.tools = tools or None
    call.input_tokens = c.as_int(attributes.pop("llm.token_count.prompt", None))
    call.output_tokens = c.as_int(attributes.pop("llm.token_count.completion", None))
    attributes.pop("llm.token_count.total", None)
    call.cost_usd = c.as_float(attributes.pop("llm.cost.total", None))
    call.prompt_template = attributes.pop("llm.prompt_template.template", None)
    call.prompt_version = attributes.pop("llm.prompt_template.version", None)
    variables = _loads(attributes, "llm.prompt_template.variables", "expected an object")
    call.prompt_variables = variables if isinstance(variables, dict) else None
    for kept in ("input.value", "output.value"):  # the messages say it already
        if call.messages or call.output_text is not None:
            attributes.pop(kept, None)
    call.attributes = attributes
    return call
