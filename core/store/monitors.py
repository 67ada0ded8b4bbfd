"""Monitors, their checks and their alerts (tables of m020_monitors): every statement
core/watch/ runs. Functions take a connection (`db`) from a Store.

Claiming a due time is one conditional update (`claim_due`): of several workers that see
the same monitor due, one advances `next_due_at` and runs the check, the others change
nothing. The check's row is unique by (monitor, due time) as well, so even a forced run
of the same instant cannot be recorded twice.
"""

from __future__ import annotations

import json

def _monitor(row: dict | None) -> dict | None:
    if row is None:
        return None
    row["alerts"] = json.loads(row["alerts"] or "[]")
    row["paused"] = bool(row["paused"])
    row["baseline_first"] = bool(row["baseline_first"])
    return row


def add(db, monitor: dict) -> int:
    row = dict(monitor, alerts=json.dumps(monitor.get("alerts") or []))
    row = {k: int(v) if isinstance(v, bool) else v for k, v in row.items()}  # PostgreSQL's integers
    return db["monitors"].insert(row).last_pk


def get(db, name: str) -> dict | None:
    rows = list(db.query("select * from monitors where name = ?", [name]))
    return _monitor(rows[0]) if rows else None


def get_by_id(db, monitor_id: int) -> dict | None:
    rows = list(db.query("select * from monitors where id = ?", [monitor_id]))
    return _monitor(rows[0]) if rows else None


def all_monitors(db) -> list[dict]:
    return [_monitor(row) for row in db.query("select * from monitors order by name")]


def update(db, monitor_id: int, changes: dict) -> None:
    changes = dict(changes)
    if "alerts" in changes:
        changes["alerts"] = json.dumps(changes["alerts"])
    changes = {k: int(v) if isinstance(v, bool) else v for k, v in changes.items()}
    columns = ", ".join(f"{name} = ?" for name in changes)
    db.execute(f"update monitors set {columns} where id = ?", [*changes.values(), monitor_id])


def remove(db, monitor_id: int) -> None:
    """The monitor and its alerts' records; its checks' regress runs and runs stay."""
    db.execute("delete from monitor_alerts where monitor_id = ?", [monitor_id])
    db.execute("delete from monitor_checks where monitor_id = ?", [monitor_id])
    db.execute("delete from monitors where id = ?", [monitor_id])


def due(db, now: str) -> list[dict]:
    """Monitors not paused whose next due time has come."""
    return [_monitor(row) for row in db.query(
        "select * from monitors where paused = 0 and next_due_at <= ? order by next_due_at, id", [now])]


def next_due_at(db) -> str | None:
    row = db.execute("select min(next_due_at) from monitors where paused = 0").fetchone()
    return row[0] if row else None


def claim_due(db, monitor_id: int, due_at: str, next_due: str) -> bool:
    """Advance the monitor from `due_at` to `next_due`; True for the one caller that did."""
    cursor = db.execute("update monitors set next_due_at = ? where id = ? and next_due_at = ? and paused = 0",
                        [next_due, monitor_id, due_at])
    return cursor.rowcount == 1


def start_check(db, monitor_id: int, due_at: str, *, forced: bool, claimed_by: str, started_at: str) -> int | None:
    """Record that a check of this due time has begun; None when it already has. A forced
    check (`due_at` None) is always recorded."""
    if due_at is None:
        return db["monitor_checks"].insert({"monitor_id": monitor_id, "due_at": None, "forced": int(forced),
                                            "claimed_by": claimed_by, "started_at": started_at,
                                            "status": "running", "alerted": 0}).last_pk
    cursor = db.execute(
        "insert into monitor_checks (monitor_id, due_at, forced, claimed_by, started_at, status, alerted) "
        "values (?, ?, ?, ?, ?, 'running', 0) on conflict (monitor_id, due_at) do nothing",
        [monitor_id, due_at, int(forced), claimed_by, started_at])
    if cursor.rowcount != 1:
        return None
    return db.execute("select id from monitor_checks where monitor_id = ? and due_at = ?",
                      [monitor_id, due_at]).fetchone()[0]


def finish_check(db, check_id: int, changes: dict) -> None:
    changes = dict(changes)
    if "signals" in changes:
        changes["signals"] = json.dumps(changes["signals"], default=str)
    changes = {k: int(v) if isinstance(v, bool) else v for k, v in changes.items()}
    columns = ", ".join(f"{name} = ?" for name in changes)
    db.execute(f"update monitor_checks set {columns} where id = ?", [*changes.values(), check_id])


def set_check_run(db, check_id: int, run_id: int) -> None:
    """The run a check samples, recorded as soon as it exists."""
    db.execute("update monitor_checks set run_id = ? where id = ?", [run_id, check_id])


def holder(db, check_id: int) -> str | None:
    """Who runs this check (`claimed_by`): whoever took it over last."""
    row = db.execute("select claimed_by from monitor_checks where id = ?", [check_id]).fetchone()
    return row[0] if row else None


def orphaned_checks(db, judged_before: str) -> list[dict]:
    """Checks still running whose regression was judged before `judged_before`: the worker
    that ran the check died after its run was judged, or before, and another worker took the
    run over and judged it (core/evaluate/regress.py, judge)."""
    return list(db.query(
        "select c.id, c.monitor_id, c.claimed_by, c.run_id from monitor_checks c "
        "join regress_runs g on g.run_id = c.run_id "
        "where c.status = 'running' and g.created_at < ? order by c.id", [judged_before]))


def take_over_check(db, check_id: int, holder: str | None, claimer: str) -> bool:
    """Become the check's holder if `holder` still is; True for the one caller that did."""
    cursor = db.execute("update monitor_checks set claimed_by = ? where id = ? and status = 'running' "
                        "and coalesce(claimed_by, '') = ?", [claimer, check_id, holder or ""])
    return cursor.rowcount == 1


def _check(row: dict) -> dict:
    row["signals"] = json.loads(row["signals"] or "[]")
    row["alerted"] = bool(row["alerted"])
    row["forced"] = bool(row["forced"])
    return row


def checks(db, monitor_id: int, limit: int | None = None) -> list[dict]:
    """A monitor's checks, oldest first (the last `limit` of them)."""
    rows = [_check(row) for row in db.query(
        "select * from monitor_checks where monitor_id = ? order by id desc"
        + (f" limit {int(limit)}" if limit else ""), [monitor_id])]
    return rows[::-1]


def finished_pass_rates(db, monitor_id: int) -> list[dict]:
    """Every finished check with a pass rate, oldest first (for the slow-slide test)."""
    return list(db.query(
        "select id, pass_rate, regress_id from monitor_checks where monitor_id = ? and status = 'done' "
        "and pass_rate is not null order by id", [monitor_id]))


def add_alert(db, alert: dict) -> int:
    return db["monitor_alerts"].insert(alert).last_pk


def update_alert(db, alert_id: int, changes: dict) -> None:
    columns = ", ".join(f"{name} = ?" for name in changes)
    db.execute(f"update monitor_alerts set {columns} where id = ?", [*changes.values(), alert_id])


def alerts(db, monitor_id: int, limit: int = 20) -> list[dict]:
    """A monitor's latest deliveries, newest first."""
    return list(db.query(f"select * from monitor_alerts where monitor_id = ? order by id desc limit {int(limit)}",
                         [monitor_id]))
