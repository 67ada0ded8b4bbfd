"""Which monitor checks are due, claimed by exactly one process, and which lost their
worker: what a worker asks at every poll. Kept light (the store and the schedule only),
so that a poll with nothing due costs one query; the worker (core/execution/service.py)
imports the check itself (core/watch/monitors.py) only when something is due.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from core.store import Store
from core.store import monitors as repo
from core.watch import schedule


def claim_due(store: Store, now: datetime | None = None, *, force: bool = False, names=None,
              claimer: str = "") -> list[tuple[dict, int]]:
    """Claim the checks due at `now`: (monitor, check id) for each this caller won. Of two
    processes that see a monitor due, the one whose conditional update advances its next
    due time runs it; a missed window (all servers down) is one check, and the next due
    time is the first slot after now. `force`: every monitor (paused ones too, when named)
    runs now, whatever its schedule."""
    moment = schedule.utc(now or schedule.now())
    stamp = schedule.text(moment)
    claimer = claimer or f"{os.uname().nodename}:{os.getpid()}"
    with store.connection() as db:
        if force:
            found = repo.all_monitors(db)
            found = [m for m in found if (m["name"] in names if names else not m["paused"])]
        else:
            found = [m for m in repo.due(db, stamp) if not names or m["name"] in names]
    claimed = []
    for monitor in found:
        next_due = schedule.text(schedule.next_after(monitor["every"], moment))
        is_due = not monitor["paused"] and monitor["next_due_at"] <= stamp
        with store.transaction() as db:
            won = is_due and repo.claim_due(db, monitor["id"], monitor["next_due_at"], next_due)
            if not won and not force:
                continue
            # A forced check has no due time of its own; a due one is unique by it.
            due_at = monitor["next_due_at"] if won else None
            check_id = repo.start_check(db, monitor["id"], due_at, forced=force, claimed_by=claimer,
                                        started_at=stamp)
        if check_id is not None:
            claimed.append((monitor, check_id))
    return claimed


# A check still running this long after its regression was judged has lost its worker: the
# worker that runs a check ends it within seconds of the verdict (signals, then the alert,
# whose retries take under a minute).
ORPHANED_AFTER_S = 600


def orphaned_checks(store: Store, now: datetime | None = None) -> list[dict]:
    """The checks that lost their worker after their regression was judged (or whose run
    another worker took over and judged): what monitors.end_orphans ends."""
    moment = schedule.utc(now or schedule.now())
    with store.connection() as db:
        return repo.orphaned_checks(db, schedule.text(moment - timedelta(seconds=ORPHANED_AFTER_S)))
