"""Provider batch APIs: a round of samples sent as one batch, at the provider's batch price.

OpenAI's Batch API, which Azure OpenAI and many self-hosted OpenAI-compatible servers
also speak: the requests go up as a JSONL file (`POST /v1/files`, purpose "batch"), a
batch is created over it (`POST /v1/batches`, endpoint /v1/chat/completions, a 24 h
window), its status is polled (`GET /v1/batches/{id}`: validating, in_progress,
finalizing, then completed, failed, expired or cancelled, with request counts), and its
output and error files are read (`GET /v1/files/{id}/content`). Through the openai SDK
(the well-kept client of exactly these endpoints); litellm's batch functions add nothing
for an OpenAI-compatible server. Anthropic's Message Batches have their own shape
(core/models/anthropic_batch.py), as do Google's Gemini API batches
(core/models/gemini_batch.py), and Together's differs in a few words
(core/models/together_batch.py); each function here speaks to the endpoint's provider.

The price: the model's batch prices in litellm's price map where it has them
(`input_cost_per_token_batches`, `output_cost_per_token_batches`), else the batch discount
OpenAI, Anthropic and Google document alike, half the live price of the same tokens
(`DISCOUNT`), said as such wherever a batch cost is shown (Endpoint.batch_cost_usd).
"""

from __future__ import annotations

import json

from core.config import SpreadError
from core.models import anthropic_batch, gemini_batch, local_llm, reply, together_batch
from core.prompts import shapes

DISCOUNT = 0.5  # 50% of the live price: OpenAI's, Anthropic's and Google's batch APIs all document it
DISCOUNT_NOTE = ("batch price: the model's batch prices in litellm's price map, else half the live price "
                 "(the documented batch discount of OpenAI, Anthropic and Google; Together's is up to half)")
WINDOW = "24h"
DONE = ("completed", "failed", "expired", "cancelled")


def _anthropic(call) -> bool:
    return anthropic_batch.speaks(call)


def _gemini(call) -> bool:
    return gemini_batch.speaks(call)


def supports(call) -> bool:
    """Whether the endpoint's provider has a batch API Spread speaks: an OpenAI-compatible
    chat endpoint (an `openai/` litellm id, or an OpenAI model), an Anthropic, Gemini API or
    Together model, one deployment."""
    model = call.model
    if call.members or local_llm.is_local(model):
        return False
    return (_anthropic(call) or _gemini(call) or together_batch.speaks(call) or model.startswith("openai/")
            or ("/" not in model and call.api_base is None))


def check(spec) -> None:
    """Refuse a batch run whose endpoint has no batch API, naming it, or whose wordings its
    batch API cannot carry, before anything is written."""
    for model in spec.models:
        call = spec.call_for(model)
        if not supports(call):
            raise SpreadError(f"--batch: endpoint {model!r} has no provider batch API Spread speaks "
                              "(an OpenAI-compatible server: /v1/files and /v1/batches; Anthropic's Message "
                              "Batches; the Gemini API's batch mode; Together's Batch API); run it live", "models")
        if _gemini(call) and gemini_batch.untranslatable(call):
            raise SpreadError(f"--batch: endpoint {model!r}: its parameters "
                              f"{', '.join(gemini_batch.untranslatable(call))} have no place in a Gemini batch "
                              "request; run it live (no --batch)", "models")
        provider = "Anthropic" if _anthropic(call) else "Gemini" if _gemini(call) else None
        for variant in spec.all_variants() if provider else ():
            why = _not_text_only(variant, provider)
            if why:
                raise SpreadError(f"--batch: endpoint {model!r}: {why}", "models")


def _not_text_only(variant, provider: str) -> str | None:
    """Why a wording cannot go in the batch of a provider whose batch requests Spread writes
    in the provider's own shape for text prompts only (Anthropic, Gemini), or None."""
    if variant.tools or variant.tool_choice or variant.response_format:
        return f"tools and response formats are sent live to {provider} models (no --batch)"
    if any(m.get("role") not in ("system", "user", "assistant") for m in variant.messages or []):
        return f"a conversation with tool turns is sent live to {provider} models (no --batch)"
    return None


def served(call) -> str:
    """The model name the server knows: the litellm id without its provider prefix."""
    if together_batch.speaks(call):
        return together_batch.served(call)
    if _gemini(call):
        return gemini_batch.served(call)
    return call.model.split("/", 1)[1] if call.model.startswith("openai/") else call.model


def line(custom_id: str, call, messages: list[dict], *, temperature: float, max_tokens: int | None,
         seed: int | None, top_p: float | None, shape: dict) -> dict:
    """One request of the batch (Anthropic's take no seed: it has none)."""
    if _anthropic(call):
        return anthropic_batch.line(custom_id, call, messages, temperature=temperature, max_tokens=max_tokens,
                                    top_p=top_p)
    if _gemini(call):
        return gemini_batch.line(custom_id, call, messages, temperature=temperature, max_tokens=max_tokens,
                                 seed=seed, top_p=top_p)
    body = {"model": served(call), "messages": messages, "temperature": temperature, **(call.params or {}), **shape}
    for key, value in (("max_tokens", max_tokens), ("seed", seed), ("top_p", top_p)):
        if value is not None:
            body[key] = value
    if together_batch.speaks(call):  # Together's lines name no method or url for chat completions
        return {"custom_id": custom_id, "body": body}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def _client(call):
    import openai

    return openai.AsyncOpenAI(base_url=call.api_base, api_key=call.api_key or "none", max_retries=3,
                              timeout=call.timeout_s)


async def submit(call, lines: list[dict]) -> tuple[str, str]:
    """Upload the requests and create the batch: (batch id, input file id)."""
    if _anthropic(call):
        return await anthropic_batch.submit(call, lines)
    if _gemini(call):
        return await gemini_batch.submit(call, lines)
    data = ("\n".join(json.dumps(item, ensure_ascii=False) for item in lines) + "\n").encode()
    if together_batch.speaks(call):
        return await together_batch.submit(call, data)
    client = _client(call)
    try:
        uploaded = await client.files.create(file=("spread-batch.jsonl", data), purpose="batch")
        batch = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                            completion_window=WINDOW, metadata={"by": "spread"})
        return batch.id, uploaded.id
    finally:
        await client.close()


async def status(call, batch_id: str) -> dict:
    """The batch's status and counts, and its output and error files once it has them."""
    if _anthropic(call):
        return await anthropic_batch.status(call, batch_id) | {"batch_id": batch_id}
    if _gemini(call):
        return await gemini_batch.status(call, batch_id) | {"batch_id": batch_id}
    if together_batch.speaks(call):
        return await together_batch.status(call, batch_id) | {"batch_id": batch_id}
    client = _client(call)
    try:
        batch = await client.batches.retrieve(batch_id)
    finally:
        await client.close()
    counts = batch.request_counts
    return {"status": batch.status, "total": counts.total if counts else None,
            "completed": counts.completed if counts else None, "failed": counts.failed if counts else None,
            "output_file_id": batch.output_file_id, "error_file_id": batch.error_file_id}


async def cancel(call, batch_id: str) -> None:
    if _anthropic(call):
        return await anthropic_batch.cancel(call, batch_id)
    if _gemini(call):
        return await gemini_batch.cancel(call, batch_id)
    if together_batch.speaks(call):
        return await together_batch.cancel(call, batch_id)
    client = _client(call)
    try:
        await client.batches.cancel(batch_id)
    finally:
        await client.close()


async def results(call, found: dict) -> dict[str, dict]:
    """custom id -> {"body": a chat completion} or {"error": (type, message)}, from the output
    and error files of a finished batch."""
    if _anthropic(call):
        return await anthropic_batch.results(call, found, found["batch_id"])
    if _gemini(call):
        return gemini_batch.results(found)
    out: dict[str, dict] = {}
    for file_id in (found.get("output_file_id"), found.get("error_file_id")):
        if not file_id:
            continue
        for text in (await _file_text(call, file_id)).splitlines():
            if text.strip():
                item = json.loads(text)
                out[item["custom_id"]] = _result(item)
    return out


async def _file_text(call, file_id: str) -> str:
    if together_batch.speaks(call):
        return await together_batch.file_text(call, file_id)
    client = _client(call)
    try:
        return (await client.files.content(file_id)).text
    finally:
        await client.close()


def _result(item: dict) -> dict:
    """One line of an output or error file (`response: {status_code, body}` or `error`):
    {"body": a chat completion} or {"error": (type, message)}."""
    response, error = item.get("response"), item.get("error")
    if response and response.get("status_code") == 200 and not error:
        return {"body": response.get("body") or {}}
    error = error if isinstance(error, dict) else {"message": error} if error else (
        (response or {}).get("body", {}).get("error") or {})
    code = str(error.get("code") or "failed")
    return {"error": (code if code.startswith("batch_") else f"batch_{code}",
                      str(error.get("message") or "failed in the batch")[:500])}


def answer(body: dict, response_format: dict | None) -> dict:
    """A response row's fields from a chat completion of the batch (or an Anthropic message, or
    a Gemini `generateContent` response)."""
    if body.get("type") == "message":
        return anthropic_batch.answer(body)
    if "candidates" in body:
        return gemini_batch.answer(body)
    choice = (body.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    text = message.get("content") or ""
    usage = body.get("usage") or {}
    calls = reply.message_tool_calls(message)
    return {"text": text, "finish_reason": choice.get("finish_reason"),
            "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
            "provider_model": body.get("model"), "system_fingerprint": body.get("system_fingerprint"), "attempts": 1, "latency_ms": None, "ttft_ms": None,
            **shapes.answer_fields(text, calls, response_format)}
