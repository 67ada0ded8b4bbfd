"""The engine that samples a run plan (see `plan`), and the app's background worker.

The engine is one coroutine, `execute(run_id)`: it reads the plan from the store,
works out which cells are still missing, and samples them, never more at once than the
limits allow (core/models/limits.py). Each sample (core/run/sampler.py: the call and its
retries) runs in this process or, for a large run, in sampler processes
(core/run/workers.py); each row goes to the store as it arrives (core/run/writer.py).
Running it again on the same run fills only what is missing.

The CLI runs it with `run_own_process` (on uvloop). The app hands it to `background()`:
one long-lived event loop on its own thread per process, never the Streamlit script
thread, or, for a large run, a process of its own (core/run/detached.py) so that the
app stays responsive.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable

from core import store
from core.config import SpreadError
from core.models import direct, endpoints, limits, llm, local_llm, catalogue
from core.run import batched, cache, detached, lease, plan, settle, workers
from core.run.plan import RunSpec
from core.run.sampler import Job, Sampler
from core.run.writer import RETRY_S, Writer

CANCEL_POLL_S = 0.25
# Set when this process is stopping (the app server's shutdown: service.server_lifespan):
# the runs sampled on its background loop start no call and hand their runs back.
PROCESS_STOPPING = threading.Event()


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
    pool: workers.Processes | None = None,
    owner: str | None = None,
    on_stop: str = "cancelled",
    stop: threading.Event | None = None,
    rounds=None,
) -> dict:
    """Sample every missing cell of a run, saving each answer as it arrives. Returns a summary.

    The run's lease (core/run/lease.py) is taken first, for `owner` (a worker that claimed
    the run) or a new owner, and renewed at every heartbeat; a run another live worker
    holds is refused. `on_stop`: the status left when this process stops mid-run (a
    worker's is `queued`: it hands the run back for another worker). `pool`: sampler
    processes (from `prepare_own_process`) for every call but the embedded model's;
    without it, every sample is taken in this process. The pool is closed here.

    `stop`: once set (this process is stopping), no call starts, the calls in flight get
    lease.STOP_WAIT_S to end, what arrived is committed and the run is handed back: `queued`
    where workers carry runs (PostgreSQL) or a worker holds it, so that another worker
    continues it at once; else its lease is given up and it shows as interrupted, for a
    resume.

    `rounds`: which cells to sample in each round (`first(todo)`, then `next()` once a round's
    answers are committed, until it returns none): for a run planned `until_settled`, by
    default core/run/settle.py's, judged by the Spread page's meaning clusters; the gate's
    looks (core/evaluate/sequential.py) are another."""
    owner = owner or lease.new_owner()
    with store.connect(db_path) as db:
        claimed = lease.claim(db, run_id, owner)
        handed_back = "queued" if lease.carried_by_workers(db) or on_stop == "queued" else None
    cancel = cancel or threading.Event()
    if claimed["status"] == "cancelling":  # cancelled before this worker began
        cancel.set()
    lost = threading.Event()  # another worker took the run over: leave it to that one
    # From the claim on, not after loading models (a cold litellm import, an embedded model):
    # a lease left to expire meanwhile would let another worker take the run.
    beat = asyncio.create_task(_keep_lease(db_path, run_id, owner, cancel, lost))
    try:
        return await _sample(run_id, owner, db_path=db_path, on_answer=on_answer, cancel=cancel, lost=lost,
                             pool=pool, on_stop=on_stop, stop=stop or threading.Event(), handed_back=handed_back,
                             rounds=rounds,
                             retry_errors=retry_errors or claimed["retry_errors"])  # a queued resume's choice
    except BaseException:
        # Failed before its end was written (a model that cannot load, a bug): give the lease
        # up, so that no worker takes the run over only to fail the same way. It shows as
        # interrupted, for a resume.
        try:
            await asyncio.to_thread(_drop, db_path, run_id, owner)
        except Exception:
            pass  # the store is away: the lease expires by itself
        raise
    finally:
        beat.cancel()


async def _keep_lease(db_path, run_id: int, owner: str, cancel: threading.Event, lost: threading.Event) -> None:
    """The heartbeat: renews the lease (so a dead worker's run is taken over, and shows as
    interrupted meanwhile) and sees cancel requests from other processes (`spread cancel`,
    another app server)."""
    every = lease.heartbeat_s()
    while True:
        await asyncio.sleep(every)
        try:
            status = await asyncio.to_thread(_renew, db_path, run_id, owner)
        except Exception as error:
            if not store.unreachable(error):
                raise
            continue  # the lease outlasts a short outage; the next beat renews it
        if status is None:
            lost.set()
            cancel.set()
        elif status == "cancelling":
            cancel.set()


async def _sample(run_id: int, owner: str, *, db_path, retry_errors: bool, on_answer, cancel: threading.Event,
                  lost: threading.Event, pool: workers.Processes | None, on_stop: str, stop: threading.Event,
                  handed_back: str | None, rounds=None) -> dict:
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        spec = RunSpec.from_dict(run["spec"])
        done = store.done_cells(db, run_id, include_errors=not retry_errors)
        sent = store.sent_messages(db, run_id)  # as recorded; runs from before kept system + prompt
        prompts = {key: sent.get(key) or plan.messages(system, prompt)
                   for key, (system, prompt) in store.rendered_prompts(db, run_id).items()}
    cells = spec.cells(run["spec"]["n_inputs"])
    todo = [cell for cell in cells if cell not in done]
    # Sampled until settled (core/run/settle.py): a round at a time, each chosen from the answers so far.
    if spec.until_settled and rounds is None:
        rounds = settle.Rounds.for_run(run_id, spec, db_path=db_path)
    if rounds is not None:
        todo = await rounds.first(todo)
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
    writer = Writer(db_path)
    # Priced once per model and token count, from usage: the endpoint's price, the settings
    # file and litellm's map are not read per answer. Unknown stays None, never 0.
    price = functools.lru_cache(maxsize=4096)(lambda model, tokens_in, tokens_out:
                                              calls[model].cost_usd(tokens_in, tokens_out))
    running: set[asyncio.Task] = set()
    failures: list[BaseException] = []
    stopped = threading.Event()  # this process was stopped at once (Ctrl-C, a second SIGTERM)
    draining = threading.Event()  # `stop` was seen: no new call; the calls in flight may end

    async def one(cell) -> None:
        model = cell[2]
        # The call's slot is held until its answer is committed, not only until it arrives:
        # then the calls in flight and the answers not yet committed together stay within
        # the run's concurrency, and that is all a SIGKILL can make a resume ask again.
        try:
            if cancel.is_set():
                return
            sampler = pool if pool is not None and workers.remote(spec, model) else here
            row = await sampler.sample(Job(run_id, cell, prompts[cell[:2]]))
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
        # or this process stopping, whose calls in flight get lease.STOP_WAIT_S before they are dropped.
        told_pool = False
        deadline = None
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            if stop.is_set() and deadline is None:
                deadline = time.monotonic() + lease.STOP_WAIT_S
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
                    left = await asyncio.to_thread(cache.reuse, run_id, keys, todo, db_path=db_path)
                    progress.received += len(todo) - len(left)
                    todo = left
                by_model: dict[str, list] = {}
                for cell in todo if not spec.batch else ():
                    by_model.setdefault(cell[2], []).append(cell)
                if spec.batch:  # the round as one provider batch per model (core/run/batched.py)
                    progress.received += await batched.sample_round(run_id, spec, todo, prompts, keys, price=price,
                                                                    cancel=cancel, db_path=db_path)
                await asyncio.gather(*(feed(model, model_cells) for model, model_cells in by_model.items()))
                while running:
                    if failures:
                        for task in running:
                            task.cancel()
                    await asyncio.wait(set(running))
                if failures:
                    raise failures[0]
                # until settled: the next round, once this one's answers are all committed
                todo = await rounds.next() if rounds is not None and not cancel.is_set() else []
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
                        await asyncio.to_thread(_drop, db_path, run_id, owner)
                    else:
                        await asyncio.to_thread(_release, db_path, run_id, owner, status)
    return summary(run_id, db_path=db_path, wall_s=time.perf_counter() - progress.started)


async def execute_and_score(run_id: int, **kwargs) -> dict:
    """`execute`, then the run's last step (embed the answers, score the checks), in the app's worker."""
    # The one import against the packages' order (tests/test_architecture.py, ALLOWED):
    # the engine finishes the runs it executes, and a run's own process cannot be handed
    # the step as an argument.
    from core.evaluate import scoring

    result = await execute(run_id, **kwargs)
    if kwargs.get("stop") is not None and kwargs["stop"].is_set():
        return result  # this process is stopping: the next worker embeds and scores
    await scoring.finish_run(run_id, db_path=kwargs.get("db_path"))
    return result


def prepare_own_process(run_id: int, *, db_path=None, retry_errors: bool = False) -> workers.Processes | None:
    """For a process that exists for one run (the CLI, a detached run), before its event
    loop starts: load and warm litellm, freeze the heap (`llm.freeze_heap`), and fork
    sampler processes if the run is large enough to pay for them (core/run/workers.py).
    Returns the pool for `execute`, or None."""
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        done = store.done_cells(db, run_id, include_errors=not retry_errors)
    store.close_pools()  # a pool's threads must not exist when the samplers are forked
    spec = RunSpec.from_dict(run["spec"])
    if llm.needs_litellm(spec.call_for(m) for m in spec.models):
        llm.get()
        asyncio.run(llm.warm())
    llm.freeze_heap()
    remote_models = {m for m in spec.models if workers.remote(spec, m)}  # once per model: it resolves the endpoint
    remote = [cell[2] for cell in spec.cells(run["spec"]["n_inputs"]) if cell[2] in remote_models and cell not in done]
    routes = {m: llm.route_of(m, spec.call_for(m).api_base) for m in spec.models}
    direct_calls = sum(routes[m] == "direct" for m in remote)
    count = workers.processes_for(spec, len(remote) - direct_calls, direct_calls)
    secrets = endpoints.secret_values(spec.call_for(m) for m in spec.models)
    return workers.start(spec, secrets, count) if count else None


def run_own_process(coroutine, *, stop: threading.Event | None = None):
    """`asyncio.run` for a process that exists for one run (the CLI, a detached run), on
    uvloop's event loop: it costs less CPU per call than asyncio's own (10,000 streamed
    direct calls at 500 in flight: 3.3 against 3.6 CPU s for the whole command), and on
    cores shared with the provider's server, CPU decides the fan-out's wall. The app's
    background loop stays asyncio's. With `stop`, SIGTERM sets it (the engine's graceful
    stop, `execute(stop=...)`) instead of killing the process."""
    import uvloop

    async def main():
        if stop is not None:
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        return await coroutine

    return uvloop.run(main())


def _renew(db_path, run_id: int, owner: str) -> str | None:
    with store.connect(db_path) as db:
        return lease.renew(db, run_id, owner)


def _drop(db_path, run_id: int, owner: str) -> None:
    with store.connect(db_path) as db:
        lease.drop(db, run_id, owner)


def _release(db_path, run_id: int, owner: str, status: str) -> None:
    """The run's final status, written however long the store takes to come back."""
    wait = RETRY_S[0]
    while True:
        try:
            with store.connect(db_path) as db:
                lease.release(db, run_id, owner, status)
            return
        except Exception as error:
            if not store.unreachable(error):
                raise
            time.sleep(wait)
            wait = min(wait * 2, RETRY_S[1])


def request_cancel(run_id: int, *, db_path=None) -> None:
    """Ask the worker running this run, in any process, to stop after the answers in flight."""
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        if run["status"] == "queued":
            lease.cancel_queued(db, run_id)
        elif run["status"] in ("running", "pending"):
            with store.write(db):
                db.execute("update runs set status = 'cancelling' where id = ?", [run_id])
    background().cancel(run_id)


def summary(run_id: int, *, db_path=None, wall_s: float | None = None) -> dict:
    with store.connect(db_path) as db:
        run = store.get_run(db, run_id)
        deployments = store.deployment_counts(db, run_id)
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


# --- the app's background worker ----------------------------------------------------

class Background:
    """One event loop on a daemon thread per process: runs survive page reruns and tabs.

    A large run goes to a process of its own instead (core/run/detached.py); its job here
    is a future that a thread completes when that process exits.
    """

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="spread-runner", daemon=True)
        self._thread.start()
        self._jobs: dict[int, tuple[Future, threading.Event]] = {}
        self._on_loop: set[int] = set()  # runs sampled on the loop, not in a process of their own
        self._lock = threading.Lock()

    def submit(self, run_id: int, *, db_path=None, retry_errors: bool = False, own_process: bool = False) -> Future:
        with self._lock:
            job = self._jobs.get(run_id)
            if job and not job[0].done():
                return job[0]
            cancel = threading.Event()
            if own_process:
                self._on_loop.discard(run_id)
                future = self._in_own_process(run_id, db_path=db_path, retry_errors=retry_errors)
            else:
                future = asyncio.run_coroutine_threadsafe(
                    self._run(run_id, db_path=db_path, retry_errors=retry_errors, cancel=cancel,
                              stop=PROCESS_STOPPING), self.loop
                )
                self._on_loop.add(run_id)
            self._jobs[run_id] = (future, cancel)
            return future

    @staticmethod
    def _in_own_process(run_id: int, *, db_path=None, retry_errors: bool = False) -> Future:
        process = detached.start(run_id, db_path=db_path, retry_errors=retry_errors)
        future: Future = Future()

        def wait():
            try:
                detached.wait(process, run_id)
            except SpreadError as error:
                future.set_exception(error)
            else:
                future.set_result(summary(run_id, db_path=db_path))

        threading.Thread(target=wait, name=f"spread-run-{run_id}", daemon=True).start()
        return future

    @staticmethod
    async def _run(run_id: int, **kwargs) -> dict:
        return await execute_and_score(run_id, **kwargs)

    def cancel(self, run_id: int) -> None:
        with self._lock:
            job = self._jobs.get(run_id)
        if job:
            job[1].set()

    def in_process_jobs(self) -> list[Future]:
        """The runs being sampled on the loop (a run in its own process outlives the app)."""
        with self._lock:
            return [future for run_id, (future, _) in self._jobs.items()
                    if run_id in self._on_loop and not future.done()]

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


def in_process_jobs() -> list[Future]:
    """The runs this process samples on its background loop (none if it has none)."""
    with _background_lock:
        return _background.in_process_jobs() if _background is not None else []


def spawn(coroutine) -> Future:
    """Run one coroutine on the background loop; the caller polls the returned future."""
    return asyncio.run_coroutine_threadsafe(coroutine, background().loop)


def wait(coroutine, timeout_s: float = 300.0):
    """Run one coroutine on the background loop and wait for its result: for a page that
    needs a model's answer now (rewordings, a test call), without a loop of its own."""
    return asyncio.run_coroutine_threadsafe(coroutine, background().loop).result(timeout_s)


def start(spec: RunSpec, *, db_path=None, created_by: str = "") -> int:
    """Validate, record and start a run in the background; returns its id at once. Where
    workers carry runs (PostgreSQL), the run is queued for the first worker to claim it:
    this server's (core/run/service.py) or any other's."""
    run_id = plan.create(spec, db_path=db_path, created_by=created_by)
    with store.connect(db_path) as db:
        if lease.carried_by_workers(db):
            lease.queue(db, run_id)
            return run_id
    background().submit(run_id, db_path=db_path, own_process=needs_own_process(spec, spec.planned()))
    return run_id


def resume(run_id: int, *, db_path=None, retry_errors: bool = False) -> None:
    with store.connect(db_path) as db:
        if lease.carried_by_workers(db):
            return lease.queue(db, run_id, retry_errors=retry_errors)
        run = store.get_run(db, run_id)
    calls = run["planned"] - run["received"] + (run["errors"] if retry_errors else 0) if run else 0
    own_process = bool(run) and needs_own_process(RunSpec.from_dict(run["spec"]), calls)
    background().submit(run_id, db_path=db_path, retry_errors=retry_errors, own_process=own_process)


def needs_own_process(spec: RunSpec, calls: int) -> bool:
    """A large run leaves the app's process (its pages would wait on it), and so does a
    run of remote models beside the embedded one: timed in the app's process, where page
    renders and the local model's threads take the GIL, a 50 ms call read as a second.
    In a process of its own its remote calls get a sampler process too (workers.processes_for)."""
    return calls >= detached.MIN_CALLS or workers.beside_embedded(spec)
