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

from core.models import llm
from core.prompts import shapes
from core.run.plan import Cell, RunSpec


@dataclass
class Job:
    """One sample to take: the cell (variant, input, model, temperature, sample) and its messages."""

    run_id: int
    cell: Cell
    messages: list[dict]


class Sampler:
    """Takes the samples of one run. What every call of a model needs from the plan (its
    endpoint, key, parameters and timeout, the variant's request shape) is worked out
    once per model and variant, not per call: at hundreds of calls a second, resolving
    the endpoint again for each cost more CPU than reading its answer."""

    def __init__(self, spec: RunSpec, secrets: list[str], cancel: threading.Event, *, pace=None):
        self.spec, self.secrets, self.cancel, self.pace = spec, secrets, cancel, pace
        self._models: dict[str, tuple] = {}
        self._variants = [(variant, variant.request()) for variant in spec.all_variants()]

    def _model(self, model: str) -> tuple:
        """(call, llm.sample's keywords, whether the call needs a timer of its own)."""
        found = self._models.get(model)
        if found is None:
            call = self.spec.call_for(model)  # the model's endpoint: server, key, parameters, timeout
            # A stream that stalls after its first bytes escapes litellm's HTTP timeout; a
            # direct call's own timer already bounds the whole stream (direct._timeout).
            timer = bool(call.members) or llm.route_of(call.model, call.api_base) != "direct"
            found = self._models[model] = (call, call.options(), timer)
        return found

    async def sample(self, job: Job) -> dict | None:
        """The row for one sample: an answer, or an error row with its type once retries are
        spent (or not worth it, or the run is cancelled). Cost is not set here: the engine
        prices rows from their usage. `pace(model)`, when given, is awaited before a retry (a
        retry is a request too: it keeps to the endpoint's requests per minute)."""
        spec, pace = self.spec, self.pace
        variant, input_idx, model, temperature, sample_idx = job.cell
        seed = spec.seed_for(sample_idx)
        call, options, timer = self._model(model)
        variant_spec, shape = self._variants[variant]  # tools, tool choice, response format: sent as asked
        row = {"run_id": job.run_id, "variant": variant, "input": input_idx, "model": model,
               "temperature": temperature, "sample_idx": sample_idx, "seed": seed}
        for attempt in range(1, spec.max_attempts + 1):
            if attempt > 1 and pace is not None:
                await pace(model)
            start = time.perf_counter()
            try:
                request = llm.sample(call.model, job.messages, temperature=temperature, max_tokens=spec.max_tokens,
                                     seed=seed, top_p=spec.top_p, stream=spec.stream, **options, **shape)
                if timer:  # (a timeout block, not wait_for: no extra task per call)
                    async with asyncio.timeout(call.timeout_s * 1.5):
                        out = await request
                else:
                    out = await request
            except asyncio.CancelledError:
                raise
            except Exception as error:  # every failure becomes a typed error row, never lost
                error_type, retry_after = llm.classify(error)
                if error_type in llm.RETRYABLE and attempt < spec.max_attempts and not self.cancel.is_set():
                    await asyncio.sleep(backoff_s(spec, attempt, retry_after))
                    continue
                return row | {"attempts": attempt, "error_type": error_type,
                              "error_message": llm.error_message(error, self.secrets),
                              "latency_ms": (time.perf_counter() - start) * 1000}
            return row | {
                "text": out.text, "finish_reason": out.finish_reason,
                "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
                "latency_ms": (time.perf_counter() - start) * 1000, "ttft_ms": out.ttft_ms,
                "attempts": attempt, "provider_model": out.provider_model, "deployment": out.deployment,
                "system_fingerprint": out.system_fingerprint,
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
