"""The worker that carries runs: it claims queued runs and runs whose worker died, and
samples the cells they are missing.

`spread worker` runs one (core/cli/worker.py). Where workers carry runs (PostgreSQL),
each app server process also runs one on its background loop, started with the server
(`server_lifespan`, st.App's lifespan in app.py: the store is opened and migrated, then
the worker starts, before any page is drawn) and stopped with it: a run started on any
server is sampled by the first worker to claim it and, if that server dies, finished by
another once its lease expires or at once when its process is gone from the same host
(core/run/leases.py). On SQLite the app samples its own runs (one server owns the file); `spread worker`
still claims queued runs and expired leases there.

Stopping (SIGTERM to a server or to `spread worker`): the worker claims nothing more,
each run it holds starts no new call, its calls in flight get leases.STOP_WAIT_S to end,
what arrived is committed and the run goes back to `queued` for another worker.

Each worker also claims and runs the monitor checks that are due (core/watch/, see
_due_monitors); an app server on SQLite, which starts no worker, runs them on its
background loop (watch_with_server).

Every app server also analyses the newest finished runs as the Spread page first opens
them, at its start and when another run finishes (prepare_with_server), so a reviewer's
first open of a large run reads an analysis instead of waiting for it.

A small run is sampled on the worker's event loop; one the app would sample in a process
of its own (launch.needs_own_process: a large run, or one beside the embedded model) in
a process (core/execution/launch.py) that dies with the worker, as a run sampled inside it would.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import sys
import threading
import time
from concurrent.futures import Future
from typing import Callable

from core import config
from core.execution import launch
from core.run import runner
from core.run.plan import RunSpec
from core.store import Store, Unreachable, leases, runs, unreachable
from core.store import monitors as monitor_rows
from core.watch import due, schedule

# Runs one worker samples at once (each within its own concurrency limits), and how often
# an idle worker looks for work.
MAX_RUNS = 4
POLL_S = 1.0
# A run's own process, told to stop, gets this long beyond the engine's wait for its calls
# in flight (commit, hand-back) before it is killed.
CHILD_MARGIN_S = 2.0


async def serve(store: Store, *, once: bool = False, wait_s: float = 0.0, poll_s: float = POLL_S,
                stop: threading.Event | None = None, report: Callable[[str], None] | None = None,
                on_end: Callable[[int, BaseException | None], None] | None = None) -> int:
    """Claim and sample runs until `stop` is set (or the task is cancelled); with `once`,
    until nothing is claimable and every claimed run has ended, having waited up to `wait_s`
    for a lease about to expire. Returns how many runs were claimed.

    `report` gets one line per event or change of state (claimed, finished, waiting, the
    database unreachable and back). With `once`, a database that cannot be reached before
    anything was claimed is an error (Unreachable), not a wait; a login the database
    refuses is an error in every mode."""
    stop = stop or threading.Event()
    sampling: set[asyncio.Task] = set()
    try:
        return await _serve(store, sampling, once, wait_s, poll_s, stop, report or (lambda line: None), on_end)
    except asyncio.CancelledError:
        # Stopped at once (a second SIGTERM, Ctrl-C): each run it holds goes back to the
        # queue, with what was received written, for another worker to carry on at once.
        for task in sampling:
            task.cancel()
        await asyncio.gather(*sampling, return_exceptions=True)
        raise


async def _serve(store: Store, sampling: set[asyncio.Task], once, wait_s, poll_s, stop: threading.Event,
                 report: Callable[[str], None], on_end) -> int:
    claimed = 0
    state = None  # the last state reported: "waiting", "unreachable", or None while busy
    give_up_at = time.monotonic() + wait_s
    watch_at = 0.0  # when to look for due monitor checks next
    while not stop.is_set():
        try:
            while len(sampling) < MAX_RUNS and not stop.is_set():
                owner = leases.new_owner()
                found = await asyncio.to_thread(_claim_next, store, owner)
                if state == "unreachable":
                    report("database reachable again")
                    state = None
                if found is None:
                    break
                run_id, retry_errors = found
                claimed += 1
                state = None
                report(f"run {run_id}: claimed")
                task = asyncio.create_task(_carry(store, run_id, owner, retry_errors, stop, report, on_end))
                sampling.add(task)
                task.add_done_callback(sampling.discard)
            if time.monotonic() >= watch_at and not stop.is_set():  # monitors (core/watch/): see _due_monitors
                watch_at = time.monotonic() + WATCH_POLL_S
                watching = await _due_monitors(store, report)
                if watching is not None:
                    sampling.add(watching)
                    watching.add_done_callback(sampling.discard)
        except Exception as error:
            if not unreachable(error):
                raise
            if once and not claimed:  # nothing to wait for: say so and stop
                raise error if isinstance(error, config.SpreadError) else Unreachable(
                    f"database unreachable: {error}") from None
            if state != "unreachable":
                report(f"database unreachable ({error}); retrying every {poll_s:g} s")
                state = "unreachable"
        if once and not sampling and state != "unreachable":
            expiring = await asyncio.to_thread(_next_expiry_s, store)
            left = give_up_at - time.monotonic()
            if expiring is None or expiring > left:
                if not claimed:
                    report("nothing to claim")
                return claimed
            if state != "waiting":
                report(f"waiting {expiring:.0f} s for a lease to expire")
                state = "waiting"
        elif not sampling and state is None:
            report(f"waiting for runs (looking every {poll_s:g} s)")
            state = "waiting"
        if sampling:
            await asyncio.wait(set(sampling), timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(poll_s)
    # Stopping: each run still sampled drains and is handed back (see _carry).
    if sampling:
        await asyncio.gather(*sampling, return_exceptions=True)
    return claimed


# --- monitors ---------------------------------------------------------------------------
# A worker also runs the monitor checks that are due (core/watch/), so that a server
# watches its models with nobody looking. Claiming is one conditional update per monitor
# (exactly one worker runs each due time); the checks then run beside the worker's runs.
WATCH_POLL_S = 15.0


async def _due_monitors(store: Store, report: Callable[[str], None]) -> asyncio.Task | None:
    """A poll: claim the checks due now and start running them, and end the checks whose
    worker died; None when there is nothing to do. `report` gets one line per check begun
    and ended."""
    claimed = await asyncio.to_thread(due.claim_due, store)
    orphaned = await asyncio.to_thread(due.orphaned_checks, store)
    if not claimed and not orphaned:
        return None
    for monitor, check_id in claimed:
        report(f"monitor {monitor['name']}: check {check_id} due, running")
    from core.watch.monitors import end_orphans, run_check  # the gate and its models: only when a check is due

    async def run() -> None:
        if orphaned:
            for done in await end_orphans(store):
                report(f"monitor {done['monitor']}: check {done['check_id']}, whose worker died, ended: "
                       f"verdict {done['verdict'] or '—'}, state {done['state']}" + (", alert sent" if done["alerted"] else ""))
        for monitor, check_id in claimed:
            try:
                done = await run_check(store, monitor, check_id)
            except Exception as error:  # recorded as failed; the worker goes on
                message = config.scrub(str(error), str(store.target))
                with store.connection() as db:
                    monitor_rows.finish_check(db, check_id, {"status": "failed", "error": message,
                                                             "finished_at": schedule.text(schedule.now())})
                report(f"monitor {monitor['name']}: check {check_id} failed: {message}")
                continue
            report(f"monitor {monitor['name']}: checked: verdict {done['verdict'] or '—'}, state {done['state']}"
                   + (", alert sent" if done["alerted"] else ""))

    return asyncio.create_task(run())


def _claim_next(store: Store, owner: str) -> tuple[int, bool] | None:
    with store.connection() as db:
        return leases.claim_next(db, owner)


def _next_expiry_s(store: Store) -> float | None:
    with store.connection() as db:
        return leases.next_expiry_s(db)


async def _carry(store: Store, run_id: int, owner: str, retry_errors: bool, stop: threading.Event,
                 report: Callable[[str], None], on_end) -> None:
    """Sample one claimed run; a failure is reported, and the worker goes on."""
    failure = None
    try:
        with store.connection() as db:
            run = runs.get_run(db, run_id)
        missing = run["planned"] - run["received"] + (run["errors"] if retry_errors else 0)
        if launch.needs_own_process(RunSpec.from_dict(run["spec"]), missing):
            # Popen on this (the loop's) thread: the process dies with the thread that made it.
            process = launch.start_own_process(store, run_id, retry_errors=retry_errors, owner=owner)
            await _wait_for(process, run_id, stop)
        else:
            await launch.execute_and_score(store, run_id, retry_errors=retry_errors, owner=owner,
                                           on_stop="queued", stop=stop)
    except Exception as error:
        failure = error
        report(f"run {run_id}: failed: {error}")
    else:
        report(f"run {run_id}: {await asyncio.to_thread(_status, store, run_id)}")
    if on_end:
        on_end(run_id, failure)


async def _wait_for(process, run_id: int, stop: threading.Event) -> None:
    """Wait for a run's own process; when `stop` is set, tell it to stop (SIGTERM: it hands
    the run back after its calls in flight) and kill it if it outstays its grace."""
    waiting = asyncio.ensure_future(asyncio.to_thread(launch.wait_own_process, process, run_id))
    try:
        while not stop.is_set():
            done, _ = await asyncio.wait({waiting}, timeout=runner.CANCEL_POLL_S)
            if done:
                return waiting.result()
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiting), leases.STOP_WAIT_S + CHILD_MARGIN_S)
        except TimeoutError:
            process.kill()
        await waiting
    except asyncio.CancelledError:
        process.send_signal(signal.SIGINT)  # stopped at once: it hands the run back without waiting
        await asyncio.to_thread(process.wait)
        raise


def _status(store: Store, run_id: int) -> str:
    """How a carried run ended, for the worker's line about it."""
    try:
        with store.connection() as db:
            run = runs.get_run(db, run_id)
    except Exception as error:
        if not unreachable(error):
            raise
        return "ended (the database is unreachable to say how)"
    return {"queued": "handed back (queued)"}.get(run["status"], run["status"])


_serving: dict[str, Future] = {}
_watching: dict[str, Future] = {}  # monitors on SQLite, where no worker runs in the app
_preparing: dict[str, Future] = {}  # the newest finished runs' analyses, made ahead of their first open
_serving_lock = threading.Lock()


@contextlib.asynccontextmanager
async def server_lifespan(store: Store):
    """An app server's life (st.App's lifespan, app.py): open and migrate the store and start
    this server's worker before any page is drawn; at shutdown, stop it and the runs on the
    background loop, which hand their runs back (leases.STOP_WAIT_S)."""
    await asyncio.to_thread(start_with_server, store)
    try:
        yield
    finally:
        await asyncio.to_thread(stop_with_server)


def start_with_server(store: Store) -> None:
    """Open (and so migrate) the store, then start the server's worker. A store that cannot
    be opened yet is one line in the log: the pages say so, and the worker keeps trying."""
    try:
        with store.connection():
            pass
    except Exception as error:
        print(f"spread: {error}", file=sys.stderr)
    for_this_server(store)
    watch_with_server(store)
    prepare_with_server(store)


def stop_with_server(timeout_s: float = leases.STOP_WAIT_S + CHILD_MARGIN_S) -> None:
    """Stop this process's worker and the runs on its background loop, waiting up to
    `timeout_s` for them to hand their runs back."""
    launch.PROCESS_STOPPING.set()
    with _serving_lock:
        pending = list(_serving.values()) + list(_watching.values())  # analyses made ahead hold no run
    pending += launch.in_process_jobs()
    concurrent.futures.wait(pending, timeout=timeout_s)


def for_this_server(store: Store) -> bool:
    """Start this server process's worker, once, where workers carry runs (PostgreSQL).
    Returns whether it runs; on SQLite it never starts (the app samples its own runs).
    server_lifespan starts it with the server; a page calls it too, for a server started
    some other way (AppTest)."""
    target = str(store.target)
    with _serving_lock:
        if target not in _serving and config.is_url(target) and not launch.PROCESS_STOPPING.is_set():
            _serving[target] = launch.spawn(_keep_serving(store))
        return target in _serving


async def _keep_serving(store: Store) -> None:
    """The server's worker: it outlives any one failure (a page must never find it gone)."""
    async def serving(report):
        await serve(store, stop=launch.PROCESS_STOPPING, report=report)

    await _outliving_failures("spread worker", serving, pause_s=POLL_S)


def watch_with_server(store: Store) -> bool:
    """Where the app starts no worker (SQLite), it still runs the monitor checks that are
    due, on its background loop, from the server's start to its stop (on PostgreSQL its
    worker does). Returns whether this server watches."""
    target = str(store.target)
    with _serving_lock:
        if target not in _serving and target not in _watching and not launch.PROCESS_STOPPING.is_set():
            _watching[target] = launch.spawn(_keep_watching(store))
        return target in _watching


async def _keep_watching(store: Store) -> None:
    async def watching(report):
        checking = await _due_monitors(store, report)
        if checking is not None:
            await checking

    await _outliving_failures("spread monitors", watching, pause_s=WATCH_POLL_S)


PREPARE_POLL_S = 10.0


def prepare_with_server(store: Store) -> bool:
    """Analyse the newest finished runs on the server's background loop, from its start
    and whenever another run finishes (on any server sharing the store), so that the
    Spread page's first open of them is a read, not ten seconds of clustering. Returns
    whether this server prepares."""
    target = str(store.target)
    with _serving_lock:
        if target not in _preparing and not launch.PROCESS_STOPPING.is_set():
            _preparing[target] = launch.spawn(_keep_preparing(store))
        return target in _preparing


async def _keep_preparing(store: Store) -> None:
    from core.analyse import spread  # pandas and scipy: seconds a `spread worker` that prepares nothing never pays

    async def preparing(report):
        await asyncio.to_thread(spread.prepare_ahead, store)

    await _outliving_failures("spread analyses", preparing, pause_s=PREPARE_POLL_S)


async def _outliving_failures(name: str, attempt, pause_s: float) -> None:
    """Run `attempt(report)` again and again until the process stops, `pause_s` apart,
    saying a failure once per kind of failure on stderr, not once per attempt."""
    said = None

    def report(line: str) -> None:
        print(f"{name}: {line}", file=sys.stderr, flush=True)

    while not launch.PROCESS_STOPPING.is_set():
        try:
            await attempt(report)
        except Exception as error:
            if launch.PROCESS_STOPPING.is_set():  # the process is going: nothing to say
                return
            if str(error) != said:
                report(str(error))
                said = str(error)
        for _ in range(max(1, int(pause_s / POLL_S))):  # wakes to see the process stopping
            if launch.PROCESS_STOPPING.is_set():
                return
            await asyncio.sleep(POLL_S)
