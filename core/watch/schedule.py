"""When a monitor is due: `15m`, `1h`, `6h`, `1d`, or a cron expression (croniter).

Due times are UTC instants written as ISO text to the second (they compare as text).
A fixed interval is aligned to the clock (every hour on the hour, every 15 minutes on
:00, :15, :30, :45), as cron's are, so every server computes the same due times.

A missed window (every server down for a day) runs once on return, not once per missed
slot: after a check the next due time is the first slot after *now*, not after the
slot that was due.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from croniter import croniter

from core.config import SpreadError

# The fixed intervals `--every` takes, and the cron expression each stands for.
INTERVALS = {"15m": "*/15 * * * *", "1h": "0 * * * *", "6h": "0 */6 * * *", "1d": "0 0 * * *"}
CHECKS_PER_MONTH = {"15m": 30 * 96, "1h": 30 * 24, "6h": 30 * 4, "1d": 30}


def check(every: str) -> str:
    """The schedule as given, or a one-line SpreadError."""
    every = (every or "").strip()
    if every in INTERVALS:
        return every
    if not croniter.is_valid(every) or len(every.split()) != 5:
        raise SpreadError(f"the schedule {every!r} is neither 15m, 1h, 6h, 1d nor a cron expression "
                          "of five fields (minute hour day month weekday), e.g. \"0 9 * * 1-5\"")
    return every


def cron_of(every: str) -> str:
    return INTERVALS.get(every, every)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def text(moment: datetime) -> str:
    return utc(moment).isoformat(timespec="seconds")


def parse(value: str) -> datetime:
    """An ISO instant (a `Z` or an offset; none means UTC), or a one-line SpreadError."""
    try:
        return utc(datetime.fromisoformat(value.strip().replace("Z", "+00:00")))
    except ValueError:
        raise SpreadError(f"{value!r} is not an ISO date and time, e.g. 2026-01-31T09:00:00Z") from None


def next_after(every: str, moment: datetime) -> datetime:
    """The first due time strictly after `moment`."""
    return utc(croniter(cron_of(every), utc(moment)).get_next(datetime))


def previous_at_or_before(every: str, moment: datetime) -> datetime:
    """The latest due time at or before `moment` (a monitor added now is due now)."""
    moment = utc(moment).replace(microsecond=0)
    if croniter.match(cron_of(every), moment):
        return moment
    return utc(croniter(cron_of(every), moment).get_prev(datetime))


def checks_per_month(every: str) -> float:
    """How often a schedule fires in 30 days (counted for a cron expression)."""
    if every in CHECKS_PER_MONTH:
        return CHECKS_PER_MONTH[every]
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    it, count = croniter(every, start), 0
    while it.get_next(datetime) < start + timedelta(days=30) and count < 30 * 24 * 60:
        count += 1
    return count


def now() -> datetime:
    return datetime.now(timezone.utc)
