"""A run in a process of its own, for the app.

The app's own runs share its Python with every page render: the event loop thread, the
GIL and the cores. A large run (thousands of calls) would make the pages of everyone
using the app wait on it, so the app starts it here instead, in a new process (a new
session: a server restart does not stop it). It talks to the app only through the
store: answers, progress, heartbeat, and the cancel flag (`spread cancel` works the same).

    python -m core.run.detached --db PATH RUN_ID [--retry-errors] [--lease-owner OWNER --parent PID]

A worker (core/run/service.py) starts it for a run it claimed that needs a process of
its own, with the lease's owner and its own pid: this process then dies with the worker, as a run sampled inside
the worker would, and the run's lease expires for another worker to take it over.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from core import config

# A run of at least this many calls leaves the app's process (runner.start / resume).
MIN_CALLS = 1000
NICENESS = 10


def start(run_id: int, *, db_path=None, retry_errors: bool = False, owner: str | None = None) -> subprocess.Popen:
    """The run's own process. With `owner` (a worker's claim) it dies with this process and
    stays in its session; without, it outlives the app (a new session)."""
    argv = [sys.executable, "-m", "core.run.detached", "--db", config.absolute(db_path or config.db_path()),
            str(run_id)] + (["--retry-errors"] if retry_errors else [])
    if owner:
        argv += ["--lease-owner", owner, "--parent", str(os.getpid())]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(config.PROJECT_ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(argv, cwd=config.PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=not owner)


def wait(process: subprocess.Popen, run_id: int) -> None:
    """Wait for a run's process; a SpreadError with its last line of stderr if it failed."""
    _, stderr = process.communicate()
    if process.returncode != 0:
        last = (stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise config.SpreadError(f"run {run_id}: its process exited with {process.returncode}: {last[0]}")


def main(argv: list[str] | None = None) -> int:
    from core.run import runner

    parser = argparse.ArgumentParser(prog="python -m core.run.detached", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--retry-errors", action="store_true")
    parser.add_argument("--lease-owner")
    parser.add_argument("--parent", type=int)
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    if args.parent:
        _exit_with(args.parent)
    os.environ["SPREAD_DB"] = args.db
    # Below the app in the CPU queue (its sampler processes inherit this): on a machine
    # with few cores a large run takes every cycle it can get, and a page render then
    # waits behind it. The run yields a few cycles; pages stay quick.
    os.nice(NICENESS)
    pool = runner.prepare_own_process(args.run_id, db_path=args.db, retry_errors=args.retry_errors)
    try:
        runner.run_own_process(runner.execute(args.run_id, db_path=args.db, retry_errors=args.retry_errors, pool=pool,
                                              owner=args.lease_owner,
                                              on_stop="queued" if args.lease_owner else "cancelled"))
    finally:
        if pool is not None:
            pool.join()
    # Embed the answers and score the run's checks now, while nobody waits (as the app's
    # in-process worker does).
    from core.evaluate import scoring

    runner.warm_embeddings(args.run_id, args.db)
    scoring.score_run_sync(args.run_id, db_path=args.db)
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
