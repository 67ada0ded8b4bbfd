"""A run in a process of its own, for the app.

The app's own runs share its Python with every page render: the event loop thread, the
GIL and the cores. A large run (thousands of calls) would make the pages of everyone
using the app wait on it, so the app starts it here instead, in a new process (a new
session: a server restart does not stop it). It talks to the app only through the
store: answers, progress, heartbeat, and the cancel flag (`spread cancel` works the same).

    python -m core.run.detached --db PATH RUN_ID [--retry-errors]
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


def start(run_id: int, *, db_path=None, retry_errors: bool = False) -> subprocess.Popen:
    argv = [sys.executable, "-m", "core.run.detached", "--db", config.absolute(db_path or config.db_path()),
            str(run_id)] + (["--retry-errors"] if retry_errors else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(config.PROJECT_ROOT),
                                                                    os.environ.get("PYTHONPATH")])))
    return subprocess.Popen(argv, cwd=config.PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def main(argv: list[str] | None = None) -> int:
    from core.run import runner

    parser = argparse.ArgumentParser(prog="python -m core.run.detached", description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--retry-errors", action="store_true")
    parser.add_argument("run_id", type=int)
    args = parser.parse_args(argv)
    os.environ["SPREAD_DB"] = args.db
    # Below the app in the CPU queue (its sampler processes inherit this): on a machine
    # with few cores a large run takes every cycle it can get, and a page render then
    # waits behind it. The run yields a few cycles; pages stay quick.
    os.nice(NICENESS)
    pool = runner.prepare_own_process(args.run_id, db_path=args.db, retry_errors=args.retry_errors)
    try:
        runner.run_own_process(runner.execute(args.run_id, db_path=args.db, retry_errors=args.retry_errors, pool=pool))
    finally:
        if pool is not None:
            pool.join()
    # Embed the answers and score the run's checks now, while nobody waits (as the app's
    # in-process worker does).
    from core.evaluate import scoring

    runner.warm_embeddings(args.run_id, args.db)
    scoring.score_run_sync(args.run_id, db_path=args.db)
    return 0


if __name__ == "__main__":
    sys.exit(main())
