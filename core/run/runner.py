"""The engine that samples a run plan (see `plan`).

The engine is one coroutine, `execute(run_id)`: it reads the plan from the store,
works out which cells are still missing, and samples them, never more at once than the
limits allow (core/models/limits.py). Each sample (core/run/sampler.py: the call and its
retries) runs in this process or, for a large run, in sampler processes
(core/run/workers.py); each row goes to the store as it arrives (core/run/writer.py).
Running it again on the same run fills only what is missing.

Where it runs (the app's background loop, a process of its own, a worker that claimed
the run) is core/execution/launch.py's.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from core.config import SpreadError
from core.models import catalogue, direct, endpoints, limits, llm, local_llm
from core.run import batched, cache, plan, settle, workers
from core.run.plan import Cell, RunSpec
from core.run.sampler import Job, Sampler
from core.run.writer import RETRY_S, Writer
from core.store import Store, leases, responses, runs, unreachable

CANCEL_POLL_S = 0.25


@dataclass
class Progress:
    planned: int
    received: int = 0
    errors: int = 0
    cost_usd: float = 0.0
    started: float = field(default_factory=time.perf_counter)


async def execute(store: Store, run_id: int, *, retry_errors: bool = False,
                  on_answer: Callable[[Progress, dict], None] | None = None, cancel: threading.Event | None = None,
                  pool: workers.Processes | None = None, owner: str | None = None, on_stop: str = "cancelled",
                  stop: threading.Event | None = None, rounds=None, judge=None) -> dict:
    """Sample every missing cell of a run, saving each answer as it arrives. Returns a summary.

    The run's lease (core/run/leases.py) is taken first, for `owner` (a worker that claimed
    the run) or a new owner, and renewed at every heartbeat; a run another live worker
    holds is refused. `on_stop`: the status left when this process stops mid-run (a
    worker's is `queued`: it hands the run back for another worker). `pool`: sampler
    processes (from `prepare_own_process`) for every call but the embedded model's;
    without it, every sample is taken in this process. The pool is closed here.

    `stop`: once set (this process is stopping), no call starts, the calls in flight get
    leases.STOP_WAIT_S to end, what arrived is committed and the run is handed back: `queued`
    where workers carry runs (PostgreSQL) or a worker holds it, so that another worker
    continues it at once; else its lease is given up and it shows as interrupted, for a
    resume.

    `rounds`: which cells to sample in each round (`first(todo)`, then `next()` once a round's
    answers are committed, until it returns none): for a run planned `until_settled`, by
    default core/run/settle.py's, with `judge` (core.analyse.settled.judge: the Spread
    page's meaning clusters, which come after the engine in the packages' order, so whoever
    runs the engine hands them in); the gate's looks (core/evaluate/sequential.py) are another."""
    owner = owner or leases.new_owner()
    with store.connection() as db:
        claimed = leases.claim(db, run_id, owner)
        handed_back = "queued" if leases.carried_by_workers(db) or on_stop == "queued" else None
    cancel = cancel or threading.Event()
    if claimed["status"] == "cancelling":  # cancelled before this worker began
        cancel.set()
    lost = threading.Event()  # another worker took the run over: leave it to that one
    # From the claim on, not after loading models (a cold litellm import, an embedded model):
    # a lease left to expire meanwhile would let another worker take the run.
    beat = asyncio.create_task(_keep_lease(store, run_id, owner, cancel, lost))
    try:
        return await _sample(store, run_id, owner, on_answer=on_answer, cancel=cancel, lost=lost,
                             pool=pool, on_stop=on_stop, stop=stop or threading.Event(), handed_back=handed_back,
                             rounds=rounds, judge=judge, retry_errors=retry_errors or claimed["retry_errors"])  # a queued resume's choice
    except BaseException:
        # Failed before its end was written (a model that cannot load, a bug): give the lease
        # up, so that no worker takes the run over only to fail the same way. It shows as
        # interrupted, for a resume.
        try:
            await asyncio.to_thread(_drop, store, run_id, owner)
        except Exception:
            pass  # the store is away: the lease expires by itself
        raise
    finally:
        beat.cancel()


async def _keep_lease(store: Store, run_id: int, owner: str, cancel: threading.Event, lost: threading.Event) -> None:
    """The heartbeat: renews the lease (so a dead worker's run is taken over, and shows as
    interrupted meanwhile) and sees cancel requests from other processes (`spread cancel`,
    another app server)."""
    every = leases.heartbeat_s()
    while True:
        await asyncio.sleep(every)
        try:
            status = await asyncio.to_thread(_renew, store, run_id, owner)
        except Exception as error:
            if not unreachable(error):
                raise
            continue  # the lease outlasts a short outage; the next beat renews it
        if status is None:
            lost.set()
            cancel.set()
        elif status == "cancelling":
            cancel.set()


async def _sample(store: Store, run_id: int, owner: str, *, retry_errors: bool, on_answer, cancel: threading.Event,
                  lost: threading.Event, pool: workers.Processes | None, on_stop: str, stop: threading.Event,
                  handed_back: str | None, rounds=None, judge=None) -> dict:
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        spec = RunSpec.from_dict(run["spec"])
        done = responses.done_cells(db, run_id, include_errors=not retry_errors)
        sent = runs.sent_messages(db, run_id)  # as recorded; runs from before kept system + prompt
        prompts = {key: sent.get(key) or plan.messages(system, prompt)
                   for key, (system, prompt) in runs.rendered_prompts(db, run_id).items()}
    cells = spec.cells(run["spec"]["n_inputs"])
    todo = [cell for cell in cells if cell not in done]
    # Sampled until settled (core/run/settle.py): a round at a time, each chosen from the answers so far.
    if spec.until_settled and rounds is None:
        if judge is None:
            raise SpreadError(f"run {run_id} is sampled until settled: the engine needs the meaning judge "
                              "(core.analyse.settled.judge) to see when a cell has settled")
        rounds = settle.Rounds(store, run_id, spec, judge)
    if rounds is not None:
        todo = [Cell(*cell) for cell in await rounds.first(todo)]
    # Each model's endpoint says how to call it (server, key, parameters, timeout, price);
    # the gate says when a call may start (calls in flight, requests per minute).
    calls = {m: spec.call_for(m) for m in spec.models}
    gate = limits.Gate.for_run(spec)
    secrets = endpoints.secret_values(calls.values())
    # Load litellm (if a call needs it), the embedded models and the sampler processes
    # before the clock starts: none belongs in an answer's latency, and a cold import
    # would block the loop.
    if todo and llm.needs_litellm(calls.values()):
        await asyncio.to_thread(llm.get)
        await llm.warm()
    for model in {call.model for call in calls.values() if local_llm.is_local(call.model)} if todo else ():
        await asyncio.to_thread(local_llm.server, model)
    here = Sampler(spec, secrets, cancel, pace=gate.pace)  # samples in this event loop (the gate paces retries)
    if pool is not None:
        await pool.open()
    direct.load()  # aiohttp's import, off the clock
    if todo:
        await asyncio.to_thread(catalogue.price_map)  # litellm's price map, read now, not at the first answer
    progress = Progress(planned=len(cells), received=len(done))
    keys = cache.Keys(spec, prompts)
    writer = Writer(store)
    # Priced once per model and token count, from usage: the endpoint's price, the settings
    # file and litellm's map are not read per answer. Unknown stays None, never 0.
    price = functools.lru_cache(maxsize=4096)(lambda model, tokens_in, tokens_out:
                                              calls[model].cost_usd(tokens_in, tokens_out))
    batch_price = functools.lru_cache(maxsize=4096)(lambda model, tokens_in, tokens_out:
                                                    calls[model].batch_cost_usd(tokens_in, tokens_out))
    running: set[asyncio.Task] = set()
    failures: list[BaseException] = []
    stopped = threading.Event()  # this process was stopped at once (Ctrl-C, a second SIGTERM)
    draining = threading.Event()  # `stop` was seen: no new call; the calls in flight may end

    async def one(cell) -> None:
        model = cell.model
        # The call's slot is held until its answer is committed, not only until it arrives:
        # then the calls in flight and the answers not yet committed together stay within
        # the run's concurrency, and that is all a SIGKILL can make a resume ask again.
        try:
            if cancel.is_set():
                return
            sampler = pool if pool is not None and workers.remote(spec, model) else here
            row = await sampler.sample(Job(run_id, cell, prompts[cell.prompt_key]))
            if row is None:
                return
            if row.get("error_type") is None:
                row["cache_key"] = keys.of(cell)  # every answer can serve a later run's --cache
            if row.get("error_type") is None:
                row["cost_usd"] = price(model, row.get("prompt_tokens"), row.get("completion_tokens"))
            committed = writer.put(row)
            progress.received += 1
            progress.errors += row.get("error_type") is not None
            progress.cost_usd += row.get("cost_usd") or 0.0
            if on_answer:
                on_answer(progress, row)
            await committed
        finally:
            gate.release(model)

    def finished(task: asyncio.Task) -> None:
        running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failures.append(task.exception())

    async def feed(model: str, model_cells: list) -> None:
        # One feeder per model, in plan order: a model waiting for its own slots never
        # holds back another's calls, and only calls with a slot exist as tasks.
        for cell in model_cells:
            while not writer.reachable.is_set() and not cancel.is_set():
                await asyncio.sleep(CANCEL_POLL_S)  # the store is unreachable: pause, start nothing
            await gate.acquire(model)
            if cancel.is_set() or failures:
                gate.release(model)
                return
            task = asyncio.create_task(one(cell))
            running.add(task)
            task.add_done_callback(finished)

    async def watch():
        # A cancel, seen by the heartbeat (`spread cancel`, another app server) or asked here;
        # or this process stopping, whose calls in flight get leases.STOP_WAIT_S before they are dropped.
        told_pool = False
        deadline = None
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + leases.STOP_WAIT_S
                if not cancel.is_set():
                    draining.set()
                    cancel.set()  # start nothing more; samplers stop retrying
            if cancel.is_set() and not told_pool:
                told_pool = True
                if pool is not None:
                    pool.stop()  # workers stop retrying; calls in flight finish
            if deadline is not None and time.monotonic() >= deadline:
                for task in list(running):
                    task.cancel()  # their cells stay empty: the next worker samples them

    async with direct.session():  # one HTTP client for all the run's direct calls
        watcher = asyncio.create_task(watch())
        try:
            while todo:
                if spec.cache:  # answers already stored for these very requests and samples: no call
                    left = await asyncio.to_thread(cache.reuse, store, run_id, keys, todo)
                    progress.received += len(todo) - len(left)
                    todo = left
                by_model: dict[str, list] = {}
                for cell in todo if not spec.batch else ():
                    by_model.setdefault(cell.model, []).append(cell)
                if spec.batch:  # the round as one provider batch per model (core/run/batched.py)
                    progress.received += await batched.sample_round(store, run_id, spec, todo, prompts, keys,
                                                                    price=batch_price, cancel=cancel)
                await asyncio.gather(*(feed(model, model_cells) for model, model_cells in by_model.items()))
                while running:
                    if failures:
                        for task in running:
                            task.cancel()
                    await asyncio.wait(set(running))
                if failures:
                    raise failures[0]
                # until settled: the next round, once this one's answers are all committed
                todo = ([Cell(*cell) for cell in await rounds.next()]
                        if rounds is not None and not cancel.is_set() else [])
        except asyncio.CancelledError:
            cancel.set()
            stopped.set()
            for task in running:
                task.cancel()
            raise
        finally:
            watcher.cancel()
            try:
                await writer.close()  # everything received is written, even when cancelled
            finally:
                if pool is not None:
                    await pool.close()
                if not lost.is_set():
                    if stopped.is_set():
                        status = on_stop
                    elif draining.is_set():
                        status = handed_back if progress.received < progress.planned else "done"
                    else:
                        status = "cancelled" if cancel.is_set() else "done"
                    if status is None:
                        await asyncio.to_thread(_drop, store, run_id, owner)
                    else:
                        await asyncio.to_thread(_release, store, run_id, owner, status)
    return summary(store, run_id, wall_s=time.perf_counter() - progress.started)


def _renew(store: Store, run_id: int, owner: str) -> str | None:
    with store.connection() as db:
        return leases.renew(db, run_id, owner)


def _drop(store: Store, run_id: int, owner: str) -> None:
    with store.connection() as db:
        leases.drop(db, run_id, owner)


def _release(store: Store, run_id: int, owner: str, status: str) -> None:
    """The run's final status, written however long the store takes to come back."""
    wait = RETRY_S[0]
    while True:
        try:
            with store.connection() as db:
                leases.release(db, run_id, owner, status)
            return
        except Exception as error:
            if not unreachable(error):
                raise
            time.sleep(wait)
            wait = min(wait * 2, RETRY_S[1])


def summary(store: Store, run_id: int, *, wall_s: float | None = None) -> dict:
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        deployments = responses.deployment_counts(db, run_id)
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
        **({"deployments": deployments} if deployments else {}),  # a model group: answers per deployment
    }




