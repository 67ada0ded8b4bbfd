"""Anthropic's Message Batches: the same round of samples as core/models/batch.py, in
Anthropic's shape.

The requests go up in one call (`POST /v1/messages/batches`, each request a custom id and
the parameters of one `POST /v1/messages`); the batch is read back
(`GET /v1/messages/batches/{id}`: `processing_status` in_progress, canceling, then ended,
with counts of requests succeeded, errored, canceled and expired) and, once ended, its
results are one JSON line per request (`GET …/results`). Spoken over aiohttp, as the
direct route speaks OpenAI's chat API: litellm's batch functions cover OpenAI's file-based
batches, and Anthropic's SDK is not a dependency.

Text prompts only: a wording with tools or a response format is refused before anything
is written (core/models/batch.py, `check`), so a batch never sends a request Anthropic
would take differently from the live call.
"""

from __future__ import annotations

import json
import os

from core.config import SpreadError
from core.prompts import shapes

API = "https://api.anthropic.com"
VERSION = "2023-06-01"  # the API version Anthropic documents for Message Batches
# Anthropic requires max_tokens; a plan without one asks for this many.
DEFAULT_MAX_TOKENS = 1024
# Anthropic's end of an answer in OpenAI's words, as the live route reports it.
FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def speaks(call) -> bool:
    """An Anthropic model: `anthropic/…`, or a bare `claude-…` id at Anthropic's own API."""
    return call.model.startswith("anthropic/") or (call.model.startswith("claude-") and call.api_base is None)


def served(call) -> str:
    return call.model.split("/", 1)[1] if call.model.startswith("anthropic/") else call.model


def line(custom_id: str, call, messages: list[dict], *, temperature: float, max_tokens: int | None,
         top_p: float | None) -> dict:
    """One request: the system messages become Anthropic's `system`, the turns its `messages`."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m.get("content"))
    turns = [{"role": m["role"], "content": m.get("content") or ""} for m in messages if m["role"] != "system"]
    params = {"model": served(call), "messages": turns, "max_tokens": max_tokens or DEFAULT_MAX_TOKENS,
              "temperature": temperature, **(call.params or {})}
    if system:
        params["system"] = system
    if top_p is not None:
        params["top_p"] = top_p
    return {"custom_id": custom_id, "params": params}


async def _request(call, method: str, path: str, body: dict | None = None, *, lines: bool = False):
    import aiohttp

    key = call.api_key or os.environ.get("ANTHROPIC_API_KEY") or ""
    headers = {"x-api-key": key, "anthropic-version": VERSION, "content-type": "application/json"}
    url = (call.api_base or API).rstrip("/") + path
    timeout = aiohttp.ClientTimeout(total=call.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.request(method, url, json=body, headers=headers) as response:
            text = await response.text()
    if response.status >= 400:
        try:
            message = json.loads(text).get("error", {}).get("message") or text
        except ValueError:
            message = text
        from core.models import llm

        said = llm.error_message(RuntimeError(str(message)[:300]), [key, *call.secrets()])
        raise SpreadError(f"Anthropic batch API: HTTP {response.status}: {said}")
    if lines:
        return [json.loads(item) for item in text.splitlines() if item.strip()]
    return json.loads(text)


async def submit(call, lines: list[dict]) -> tuple[str, str]:
    created = await _request(call, "POST", "/v1/messages/batches", {"requests": lines})
    return created["id"], ""  # no input file: the requests travel in the call itself


def _status(batch: dict, cancel_asked: bool) -> dict:
    counts = batch.get("request_counts") or {}
    ended = batch.get("processing_status") == "ended"
    status = (("cancelled" if counts.get("canceled") else "completed") if ended
              else "cancelling" if batch.get("processing_status") == "canceling" or cancel_asked else "in_progress")
    return {"status": status, "total": sum(int(v or 0) for v in counts.values()) or None,
            "completed": counts.get("succeeded"),
            "failed": sum(int(counts.get(k) or 0) for k in ("errored", "expired")),
            "results_url": batch.get("results_url")}


async def status(call, batch_id: str) -> dict:
    return _status(await _request(call, "GET", f"/v1/messages/batches/{batch_id}"), False)


async def cancel(call, batch_id: str) -> None:
    await _request(call, "POST", f"/v1/messages/batches/{batch_id}/cancel")


async def results(call, found: dict, batch_id: str) -> dict[str, dict]:
    """custom id -> {"body": the message} or {"error": (type, message)}; a request cancelled
    before it ran has no entry (its cell stays empty, for a resume)."""
    out: dict[str, dict] = {}
    for item in await _request(call, "GET", f"/v1/messages/batches/{batch_id}/results", lines=True):
        result = item.get("result") or {}
        kind = result.get("type")
        if kind == "succeeded":
            out[item["custom_id"]] = {"body": result.get("message") or {}}
        elif kind == "errored":
            error = (result.get("error") or {}).get("error") or result.get("error") or {}
            out[item["custom_id"]] = {"error": (f"batch_{error.get('type') or 'errored'}",
                                                str(error.get("message") or "failed in the batch")[:500])}
        elif kind == "expired":
            out[item["custom_id"]] = {"error": ("batch_expired", "no answer: the batch expired")}
    return out


def answer(message: dict) -> dict:
    """A response row's fields from an Anthropic message."""
    text = "".join(block.get("text") or "" for block in message.get("content") or [] if block.get("type") == "text")
    usage = message.get("usage") or {}
    return {"text": text, "finish_reason": FINISH.get(message.get("stop_reason"), message.get("stop_reason")),
            "prompt_tokens": usage.get("input_tokens"), "completion_tokens": usage.get("output_tokens"),
            "provider_model": message.get("model"), "system_fingerprint": None, "attempts": 1,
            "latency_ms": None, "ttft_ms": None, **shapes.answer_fields(text, None, None)}
