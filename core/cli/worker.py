"""Carrying runs: `spread worker`."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from core.run import lease


@click.command("worker", help=(
    "Claim queued runs and runs whose worker died (its lease expired), and sample the cells they are "
    "missing. A worker renews the lease of each run it samples; if it dies, another worker takes the run "
    f"over once the lease has expired. The lease lasts ${lease.LEASE_ENV} seconds (default "
    f"{lease.DEFAULT_LEASE_S:.0f}). Each app server on PostgreSQL runs one worker; this command runs more."))
@click.option("--once", is_flag=True, help="exit when there is nothing left to claim (else keep polling)")
def worker_command(once):
    from tqdm import tqdm

    from core.run import service

    lease.lease_s()  # a bad SPREAD_LEASE_S is one line now, not an error per poll
    failed = []
    bar = tqdm(unit="run", desc="runs carried", file=sys.stderr, dynamic_ncols=True, disable=None)

    def on_claim(run_id: int) -> None:
        bar.write(f"run {run_id}: claimed", file=sys.stderr)

    def on_end(run_id: int, failure: BaseException | None) -> None:
        if failure is not None:
            failed.append(run_id)
        bar.update()

    async def serve():
        # SIGTERM (a redeploy) stops the worker as Ctrl-C does: its runs go back to the queue.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
        await service.serve(once=once, on_claim=on_claim, on_end=on_end)

    try:
        asyncio.run(serve())
    except (asyncio.CancelledError, KeyboardInterrupt):
        bar.write("spread worker: stopped; the runs it held are queued for another worker", file=sys.stderr)
        return 130
    finally:
        bar.close()
    return 1 if failed else 0


COMMANDS = [worker_command]
