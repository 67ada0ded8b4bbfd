"""Rewordings of a prompt, written by a model, to run as variants.

Users phrase the same request in many ways; a prompt that only works in one wording is
fragile. `reword()` asks any litellm model for K rewordings; each keeps every `{{name}}`
placeholder of the original or is set aside with the reason. People then edit and
approve them before they run. The embedded models are tiny: they rewrite
poorly, and the Playground says so.
"""

from __future__ import annotations

import asyncio
import re

from core.config import SpreadError
from core.models import endpoints, limits, llm
from core.prompts import templates
from core.store import Store

MAX_REWORDINGS = 10
INSTRUCTION = (
    "Rewrite the prompt below in different words, as another person might ask the same thing. "
    "Keep its meaning, its language, and every placeholder in double braces exactly as written "
    "(for example {{{{country}}}}). Reply with the rewritten prompt only.\n\nPrompt:\n{prompt}"
)
_PREAMBLE = re.compile(r"^\s*(?:here(?:'s| is) (?:a |the )?(?:rewritten|reworded)[^:\n]*:|rewritten prompt:|prompt:)\s*",
                       re.IGNORECASE)


def clean(text: str) -> str:
    """The rewording without a model's preamble or quotes around it."""
    text = _PREAMBLE.sub("", (text or "").strip()).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return text


def reason_to_reject(original: str, candidate: str, seen: set[str]) -> str | None:
    if not candidate:
        return "empty"
    if candidate.strip().lower() in seen:
        return "same as the original or an earlier rewording"
    if set(templates.variables(candidate)) != set(templates.variables(original)):
        return "changes the placeholders"
    return None


async def reword(store: Store, prompt: str, k: int, model: str, *, api_base: str | None = None,
                 temperature: float = 1.0, max_tokens: int = 400, seed: int | None = None) -> dict:
    """{"rewordings": [...], "rejected": [{"text", "reason"}], "calls", "cost_usd"} — cost None when unknown."""
    if not prompt or not prompt.strip():
        raise SpreadError("write a prompt first", "prompt")
    if not 1 <= k <= MAX_REWORDINGS:
        raise SpreadError(f"ask for 1..{MAX_REWORDINGS} rewordings", "rewordings")
    endpoint = endpoints.resolve(store, model, api_base)  # a catalogue name, else a litellm id
    endpoints.check(endpoint)
    call = endpoints.how_to_call(endpoint)
    bucket = limits.bucket_for(endpoint)  # its requests-per-minute limit, shared with runs
    messages = [{"role": "user", "content": INSTRUCTION.format(prompt=prompt.strip())}]

    async def one(i: int):
        if bucket is not None:
            await bucket.take()
        return await llm.sample(call.model, messages, temperature=temperature, max_tokens=max_tokens,
                                seed=None if seed is None else seed + i, stream=False, **call.options())

    outs = await asyncio.gather(*(one(i) for i in range(k)), return_exceptions=True)
    accepted, rejected, cost = [], [], 0.0
    seen = {prompt.strip().lower()}
    for out in outs:
        if isinstance(out, BaseException):
            rejected.append({"text": "", "reason": llm.error_message(out, endpoints.secret_values([call]))})
            continue
        price = call.cost_usd(out.prompt_tokens, out.completion_tokens)
        cost = None if cost is None or price is None else cost + price
        candidate = clean(out.text)
        reason = reason_to_reject(prompt, candidate, seen)
        if reason:
            rejected.append({"text": candidate, "reason": reason})
        else:
            accepted.append(candidate)
            seen.add(candidate.lower())
    return {"rewordings": accepted, "rejected": rejected, "calls": k, "cost_usd": cost}
