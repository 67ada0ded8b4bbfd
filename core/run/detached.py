"""A run in a process of its own, for the app.

The app's own runs share its Python with every page render: the event loop thread, the
GIL and the cores. A large run (thousands of calls) would make the pages of everyone
using the app wait on it, so the app starts it here instead, in a new process (a new
session: a server restart does not stop it). It talks to the app only through the
store: answers, progress, heartbeat, and the cancel flag (`spread cancel` works the same).

    SPREAD_DB=PATH|URL python -m core.run.own_process RUN_ID [--retry-errors] [--lease-owner OWNER --parent PID]

The database comes through the environment, never the command line: a process's
arguments are world-readable (`ps`, /proc/*/cmdline), and a URL holds its password.

(core/run/own_process.py is that process's entry point; this module only starts and
waits for it, so that the runner can use it without importing itself back.) A worker (core/run/service.py) starts it for a run it claimed that needs a process of
its own, with the lease's owner and its own pid: this process then dies with the worker, as a run sampled inside
the worker would, and the run's lease expires for another worker to take it over.
"""

from __future__ import annotations

import os
import subprocess
import sys

from core import config
from core.store import Store

# A run of at least this many calls leaves the app's process (runner.start / resume).
MIN_CALLS = 1000
NICENESS = 10


def start(store: Store, run_id: int, *, retry_errors: bool = False, owner: str | None = None) -> subprocess.Popen:
    """The run's own process. With `owner` (a worker's claim) it dies with this process and
    stays in its session; without, it outlives the app (a new session)."""
    argv = [sys.executable, "-m", "core.run.own_process", str(run_id)] + (["--retry-errors"] if retry_errors else [])
    if owner:
        argv += ["--lease-owner", owner, "--parent", str(os.getpid())]
    env = dict(os.environ, SPREAD_DB=store.absolute,
               PYTHONPATH=os.pathsep.join(filter(None, [str(config.PROJECT_ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(argv, cwd=config.PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=not owner)


def wait(process: subprocess.Popen, run_id: int) -> None:
    """Wait for a run's process; a SpreadError with its last line of stderr if it failed."""
    _, stderr = process.communicate()
    if process.returncode != 0:
        last = (stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise config.SpreadError(f"run {run_id}: its process exited with {process.returncode}: {last[0]}")
