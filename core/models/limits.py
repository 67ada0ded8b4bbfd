"""Every limit on when a call may start, in one place: the run's cap on calls in flight
(`--concurrency`, the Playground's "Calls in flight"), each model's own cap (only where
the plan sets one, `--per-model`, or the model or its endpoint declares one: the embedded
model's slots, an endpoint's maximum concurrency), and each endpoint's requests per minute.

Requests per minute are a token bucket holding one token, refilled every 60/R seconds
(the "generic cell rate algorithm"): calls start at least 60/R s apart, so no minute ever
sees more than R of them. A bigger bucket would let a burst of B calls through at once,
and the first minute would then see up to B + R: the 429 storm this is here to prevent.
The spacing carries a margin, 3% of the window and at least a quarter of a second per
window: between here and the provider calls are delayed unevenly (measured here: up to
a quarter of a second on a busy machine), which could otherwise bunch R + 1 into its minute.

A bucket is shared by everything in the process that calls the endpoint (several runs in
the app, a Test button), and it is thread-safe and free of any event loop, because the
app's runs, the CLI and the pages each have their own. Two processes each keep their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

# The window an endpoint's requests-per-minute limit is counted over. Tests shorten it
# to see the limit hold in seconds.
PERIOD_S = 60.0


def margin_s(period_s: float) -> float:
    return max(0.03 * period_s, 0.25)


class TokenBucket:
    """`rate` calls per `period_s`, one at a time: a call may start `(period_s + margin_s) / rate`
    after the last."""

    def __init__(self, rate: float, period_s: float = PERIOD_S, clock=time.monotonic, margin_s: float = 0.0):
        self.interval = (period_s + margin_s) / rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next = clock()  # when the next call may start

    def wait_s(self) -> float:
        """Seconds until a call may start (0: now)."""
        with self._lock:
            return max(0.0, self._next - self._clock())

    def try_take(self) -> bool:
        """Take the token if it is there; the caller must start its call at once."""
        with self._lock:
            now = self._clock()
            if now < self._next:
                return False
            self._next = now + self.interval
            return True

    async def take(self) -> None:
        while not self.try_take():
            await asyncio.sleep(self.wait_s())


_buckets: dict[tuple, TokenBucket] = {}
_buckets_lock = threading.Lock()


def bucket_for(endpoint) -> TokenBucket | None:
    """The process-wide bucket of an endpoint with a requests-per-minute limit (else None)."""
    if not endpoint.rpm:
        return None
    key = (endpoint.name, endpoint.model, endpoint.api_base, float(endpoint.rpm), PERIOD_S)
    with _buckets_lock:
        if key not in _buckets:
            _buckets[key] = TokenBucket(float(endpoint.rpm), PERIOD_S, margin_s=margin_s(PERIOD_S))
        return _buckets[key]


class Gate:
    """May a call start now? `await gate.acquire(model)` waits for the model's own cap on
    calls in flight, then its rate, then the run's cap; `gate.release(model)` when the call
    (retries included) is over. A retry asks `await gate.pace(model)` before calling again.

    A call waiting for its own cap or its rate holds no place under the run's cap: a
    rate-limited cloud model never slows the self-hosted one beside it.
    """

    def __init__(self, concurrency: int, caps: dict[str, int | None], buckets: dict[str, TokenBucket | None]):
        self.total = concurrency
        self._all = asyncio.Semaphore(concurrency)
        self._own = {m: asyncio.Semaphore(c) for m, c in caps.items() if c}
        self._buckets = buckets
        # One waiter per rate-limited model at a time: the rest queue here, asleep, instead
        # of all waking at every token.
        self._turn = {m: asyncio.Lock() for m, bucket in buckets.items() if bucket}
        self.in_flight = 0
        self.peak = 0  # the most calls ever in flight at once (the benchmark and tests read it)

    @classmethod
    def for_run(cls, spec) -> "Gate":
        models = spec.models
        return cls(spec.concurrency, {m: spec.concurrency_for(m) for m in models},
                   {m: bucket_for(spec.endpoint(m)) for m in models})

    def paced(self, model: str) -> bool:
        return self._buckets.get(model) is not None

    async def acquire(self, model: str) -> None:
        own = self._own.get(model)
        if own is not None:
            await own.acquire()
        try:
            await self._start(model)
        except BaseException:
            if own is not None:
                own.release()
            raise
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self, model: str) -> None:
        self.in_flight -= 1
        self._all.release()
        own = self._own.get(model)
        if own is not None:
            own.release()

    async def _start(self, model: str) -> None:
        bucket = self._buckets.get(model)
        if bucket is None:
            await self._all.acquire()
            return
        async with self._turn[model]:
            while True:
                await asyncio.sleep(bucket.wait_s())
                await self._all.acquire()
                if bucket.try_take():  # taken just before the call starts: its start is what counts
                    return
                self._all.release()  # another run or a Test call took it: wait again

    async def pace(self, model: str) -> None:
        """Before another attempt at a call: wait for the model's rate (its slot is held)."""
        bucket = self._buckets.get(model)
        if bucket is not None:
            await bucket.take()
