"""One sample of one cell: call the model, retry what can recover, return the row to store.

This is the unit of work of the engine, run in the engine's own process or in a sampler
process (core/run/workers.py). It holds no database connection and no limit: the
engine decides when a sample may start, and stores what it returns.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from dataclasses import dataclass

from core.run import llm, shapes
from core.run.plan import RunSpec


@dataclass
class Job:
    """One sample to take: the cell (variant, input, model, temperature, sample) and its messages."""

    run_id: int
    cell: tuple
    messages: list[dict]


async def sample(spec: RunSpec, job: Job, secrets: list[str], cancel: threading.Event, *,
                 pace=None) -> dict | None:
    """The row for one sample: an answer, or an error row with its type once retries are
    spent (or not worth it, or the run is cancelled). Cost is not set here: the engine
    prices rows from their usage. `pace(model)`, when given, is awaited before a retry (a
    retry is a request too: it keeps to the endpoint's requests per minute)."""
    variant, input_idx, model, temperature, sample_idx = job.cell
    seed = spec.seed_for(sample_idx)
    call = spec.call_for(model)  # the model's endpoint: server, key, parameters, timeout
    variant_spec = spec.all_variants()[variant]
    shape = variant_spec.request()  # tools, tool choice, response format: sent as asked
    row = {"run_id": job.run_id, "variant": variant, "input": input_idx, "model": model,
           "temperature": temperature, "sample_idx": sample_idx, "seed": seed}
    for attempt in range(1, spec.max_attempts + 1):
        if attempt > 1 and pace is not None:
            await pace(model)
        start = time.perf_counter()
        try:
            # A stream that stalls after its first bytes escapes the HTTP timeout. (A timeout
            # block, not wait_for: no extra task per call.)
            async with asyncio.timeout(call.timeout_s * 1.5):
                out = await llm.sample(
                    call.model, job.messages, temperature=temperature, max_tokens=spec.max_tokens,
                    seed=seed, top_p=spec.top_p, stream=spec.stream, **call.options(), **shape,
                )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # every failure becomes a typed error row, never lost
            error_type, retry_after = llm.classify(error)
            if error_type in llm.RETRYABLE and attempt < spec.max_attempts and not cancel.is_set():
                await asyncio.sleep(backoff_s(spec, attempt, retry_after))
                continue
            return row | {"attempts": attempt, "error_type": error_type,
                          "error_message": llm.error_message(error, secrets),
                          "latency_ms": (time.perf_counter() - start) * 1000}
        return row | {
            "text": out.text, "finish_reason": out.finish_reason,
            "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
            "latency_ms": (time.perf_counter() - start) * 1000, "ttft_ms": out.ttft_ms,
            "attempts": attempt, "provider_model": out.provider_model, "deployment": out.deployment,
            **shapes.answer_fields(out.text, out.tool_calls, variant_spec.response_format),
        }
    return None


def backoff_s(spec: RunSpec, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After wins when longer."""
    ceiling = min(spec.backoff_max_s, spec.backoff_base_s * 2 ** (attempt - 1))
    wait = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        wait = max(wait, min(retry_after, spec.backoff_max_s))
    return wait
