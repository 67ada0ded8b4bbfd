"""Where a run executes, and how it gets there.

- In the app's process: `background()`, one long-lived event loop on a thread of its own
  per process (never the Streamlit script thread), so a run survives page reruns and
  closed tabs. `start` and `resume` hand a run to it.
- In a process of its own: a large run (MIN_CALLS) or remote models beside the embedded
  one (`needs_own_process`) would make every page of the app wait on it, so it runs in
  a new process, `python -m core.execution.launch RUN_ID` (`main`): it talks to the app only
  through the store (answers, progress, heartbeat, the cancel flag). The database comes
  through the environment, never argv: a process's arguments are world-readable and a
  URL holds its password. The CLI runs its runs the same way, in its own process
  (`prepare_own_process`, `run_own_process`).
- By a worker: on PostgreSQL a run is queued and any server's worker claims it
  (core/execution/service.py), sampling it on its loop or starting its own process with the
  worker's lease, so that the process dies with the worker and another takes the run over.

Wherever it executes, a run is finished there (`finish`: embed the answers, score the
checks, and judge it when it is a regression).

    SPREAD_DB=PATH|URL python -m core.execution.launch RUN_ID [--retry-errors] [--lease-owner OWNER --parent PID]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import Future

from core import config
from core.config import SpreadError
from core.models import endpoints, llm
from core.run import plan, runner, workers
from core.run.plan import RunSpec
from core.store import Store, leases, responses, runs

# A run of at least this many calls leaves the app's process (`start`, `resume`).
MIN_CALLS = 1000
# A run's own process sits below the app in the CPU queue (its sampler processes inherit
# this): on a machine with few cores a large run takes every cycle it can get, and a page
# render would wait behind it.
NICENESS = 10


# Set when this process is stopping (the app server's shutdown: service.server_lifespan):
# the runs sampled on its background loop start no call and hand their runs back.
PROCESS_STOPPING = threading.Event()
# The interpreter exiting without a lifespan's stop (a script, a test session) is a stop
# too. This is the hook concurrent.futures itself uses: it runs before the thread pools
# refuse new work, so the background loop ends quietly instead of failing once per poll.
threading._register_atexit(PROCESS_STOPPING.set)


# --- in the app's process ----------------------------------------------------------


def start(store: Store, spec: RunSpec, *, created_by: str = "") -> int:
    """Validate, record and start a run in the background; returns its id at once. Where
    workers carry runs (PostgreSQL), the run is queued for the first worker to claim it:
    this server's (core/execution/service.py) or any other's."""
    run_id = plan.create(store, spec, created_by=created_by)
    with store.connection() as db:
        if leases.carried_by_workers(db):
            leases.queue(db, run_id)
            return run_id
    background().submit(store, run_id, own_process=needs_own_process(spec, spec.planned()))
    return run_id


def resume(store: Store, run_id: int, *, retry_errors: bool = False) -> None:
    with store.connection() as db:
        if leases.carried_by_workers(db):
            return leases.queue(db, run_id, retry_errors=retry_errors)
        run = runs.get_run(db, run_id)
    calls = run["planned"] - run["received"] + (run["errors"] if retry_errors else 0) if run else 0
    own_process = bool(run) and needs_own_process(RunSpec.from_dict(run["spec"]), calls)
    background().submit(store, run_id, retry_errors=retry_errors, own_process=own_process)


def needs_own_process(spec: RunSpec, calls: int) -> bool:
    """A large run leaves the app's process (its pages would wait on it), and so does a
    run of remote models beside the embedded one: timed in the app's process, where page
    renders and the local model's threads take the GIL, a 50 ms call read as a second.
    In a process of its own its remote calls get a sampler process too (workers.processes_for)."""
    return calls >= MIN_CALLS or workers.beside_embedded(spec)


def request_cancel(store: Store, run_id: int) -> None:
    """Ask the worker running this run, in any process, to stop after the answers in flight."""
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        if run["status"] == "queued":
            leases.cancel_queued(db, run_id)
        elif run["status"] in ("running", "pending"):
            runs.ask_to_cancel(db, run_id)
    background().cancel(run_id)


class Background:
    """One event loop on a daemon thread per process: runs survive page reruns and tabs.

    A large run goes to a process of its own instead (`start_own_process`); its job here
    is a future that a thread completes when that process exits.
    """

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="spread-runner", daemon=True)
        self._thread.start()
        self._jobs: dict[int, tuple[Future, threading.Event]] = {}
        self._on_loop: set[int] = set()  # runs sampled on the loop, not in a process of their own
        self._lock = threading.Lock()

    def submit(self, store: Store, run_id: int, *, retry_errors: bool = False, own_process: bool = False) -> Future:
        with self._lock:
            job = self._jobs.get(run_id)
            if job and not job[0].done():
                return job[0]
            cancel = threading.Event()
            if own_process:
                self._on_loop.discard(run_id)
                future = self._in_own_process(store, run_id, retry_errors=retry_errors)
            else:
                future = asyncio.run_coroutine_threadsafe(
                    self._run(store, run_id, retry_errors=retry_errors, cancel=cancel,
                              stop=PROCESS_STOPPING), self.loop
                )
                self._on_loop.add(run_id)
            self._jobs[run_id] = (future, cancel)
            return future

    @staticmethod
    def _in_own_process(store: Store, run_id: int, *, retry_errors: bool = False) -> Future:
        process = start_own_process(store, run_id, retry_errors=retry_errors)
        future: Future = Future()

        def wait():
            try:
                wait_own_process(process, run_id)
            except SpreadError as error:
                future.set_exception(error)
            else:
                future.set_result(runner.summary(store, run_id))

        threading.Thread(target=wait, name=f"spread-run-{run_id}", daemon=True).start()
        return future

    @staticmethod
    async def _run(store: Store, run_id: int, **kwargs) -> dict:
        return await execute_and_score(store, run_id, **kwargs)

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


def execute(store: Store, run_id: int, **kwargs):
    """The engine (runner.execute) with what it needs from the packages after it: the Spread
    page's meaning clusters, to see when a cell sampled until settled has settled."""
    return runner.execute(store, run_id, judge=_meaning_judge, **kwargs)


def _meaning_judge(store: Store, run_id: int) -> dict:
    # Imported when a run sampled until settled first asks: the analysis (pandas, the
    # embedders) costs seconds to import, and a run's own process must claim its lease first.
    from core.analyse import settled

    return settled.judge(store, run_id)


async def execute_and_score(store: Store, run_id: int, **kwargs) -> dict:
    """`execute`, then the run's last step (`finish`), in the app's worker."""
    result = await execute(store, run_id, **kwargs)
    if kwargs.get("stop") is not None and kwargs["stop"].is_set():
        return result  # this process is stopping: the next worker finishes the run
    await finish(store, run_id)
    return result


async def finish(store: Store, run_id: int) -> None:
    """A run's last step, wherever it executed: embed its answers and score its checks
    (scoring.finish_run) and, when the run is a regression, record its verdict
    (regress.judge): a regression started on a server that died is judged by the worker
    that finished its run."""
    from core.evaluate import regress, scoring  # seconds to import: only where a run is finished

    await scoring.finish_run(store, run_id)
    await regress.judge(store, run_id)


def finish_sync(store: Store, run_id: int) -> None:
    """`finish` from a process without an event loop (a run's own process, the CLI)."""
    asyncio.run(finish(store, run_id))


# --- in a process of its own --------------------------------------------------------


def start_own_process(store: Store, run_id: int, *, retry_errors: bool = False, owner: str | None = None) -> subprocess.Popen:
    """The run's own process. With `owner` (a worker's claim) it dies with this process and
    stays in its session; without, it outlives the app (a new session)."""
    argv = [sys.executable, "-m", "core.execution.launch", str(run_id)] + (["--retry-errors"] if retry_errors else [])
    if owner:
        argv += ["--lease-owner", owner, "--parent", str(os.getpid())]
    env = dict(os.environ, SPREAD_DB=store.absolute,
               PYTHONPATH=os.pathsep.join(filter(None, [str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(argv, cwd=config.PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=not owner)


def wait_own_process(process: subprocess.Popen, run_id: int) -> None:
    """Wait for a run's process; a SpreadError with its last line of stderr if it failed."""
    _, stderr = process.communicate()
    if process.returncode != 0:
        last = (stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise config.SpreadError(f"run {run_id}: its process exited with {process.returncode}: {last[0]}")


def prepare_own_process(store: Store, run_id: int, *, retry_errors: bool = False) -> workers.Processes | None:
    """For a process that exists for one run (the CLI, a detached run), before its event
    loop starts: load and warm litellm, freeze the heap (`llm.freeze_heap`), and fork
    sampler processes if the run is large enough to pay for them (core/run/workers.py).
    Returns the pool for `execute`, or None."""
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        done = responses.done_cells(db, run_id, include_errors=not retry_errors)
    store.close()  # a pool's threads must not exist when the samplers are forked
    spec = RunSpec.from_dict(run["spec"])
    if llm.needs_litellm(spec.call_for(m) for m in spec.models):
        llm.get()
        asyncio.run(llm.warm())
    llm.freeze_heap()
    remote_models = {m for m in spec.models if workers.remote(spec, m)}  # once per model: it resolves the endpoint
    remote = [cell.model for cell in spec.cells(run["spec"]["n_inputs"]) if cell.model in remote_models and cell not in done]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.execution.launch", description="A run in a process of its own (core/execution/launch.py).")
    parser.add_argument("--retry-errors", action="store_true")
    parser.add_argument("--lease-owner")
    parser.add_argument("--parent", type=int)
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    if args.parent:
        _exit_with(args.parent)
    # The app server stops this process at once with SIGINT (core/execution/service.py): it
    # must raise KeyboardInterrupt even when the server was started in the background, whose
    # shell hands its children SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    store = Store()  # SPREAD_DB's
    # Below the app in the CPU queue (its sampler processes inherit this): on a machine
    # with few cores a large run takes every cycle it can get, and a page render then
    # waits behind it. The run yields a few cycles; pages stay quick.
    os.nice(NICENESS)
    pool = prepare_own_process(store, args.run_id, retry_errors=args.retry_errors)
    stop = threading.Event()  # SIGTERM (the worker stopping): hand the run back after the calls in flight
    try:
        run_own_process(execute(store, args.run_id, retry_errors=args.retry_errors, pool=pool,
                                       owner=args.lease_owner, stop=stop,
                                       on_stop="queued" if args.lease_owner else "cancelled"), stop=stop)
    finally:
        if pool is not None:
            pool.join()
    if stop.is_set():
        return 0  # stopping: the worker that continues the run finishes it
    # The run's last step now, while nobody waits, as the app's in-process worker does.
    finish_sync(store, args.run_id)
    return 0


def _exit_with(parent: int) -> None:
    """Be killed when `parent` dies (Linux's parent-death signal), like a thread of it."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
