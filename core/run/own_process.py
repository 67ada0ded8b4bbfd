"""The entry point of a run's own process (started by core/run/detached.py).

    SPREAD_DB=PATH|URL python -m core.run.own_process RUN_ID [--retry-errors] [--lease-owner OWNER --parent PID]

The database is SPREAD_DB's, from the environment: never an argument, which `ps` shows anyone.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading

from core.run import detached, runner
from core.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.run.own_process", description=__doc__.splitlines()[0])
    parser.add_argument("--retry-errors", action="store_true")
    parser.add_argument("--lease-owner")
    parser.add_argument("--parent", type=int)
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    if args.parent:
        _exit_with(args.parent)
    store = Store()  # SPREAD_DB's
    # Below the app in the CPU queue (its sampler processes inherit this): on a machine
    # with few cores a large run takes every cycle it can get, and a page render then
    # waits behind it. The run yields a few cycles; pages stay quick.
    os.nice(detached.NICENESS)
    pool = runner.prepare_own_process(store, args.run_id, retry_errors=args.retry_errors)
    stop = threading.Event()  # SIGTERM (the worker stopping): hand the run back after the calls in flight
    try:
        runner.run_own_process(runner.execute(store, args.run_id, retry_errors=args.retry_errors, pool=pool,
                                              owner=args.lease_owner, stop=stop,
                                              on_stop="queued" if args.lease_owner else "cancelled"), stop=stop)
    finally:
        if pool is not None:
            pool.join()
    if stop.is_set():
        return 0  # stopping: the worker that continues the run embeds and scores it
    # The run's last step (embed the answers, score the checks) now, while nobody waits,
    # as the app's in-process worker does; the import runs against the packages' order
    # (tests/test_architecture.py, ALLOWED): this process is handed nothing but argv.
    from core.evaluate import scoring

    scoring.finish_run_sync(store, args.run_id)
    return 0


def _exit_with(parent: int) -> None:
    """Be killed when `parent` dies (Linux's parent-death signal), like a thread of it."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


if __name__ == "__main__":
    sys.exit(main())
