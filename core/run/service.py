"""The worker that carries runs: it claims queued runs and runs whose worker died, and
samples the cells they are missing.

`spread worker` runs one (core/cli/worker.py). Where workers carry runs (PostgreSQL),
each app server process also runs one on its background loop (`for_this_server`, from
app.py): a run started on any server is sampled by the first worker to claim it and,
if that server dies, finished by another once its lease expires (core/run/lease.py).
On SQLite the app samples its own runs as before; `spread worker` still claims queued
runs and expired leases there.

A small run is sampled on the worker's event loop; one the app would sample in a process
of its own (runner.needs_own_process: a large run, or one beside the embedded model) in
a process (core/run/detached.py) that dies with the worker, as a run sampled inside it would.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from typing import Callable

from core import config, store
from core.run import detached, lease, runner
from core.run.plan import RunSpec

# Runs one worker samples at once (each within its own concurrency limits), and how often
# an idle worker looks for work.
MAX_RUNS = 4
POLL_S = 1.0


async def serve(*, db_path=None, once: bool = False, poll_s: float = POLL_S,
                on_claim: Callable[[int], None] | None = None,
                on_end: Callable[[int, BaseException | None], None] | None = None) -> int:
    """Claim and sample runs until cancelled; with `once`, until nothing is left to claim and
    every claimed run has ended. Returns how many runs were claimed."""
    sampling: set[asyncio.Task] = set()
    try:
        return await _serve(sampling, db_path, once, poll_s, on_claim, on_end)
    except asyncio.CancelledError:
        # The worker is stopping (SIGTERM, Ctrl-C): each run it holds goes back to the queue,
        # with what was received written, for another worker to carry on at once.
        for task in sampling:
            task.cancel()
        await asyncio.gather(*sampling, return_exceptions=True)
        raise


async def _serve(sampling: set[asyncio.Task], db_path, once, poll_s, on_claim, on_end) -> int:
    claimed = 0
    while True:
        while len(sampling) < MAX_RUNS:
            owner = lease.new_owner()
            found = await asyncio.to_thread(_claim_next, db_path, owner)
            if found is None:
                break
            run_id, retry_errors = found
            claimed += 1
            if on_claim:
                on_claim(run_id)
            task = asyncio.create_task(_carry(run_id, owner, retry_errors, db_path, on_end))
            sampling.add(task)
            task.add_done_callback(sampling.discard)
        if once and not sampling:
            return claimed
        if sampling:
            await asyncio.wait(set(sampling), timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(poll_s)


def _claim_next(db_path, owner: str) -> tuple[int, bool] | None:
    try:
        with store.connect(db_path) as db:
            return lease.claim_next(db, owner)
    except Exception as error:
        if not store.unreachable(error):
            raise
        return None  # the store is down: look again at the next poll


async def _carry(run_id: int, owner: str, retry_errors: bool, db_path, on_end) -> None:
    """Sample one claimed run; a failure is reported, and the worker goes on."""
    failure = None
    try:
        with store.connect(db_path) as db:
            run = store.get_run(db, run_id)
        missing = run["planned"] - run["received"] + (run["errors"] if retry_errors else 0)
        if runner.needs_own_process(RunSpec.from_dict(run["spec"]), missing):
            # Popen on this (the loop's) thread: the process dies with the thread that made it.
            process = detached.start(run_id, db_path=db_path, retry_errors=retry_errors, owner=owner)
            try:
                await asyncio.shield(asyncio.to_thread(detached.wait, process, run_id))
            except asyncio.CancelledError:
                process.send_signal(signal.SIGINT)  # it hands the run back, as a run sampled here would
                await asyncio.to_thread(process.wait)
                raise
        else:
            await runner.execute_and_score(run_id, db_path=db_path, retry_errors=retry_errors, owner=owner,
                                           on_stop="queued")
    except Exception as error:
        failure = error
        print(f"spread worker: run {run_id}: {error}", file=sys.stderr)
    if on_end:
        on_end(run_id, failure)


_serving: dict[str, bool] = {}
_serving_lock = threading.Lock()


def for_this_server(db_path=None) -> bool:
    """Start this server process's worker, once, where workers carry runs (PostgreSQL).
    Returns whether it runs; on SQLite it never starts (the app samples its own runs)."""
    target = str(db_path or config.db_path())
    with _serving_lock:
        if target not in _serving:
            _serving[target] = config.is_url(target)  # PostgreSQL: see lease.carried_by_workers
            if _serving[target]:
                runner.spawn(_keep_serving(target))
        return _serving[target]


async def _keep_serving(db_path) -> None:
    """The server's worker outlives any one failure: a page must never find it gone."""
    while True:
        try:
            await serve(db_path=db_path)
        except Exception as error:
            print(f"spread worker: {error}", file=sys.stderr)
            await asyncio.sleep(POLL_S)
