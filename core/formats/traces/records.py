"""Langfuse exports and OpenAI chat-completion logs: one record per LLM call.

- **Langfuse**: observations exported from the UI or the public API (`/api/public/
  observations`), as a JSON array (or `{"data": [...]}`), JSON lines or CSV (nested
  values as JSON text). Only `GENERATION` observations are LLM calls; the others (SPAN,
  EVENT, …) are skipped and counted. Field names are read in camelCase or snake_case.
- **OpenAI logs**: JSON lines, each `{"request": <chat.completions.create body>,
  "response": <ChatCompletion>}`; a batch output line's `{"response": {"body": …}}` and a
  stored completion (`{"id", "model", "messages"|"request", "choices"}`) are read too.
"""

from __future__ import annotations

import json

from core.formats.traces import calls as c
from core.formats.traces.calls import Call, Malformed

OPENAI_PARAMETERS = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "n", "seed", "stop",
                     "frequency_penalty", "presence_penalty", "response_format", "tool_choice", "logprobs",
                     "reasoning_effort", "stream")


def _get(record: dict, camel: str):
    if camel in record:
        return record[camel]
    return record.get("".join("_" + ch.lower() if ch.isupper() else ch for ch in camel))


def _maybe_json(value):
    """CSV cells hold nested values as JSON text."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def is_langfuse(record) -> bool:
    return isinstance(record, dict) and "type" in record and ("traceId" in record or "trace_id" in record)


def is_openai(record) -> bool:
    return isinstance(record, dict) and ("request" in record and "response" in record
                                         or "choices" in record and ("messages" in record or "request" in record))


def langfuse_call(record: dict) -> Call | None:
    """A Langfuse observation as a call, None when it is not a GENERATION."""
    if not is_langfuse(record):
        raise Malformed("not a Langfuse observation (no type and traceId)")
    if str(record.get("type", "")).upper() != "GENERATION":
        return None
    observation_id = record.get("id")
    if not observation_id:
        raise Malformed("a GENERATION without an id")
    call = Call(source_key=f"langfuse:{observation_id}", format="langfuse", operation="chat")
    call.trace_id, call.span_id = str(_get(record, "traceId")), str(observation_id)
    call.parent_span_id = _get(record, "parentObservationId")
    call.started_at, call.ended_at = c.iso(_get(record, "startTime")), c.iso(_get(record, "endTime"))
    first_token = c.iso(_get(record, "completionStartTime"))
    call.model_requested = call.model_reported = record.get("model") or None
    parameters = _maybe_json(_get(record, "modelParameters"))
    call.parameters = parameters if isinstance(parameters, dict) else {}
    inputs = _maybe_json(record.get("input"))
    if isinstance(inputs, str):
        call.messages = [c.message("user", inputs)]
    elif inputs is not None:
        if isinstance(inputs, dict) and "tools" in inputs:
            call.tools = inputs["tools"]
        call.messages = c.openai_messages(inputs, "input")
    output = _maybe_json(record.get("output"))
    if isinstance(output, str):
        call.output_text = output
    elif isinstance(output, dict):
        if "choices" in output:
            output = (output["choices"] or [{}])[0].get("message") or {}
        c.output_from_message(call, c.openai_messages([{"role": "assistant", **output}], "output")[0])
    usage = _maybe_json(_get(record, "usageDetails")) or _maybe_json(record.get("usage")) or {}
    if isinstance(usage, dict):
        call.input_tokens = c.as_int(usage.get("input", usage.get("promptTokens", usage.get("prompt_tokens"))))
        call.output_tokens = c.as_int(usage.get("output", usage.get("completionTokens",
                                                                    usage.get("completion_tokens"))))
    cost = _maybe_json(_get(record, "costDetails"))
    total = cost.get("total") if isinstance(cost, dict) else None
    call.cost_usd = c.as_float(total if total is not None else _get(record, "calculatedTotalCost"))
    call.prompt_name, call.prompt_version = _get(record, "promptName"), _get(record, "promptVersion")
    if call.started_at and call.ended_at:
        call.latency_ms = _ms_between(call.started_at, call.ended_at)
    elif _get(record, "latency") is not None:
        call.latency_ms = c.as_float(_get(record, "latency")) * 1000  # Langfuse exports seconds
    if call.started_at and first_token:
        call.ttft_ms = _ms_between(call.started_at, first_token)
    if str(record.get("level", "")).upper() == "ERROR":
        call.status, call.error_message = "error", _get(record, "statusMessage")
    known = {"id", "type", "traceId", "trace_id", "startTime", "start_time", "endTime", "end_time",
             "completionStartTime", "completion_start_time", "model", "modelParameters", "model_parameters",
             "input", "output", "usage", "usageDetails", "usage_details", "costDetails", "cost_details",
             "calculatedTotalCost", "calculated_total_cost", "promptName", "prompt_name", "promptVersion",
             "prompt_version", "latency", "parentObservationId", "parent_observation_id"}
    call.attributes = {k: _maybe_json(v) for k, v in record.items() if k not in known and v not in (None, "")}
    metadata = call.attributes.get("metadata")
    if isinstance(metadata, dict):
        call.service = metadata.get("service") or metadata.get("service.name")
    return call


def _ms_between(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000


def openai_call(record: dict, key: str) -> Call:
    """One line of an OpenAI chat-completion log (`key`: the line's hash)."""
    if not is_openai(record):
        raise Malformed("not an OpenAI chat-completion log line (expected request and response)")
    request = record.get("request") or {"model": record.get("model"), "messages": record.get("messages")}
    if isinstance(request, dict) and "body" in request and "messages" not in request:
        request = request["body"]  # a batch input line
    response = record.get("response") if "response" in record else record
    if isinstance(response, dict) and "body" in response and "choices" not in response:
        if response.get("status_code", 200) >= 400:
            error = (response.get("body") or {}).get("error") or {}
            response = {"error": error}
        else:
            response = response["body"]
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        raise Malformed("the request has no messages list")
    if not isinstance(response, dict):
        raise Malformed("the response is not an object")
    call = Call(source_key=key, format="openai-jsonl", operation="chat", provider="openai")
    call.messages = c.openai_messages(request["messages"], "request.messages")
    call.model_requested = request.get("model")
    call.tools = request.get("tools") or (request.get("functions") and [
        {"type": "function", "function": f} for f in request["functions"]]) or None
    call.parameters = {k: request[k] for k in OPENAI_PARAMETERS if k in request}
    if "error" in response and response["error"]:
        error = response["error"]
        call.status = "error"
        call.error_message = error.get("message") if isinstance(error, dict) else str(error)
    else:
        choices = response.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise Malformed("the response has no choices")
        answer = choices[0].get("message") or {}
        c.output_from_message(call, c.openai_messages([{"role": "assistant", **answer}], "response")[0])
        call.finish_reason = choices[0].get("finish_reason")
        if len(choices) > 1:
            call.attributes["choices"] = len(choices)
    call.model_reported = response.get("model")
    usage = response.get("usage") or {}
    call.input_tokens = c.as_int(usage.get("prompt_tokens"))
    call.output_tokens = c.as_int(usage.get("completion_tokens"))
    created = response.get("created") or record.get("created_at") or record.get("timestamp")
    call.started_at = c.iso(created) if created else None
    for name in ("latency_ms", "duration_ms"):
        if record.get(name) is not None:
            call.latency_ms = c.as_float(record[name])
    call.trace_id = response.get("id")
    if record.get("custom_id"):
        call.attributes["custom_id"] = record["custom_id"]
    if isinstance(request.get("metadata"), dict):
        call.attributes["metadata"] = request["metadata"]
        call.service = request["metadata"].get("service")
    if response.get("system_fingerprint"):
        call.attributes["system_fingerprint"] = response["system_fingerprint"]
    return call
