"""The engine that samples a run plan (see `plan`), and the app's background worker.

The engine is one coroutine, `execute(run_id)`: it reads the plan from the store,
works out which cells are still missing, samples them with a global (and, where a
model has one, a per-model) concurrency limit, retries what can recover, and writes
each answer (or error row) the moment it arrives. Running it again on the same run
fills only what is missing.

The CLI runs it with `asyncio.run`. The app hands it to `background()`, one
long-lived event loop on its own thread per process, never the Streamlit script thread.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from core import store
from core.config import SpreadError
from core.run import endpoints, limits, llm, local_llm, plan
from core.run.plan import RunSpec

HEARTBEAT_S = 2.0


@dataclass
class Progress:
    planned: int
    received: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.perf_counter)


async def execute(
    run_id: int,
    *,
    db_path=None,
    retry_errors: bool = False,
    on_answer: Callable[[Progress, dict], None] | None = None,
    cancel: threading.Event | None = None,
) -> dict:
    """Sample every missing cell of a run, saving each answer as it arrives. Returns a summary."""
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        spec = RunSpec.from_dict(run["spec"])
        done = store.done_cells(db, run_id, include_errors=not retry_errors)
        prompts = {key: plan.messages(system, prompt) for key, (system, prompt) in store.rendered_prompts(db, run_id).items()}
        store.set_run_status(db, run_id, "running")
    cells = spec.cells(run["spec"]["n_inputs"])
    todo = [cell for cell in cells if cell not in done]
    # Load litellm and the embedded model before the clock starts: neither belongs in
    # an answer's latency, and a cold import would block the loop.
    await asyncio.to_thread(llm.get)
    if local_llm.MODEL_ID in [spec.endpoint(m).model for m in spec.models] and todo:
        await asyncio.to_thread(local_llm.server)
    progress = Progress(planned=len(cells), received=len(done))
    cancel = cancel or threading.Event()
    # Each model's endpoint says how to call it (server, key, parameters, timeout); the
    # gate says when a call may start (calls in flight, requests per minute).
    calls = {m: spec.call_for(m) for m in spec.models}
    gate = limits.Gate.for_run(spec)
    secrets = endpoints.secret_values(calls.values())

    async def one(cell):
        variant, input_idx, model = cell[:3]
        async with gate.slot(model):
            if cancel.is_set():
                return
            row = await _sample_with_retries(spec, run_id, cell, prompts[variant, input_idx], secrets, cancel,
                                             calls[model], gate)
        if row is None:
            return
        await asyncio.to_thread(_save, db_path, row)
        progress.received += 1
        progress.errors += row.get("error_type") is not None
        progress.cost_usd += row.get("cost_usd") or 0.0
        if on_answer:
            on_answer(progress, row)

    async def watch():
        # Heartbeat (so a dead worker shows as interrupted) and cancel requests from
        # other processes (`spread cancel`, another app server).
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            status = await asyncio.to_thread(_heartbeat, db_path, run_id)
            if status == "cancelling":
                cancel.set()

    watcher = asyncio.create_task(watch())
    tasks = [asyncio.create_task(one(cell)) for cell in todo]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        cancel.set()
        for task in tasks:
            task.cancel()
        raise
    finally:
        watcher.cancel()
        status = "cancelled" if cancel.is_set() else "done"
        await asyncio.to_thread(_set_status, db_path, run_id, status)
    return summary(run_id, db_path=db_path, wall_s=time.perf_counter() - progress.started)


async def _sample_with_retries(spec: RunSpec, run_id: int, cell, messages, secrets, cancel,
                               call: endpoints.Call, gate: limits.Gate) -> dict | None:
    variant, input_idx, model, temperature, sample_idx = cell
    seed = spec.seed_for(sample_idx)
    row = {"run_id": run_id, "variant": variant, "input": input_idx, "model": model, "temperature": temperature,
           "sample_idx": sample_idx, "seed": seed}
    for attempt in range(1, spec.max_attempts + 1):
        if attempt > 1:
            await gate.pace(model)  # a retry is a request too: it waits for the endpoint's rate
        start = time.perf_counter()
        try:
            out = await asyncio.wait_for(
                llm.sample(
                    call.model, messages, temperature=temperature, max_tokens=spec.max_tokens,
                    seed=seed, top_p=spec.top_p, stream=spec.stream, **call.options(),
                ),
                # A stream that stalls after its first bytes escapes the HTTP timeout.
                timeout=call.timeout_s * 1.5,
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
            "cost_usd": call.cost_usd(out.prompt_tokens, out.completion_tokens),
            "latency_ms": (time.perf_counter() - start) * 1000, "ttft_ms": out.ttft_ms,
            "attempts": attempt, "provider_model": out.provider_model,
        }
    return None


def backoff_s(spec: RunSpec, attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After wins when longer."""
    ceiling = min(spec.backoff_max_s, spec.backoff_base_s * 2 ** (attempt - 1))
    wait = random.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        wait = max(wait, min(retry_after, spec.backoff_max_s))
    return wait


def _save(db_path, row: dict) -> None:
    with store.connect(db_path) as db:
        store.save_response(db, row)


def _heartbeat(db_path, run_id: int) -> str:
    with store.connect(db_path) as db:
        store.heartbeat(db, run_id)
        return db.execute("select status from runs where id = ?", [run_id]).fetchone()[0]


def _set_status(db_path, run_id: int, status: str) -> None:
    with store.connect(db_path) as db:
        store.set_run_status(db, run_id, status)


def warm_embeddings(run_id: int, db_path=None) -> int:
    """Compute and cache the meaning embeddings of a run's answers; returns how many texts."""
    from core.analyse import embed

    if not embed.model_available():
        return 0
    with store.connect(db_path) as db:
        texts = [r["text"] for r in store.responses(db, run_id) if r["error_type"] is None and r["text"]]
    distinct = list({embed.normalise(t): t for t in texts}.values())
    if distinct:
        embed.cached(distinct, "minilm", db_path=db_path)
    return len(distinct)


def request_cancel(run_id: int, *, db_path=None) -> None:
    """Ask the worker running this run, in any process, to stop after the answers in flight."""
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        if run["status"] in ("running", "pending"):
            with store.write(db):
                db.execute("update runs set status = 'cancelling' where id = ?", [run_id])
    background().cancel(run_id)


def summary(run_id: int, *, db_path=None, wall_s: float | None = None) -> dict:
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
    return {
        "run_id": run_id,
        "status": run["status"],
        "planned": run["planned"],
        "responses": run["answers"],
        "errors": run["errors"],
        "cost_usd": run["cost_usd"] if not run["unknown_cost"] else None,
        "cost_usd_known": run["cost_usd"] or 0.0,
        "answers_with_unknown_cost": run["unknown_cost"],
        "wall_s": round(wall_s, 3) if wall_s is not None else None,
    }


# --- the app's background worker ----------------------------------------------------

class Background:
    """One event loop on a daemon thread per process: runs survive page reruns and tabs."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="spread-runner", daemon=True)
        self._thread.start()
        self._jobs: dict[int, tuple[Future, threading.Event]] = {}
        self._lock = threading.Lock()

    def submit(self, run_id: int, *, db_path=None, retry_errors: bool = False) -> Future:
        with self._lock:
            job = self._jobs.get(run_id)
            if job and not job[0].done():
                return job[0]
            cancel = threading.Event()
            future = asyncio.run_coroutine_threadsafe(
                self._run(run_id, db_path=db_path, retry_errors=retry_errors, cancel=cancel), self.loop
            )
            self._jobs[run_id] = (future, cancel)
            return future

    @staticmethod
    async def _run(run_id: int, **kwargs) -> dict:
        from core.evaluate import scoring

        summary = await execute(run_id, **kwargs)
        # Embed the answers now, while nobody waits: opening the run on the Spread page
        # then finds every embedding cached (10,000 answers: 13 s cold, 1 s cached).
        await asyncio.to_thread(warm_embeddings, run_id, kwargs.get("db_path"))
        await scoring.score_run(run_id, db_path=kwargs.get("db_path"))  # the run's checks, if any
        return summary

    def cancel(self, run_id: int) -> None:
        with self._lock:
            job = self._jobs.get(run_id)
        if job:
            job[1].set()

    def active(self) -> list[int]:
        with self._lock:
            return [run_id for run_id, (future, _) in self._jobs.items() if not future.done()]


_background: Background | None = None
_background_lock = threading.Lock()


def background() -> Background:
    global _background
    with _background_lock:
        if _background is None:
            _background = Background()
        return _background


def spawn(coroutine) -> Future:
    """Run one coroutine on the background loop; the caller polls the returned future."""
    return asyncio.run_coroutine_threadsafe(coroutine, background().loop)


def wait(coroutine, timeout_s: float = 300.0):
    """Run one coroutine on the background loop and wait for its result: for a page that
    needs a model's answer now (rewordings, a test call), without a loop of its own."""
    return asyncio.run_coroutine_threadsafe(coroutine, background().loop).result(timeout_s)


def start(spec: RunSpec, *, db_path=None, created_by: str = "") -> int:
    """Validate, record and start a run in the background; returns its id at once."""
    run_id = plan.create(spec, db_path=db_path, created_by=created_by)
    background().submit(run_id, db_path=db_path)
    return run_id


def resume(run_id: int, *, db_path=None, retry_errors: bool = False) -> None:
    background().submit(run_id, db_path=db_path, retry_errors=retry_errors)
