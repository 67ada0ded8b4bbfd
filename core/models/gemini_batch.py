"""Google's Gemini API batch mode: the same round of samples as core/models/batch.py, in
Gemini's shape.

The requests go up in one call (`POST /v1beta/models/{model}:batchGenerateContent`, the
batch's requests inline, each a `generateContent` request with a metadata key); the
answer is a long-running operation named `batches/{id}`, read back with
`GET /v1beta/batches/{id}` (its metadata's `state`: BATCH_STATE_PENDING, RUNNING, then
SUCCEEDED, FAILED, CANCELLED or EXPIRED, with `batchStats` counts given as strings) and,
once done, carrying every answer inline (`response.inlinedResponses.inlinedResponses`:
a `generateContent` response or an error, each with its request's key). A cancel is
`POST /v1beta/batches/{id}:cancel`. Spoken over aiohttp, as Anthropic's batches are:
Google's SDK is not a dependency, and litellm's batch functions reach Gemini only through
Vertex AI and a Cloud Storage bucket.

Inline requests only: Google takes up to 20 MB of them in one call, so a round larger than
that is refused with a clear line (`MAX_INLINE_BYTES`) before anything is sent, rather
than uploaded through the Files API. Text prompts only, as for Anthropic: a wording with
tools or a response format, or a conversation with tool turns, is refused before
anything is written (core/models/batch.py, `check`), so a batch never sends a request
Gemini would take differently from the live call.
"""

from __future__ import annotations

import json
import os

from core.config import SpreadError
from core.prompts import shapes

API = "https://generativelanguage.googleapis.com"
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")  # litellm's name, then Google's SDK's
MAX_INLINE_BYTES = 20_000_000  # Google's limit on a batch's inline requests
STATUS = {"BATCH_STATE_PENDING": "validating", "BATCH_STATE_RUNNING": "in_progress",
          "BATCH_STATE_SUCCEEDED": "completed", "BATCH_STATE_FAILED": "failed",
          "BATCH_STATE_CANCELLED": "cancelled", "BATCH_STATE_EXPIRED": "expired"}
# An endpoint's own parameters (OpenAI's names, as the live route takes them) in Gemini's
# generation config; any other is refused for a batch (`untranslatable`), never sent as is.
PARAMS = {"top_k": "topK", "stop": "stopSequences", "presence_penalty": "presencePenalty",
          "frequency_penalty": "frequencyPenalty", "max_completion_tokens": "maxOutputTokens"}
# Gemini's end of an answer in OpenAI's words, as the live route reports it.
FINISH = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
          "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter"}


def speaks(call) -> bool:
    """A Gemini API model: a `gemini/…` litellm id."""
    return call.model.startswith("gemini/")


def served(call) -> str:
    return call.model.split("/", 1)[1]


def untranslatable(call) -> list[str]:
    """The endpoint's parameters that have no place in Gemini's generation config."""
    return sorted(set(call.params or {}) - set(PARAMS))


def _key(call) -> str:
    return call.api_key or next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), "")


def line(custom_id: str, call, messages: list[dict], *, temperature: float, max_tokens: int | None,
         seed: int | None, top_p: float | None) -> dict:
    """One request: the system messages become Gemini's `systemInstruction`, the turns its
    `contents` (an assistant turn is Gemini's role "model")."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m.get("content"))
    contents = [{"role": "model" if m["role"] == "assistant" else "user", "parts": [{"text": m.get("content") or ""}]}
                for m in messages if m["role"] != "system"]
    config = {"temperature": temperature, "candidateCount": 1}
    for key, value in (("maxOutputTokens", max_tokens), ("seed", seed), ("topP", top_p)):
        if value is not None:
            config[key] = value
    for name, value in (call.params or {}).items():
        config[PARAMS[name]] = [value] if name == "stop" and isinstance(value, str) else value
    request = {"contents": contents, "generationConfig": config}
    if system:
        request["systemInstruction"] = {"parts": [{"text": system}]}
    return {"request": request, "metadata": {"key": custom_id}}


async def _request(call, method: str, path: str, body: dict | None = None) -> dict:
    import aiohttp

    key = _key(call)
    url = (call.api_base or API).rstrip("/") + path
    timeout = aiohttp.ClientTimeout(total=call.timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.request(method, url, json=body, headers={"x-goog-api-key": key}) as response:
            text = await response.text()
    if response.status >= 400:
        try:
            message = json.loads(text).get("error", {}).get("message") or text
        except (ValueError, AttributeError):
            message = text
        from core.models import llm

        said = llm.error_message(RuntimeError(str(message)[:300]), [key, *call.secrets()])
        raise SpreadError(f"Gemini batch API: HTTP {response.status}: {said}")
    return json.loads(text) if text.strip() else {}


async def submit(call, lines: list[dict]) -> tuple[str, str]:
    body = {"batch": {"display_name": "spread", "input_config": {"requests": {"requests": lines}}}}
    size = len(json.dumps(body))
    if size > MAX_INLINE_BYTES:
        raise SpreadError(f"--batch: this round's {len(lines)} requests to {call.model} are {size / 1e6:.1f} MB, "
                          f"above the {MAX_INLINE_BYTES / 1e6:.0f} MB Gemini takes inline in one batch: "
                          "sample fewer cells per run, or run it live")
    created = await _request(call, "POST", f"/v1beta/models/{served(call)}:batchGenerateContent", body)
    return created["name"], ""  # no input file: the requests travel in the call itself


def _status(operation: dict) -> dict:
    batch = operation.get("metadata") or {}
    state = batch.get("state") or ("BATCH_STATE_SUCCEEDED" if operation.get("done") else "BATCH_STATE_PENDING")
    status = STATUS.get(state, "in_progress")
    if operation.get("done") and status not in ("completed", "failed", "cancelled", "expired"):
        status = "failed" if operation.get("error") else "completed"
    # Counts arrive as strings (int64), and a zero is left out (proto3's JSON): with a total,
    # a missing count is 0; with no stats at all they are unknown, and counted from the answers.
    stats = batch.get("batchStats") or {}
    counted = "requestCount" in stats
    return {"status": status, "total": int(stats["requestCount"]) if counted else None,
            "completed": int(stats.get("successfulRequestCount", 0)) if counted else None,
            "failed": int(stats.get("failedRequestCount", 0)) if counted else None, "operation": operation}


async def status(call, batch_id: str) -> dict:
    return _status(await _request(call, "GET", f"/v1beta/{batch_id}"))


async def cancel(call, batch_id: str) -> None:
    await _request(call, "POST", f"/v1beta/{batch_id}:cancel")


def results(found: dict) -> dict[str, dict]:
    """custom id -> {"body": a generateContent response} or {"error": (type, message)}, from
    the finished operation read by `status`; a request with no entry (the batch was
    cancelled or failed before it ran) leaves its cell to the caller."""
    operation = found.get("operation") or {}
    inlined = ((operation.get("response") or {}).get("inlinedResponses") or {}).get("inlinedResponses") or []
    out: dict[str, dict] = {}
    for item in inlined:
        key = (item.get("metadata") or {}).get("key")
        if not key:
            continue
        if item.get("error"):  # a google.rpc.Status: a numeric code and a message
            error = item["error"]
            code = f"code {error['code']}: " if error.get("code") is not None else ""
            out[key] = {"error": ("batch_failed", f"{code}{error.get('message') or 'failed in the batch'}"[:500])}
        else:
            out[key] = {"body": item.get("response") or {}}
    return out


def answer(response: dict) -> dict:
    """A response row's fields from a `generateContent` response."""
    candidate = (response.get("candidates") or [{}])[0]
    text = "".join(part.get("text") or "" for part in (candidate.get("content") or {}).get("parts") or []
                   if not part.get("thought"))
    usage = response.get("usageMetadata") or {}
    reason = candidate.get("finishReason")
    return {"text": text, "finish_reason": FINISH.get(reason, reason.lower() if reason else None),
            "prompt_tokens": usage.get("promptTokenCount"), "completion_tokens": usage.get("candidatesTokenCount"),
            "provider_model": response.get("modelVersion"), "system_fingerprint": None, "attempts": 1,
            "latency_ms": None, "ttft_ms": None, **shapes.answer_fields(text, None, None)}
