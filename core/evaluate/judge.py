"""`llm-rubric`: a judge model grades an answer against a rubric.

The judge is itself an LLM, so it is sampled as often as asked, and its verdict is the
majority; the share of samples that agree with the majority is its self-consistency,
kept as the score, so a flaky judge is visible. Every call is counted with its cost
(None when the judge's price is unknown). A judge that cannot be reached gives no
verdict (passed = None), never a made-up one.
"""

from __future__ import annotations

import asyncio
import json
import re

from core.evaluate.checks import Check, Outcome
from core.models import endpoints, limits, llm
from core.store import Store

SYSTEM = (
    "You grade an answer against a rubric. Read the question, the answer and the rubric. "
    'Reply with one JSON object and nothing else: {"pass": true or false, "reason": "one short sentence"}.'
)
_VERDICT = re.compile(r'"pass"\s*:\s*(true|false)', re.IGNORECASE)
_WORD = re.compile(r"\b(PASS|FAIL)\b")


def prompt(rubric: str, question: str, answer: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"Question:\n{question}\n\nAnswer:\n{answer}\n\nRubric:\n{rubric}"}]


def verdict(text: str) -> tuple[bool | None, str]:
    """(pass, reason) from a judge's reply: its JSON, else a bare PASS / FAIL, else None."""
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
            if isinstance(data.get("pass"), bool):
                return data["pass"], str(data.get("reason") or "")
        except (json.JSONDecodeError, AttributeError):
            pass
    found = _VERDICT.search(text or "")
    if found:
        return found.group(1).lower() == "true", ""
    word = _WORD.search(text or "")
    if word:
        return word.group(1) == "PASS", ""
    return None, f"unreadable verdict: {' '.join((text or '').split())[:80]!r}"


async def grade(store: Store, check: Check, question: str, answer: str, *, api_base: str | None = None,
                limit: asyncio.Semaphore | None = None) -> Outcome:
    """Ask the judge `check.samples` times; the majority verdict, with its self-consistency."""
    limit = limit or asyncio.Semaphore(4)
    messages = prompt(str(check.value), question, answer)
    call = endpoints.how_to_call(endpoints.resolve(store, check.judge, api_base), 60.0)  # a catalogue name, else an id
    bucket = limits.bucket_for(call.endpoint)  # its requests-per-minute limit, shared with runs
    secrets = endpoints.secret_values([call])

    async def one(i: int):
        async with limit:
            if bucket is not None:
                await bucket.take()
            return await llm.sample(call.model, messages, temperature=0.0 if check.samples == 1 else 1.0,
                                    max_tokens=200, seed=i, stream=False, **call.options())

    replies = await asyncio.gather(*(one(i) for i in range(check.samples)), return_exceptions=True)
    votes, reasons, cost, failures = [], [], 0.0, []
    for reply in replies:
        if isinstance(reply, BaseException):
            failures.append(llm.error_message(reply, secrets))
            continue
        price = call.cost_usd(reply.prompt_tokens, reply.completion_tokens)
        cost = None if cost is None or price is None else cost + price
        passed, reason = verdict(reply.text)
        if passed is not None:
            votes.append(passed)
            reasons.append(reason)
        else:
            failures.append(reason)
    if not votes:
        return Outcome(None, None, f"the judge gave no verdict: {failures[0] if failures else 'no reply'}",
                       check.samples, cost)
    majority = votes.count(True) > len(votes) / 2
    agreeing = sum(v == majority for v in votes) / len(votes)
    reason = next((r for v, r in zip(votes, reasons) if v == majority and r), "")
    if len(votes) > 1:
        reason = f"{reason} (judge agreed with itself {agreeing:.0%} of {len(votes)} times)".strip()
    return Outcome(majority, round(agreeing, 4), reason, check.samples, cost)
