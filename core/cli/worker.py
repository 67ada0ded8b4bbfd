"""Carrying runs: `spread worker`."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading

import click

from core.cli.common import pass_store
from core.store import Store, leases


@click.command("worker", help=(
    "Claim queued runs and runs whose worker died (its lease expired, or its process is gone from this "
    "host), and sample the cells they are missing. A worker renews the lease of each run it samples; if "
    f"it dies, another worker takes the run over once the lease has expired. The lease lasts "
    f"${leases.LEASE_ENV} seconds (default {leases.DEFAULT_LEASE_S:.0f}). Each app server on PostgreSQL runs "
    "one worker; this command runs more. SIGTERM stops it gracefully: no new call, the calls in flight "
    f"get up to {leases.STOP_WAIT_S:.0f} s, and its runs go back to the queue for another worker. What it does "
    "(claimed, "
    "finished, waiting, database unreachable) is one line on stderr per event."))
@click.option("--once", is_flag=True, help="exit when nothing is left to claim and its runs have ended (else keep "
              "polling); a database it cannot reach or log into is an error")
@click.option("--wait-s", type=click.FloatRange(min=0), default=0.0, metavar="S", show_default=True,
              help="with --once: wait up to S seconds for a lease about to expire before giving up")
@pass_store
def worker_command(store: Store, once, wait_s):
    from core.execution import service

    leases.lease_s()  # a bad SPREAD_LEASE_S is one line now, not an error per poll
    failed = []
    stop = threading.Event()

    def report(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    def on_end(run_id: int, failure: BaseException | None) -> None:
        if failure is not None:
            failed.append(run_id)

    async def serve():
        task = asyncio.current_task()

        def on_sigterm() -> None:
            if stop.is_set():
                task.cancel()  # a second SIGTERM: hand the runs back without waiting
                return
            report("spread worker: stopping: no new call; its runs go back to the queue after their calls in flight")
            stop.set()

        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
        await service.serve(store, once=once, wait_s=wait_s, stop=stop, report=report, on_end=on_end)

    try:
        asyncio.run(serve())
    except (asyncio.CancelledError, KeyboardInterrupt):
        stop.set()
    if stop.is_set():
        report("spread worker: stopped; the runs it held are queued for another worker")
        return 130
    return 1 if failed else 0


COMMANDS = [worker_command]
