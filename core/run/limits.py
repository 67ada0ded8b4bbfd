"""Every limit on calls in flight, in one place.

A run has a budget of C calls in flight (`--concurrency`, the Playground's
"Calls in flight"). A model may have its own limit too: only where the plan sets one
(`--per-model`) or the model declares one (the embedded model's slots). A call takes its
model's slot first, then one of the run's, and holds both until its row is ready,
retries and backoff included, so the provider never sees more than the budget.

Per-endpoint limits (an api_base's own concurrency, a requests-per-minute token
bucket) belong here too: the engine asks `acquire(model)` and nothing else.
"""

from __future__ import annotations

import asyncio


class Limits:
    def __init__(self, total: int, per_model: dict[str, int | None]):
        self.total = total
        self._run = asyncio.Semaphore(total)
        self._model = {model: asyncio.Semaphore(limit) for model, limit in per_model.items() if limit}
        self.in_flight = 0
        self.peak = 0  # the most calls ever in flight at once (the benchmark and tests read it)

    @classmethod
    def for_spec(cls, spec, models: list[str]) -> "Limits":
        return cls(spec.concurrency, {model: spec.concurrency_for(model) for model in models})

    async def acquire(self, model: str) -> None:
        """Wait for a slot for one call to `model`. Model first: a call waiting for its
        model's slot must not hold one of the run's, which other models could use."""
        own = self._model.get(model)
        if own is not None:
            await own.acquire()
        try:
            await self._run.acquire()
        except BaseException:
            if own is not None:
                own.release()
            raise
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self, model: str) -> None:
        self.in_flight -= 1
        self._run.release()
        own = self._model.get(model)
        if own is not None:
            own.release()
