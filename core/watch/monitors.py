"""Monitors: a golden set re-sampled on a model on a schedule, each check a regression
run against a pinned baseline through the gate (core/evaluate/regress.py), its drift
signals computed (core/watch/signals.py), and one alert per change of state.

    add(store, name, ...)        check everything, record the monitor (due at once)
    due.claim_due(store, now)    claim the checks due now: exactly one claimer per due time
    run_claimed(store, claimed)  run them: regress, signals, state, alerts
    run_due(store, now, force)   both, for `spread watch run-due` (the workers: core/execution/service.py)

A monitor's state is `ok` or `alerting` (any signal alerting). Its webhooks are told
of each change of state once; `announced_state` is the state they last heard, so a
delivery that failed is tried again at the next check rather than lost.

With `--baseline first` the monitor's first check becomes its baseline (a check with no
verdict); every later check is compared with it.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime

from core.store import now_iso
from core.config import SpreadError, check_text, scrub
from core.evaluate import regress
from core.models import endpoints
from core.review import golden
from core.store import Store
from core.store import monitors as repo
from core.watch import alerts, due, schedule, signals

# Each alerting test of a check runs at this level. At an hourly cadence an unchanged
# model then fails the gate about 0.2 times a month and shifts meaning at most as often;
# with the slow-slide test (about 0.3 a month) that is under one false alarm a month in
# all (bench/bench_watch.py).
DEFAULT_ALPHA = 0.0003
MAX_N = 100
# A `first` baseline takes this many times a check's samples per item: it is paid once,
# and every check is compared with it (a complete flip of one item at K = 5 against 20
# baseline samples is p = 1/53130; against 5, p = 1/252 could never alarm at DEFAULT_ALPHA).
BASELINE_FACTOR = 4
STATES = ("ok", "alerting")


# --- creating and changing monitors ---------------------------------------------------------

def check_model(store: Store, model: str) -> str:
    """An endpoint of the catalogue, or a litellm id (`provider/model`); else one line."""
    check_text(model or "", "the model")
    if endpoints.get(store, model) is None and "/" not in model:
        raise SpreadError(f"no endpoint named {model!r}: add it with `spread models add {model} --model ID`, "
                          "or give a litellm id such as openai/gpt-4o-mini")
    return model


def check_settings(store: Store, *, set_name: str, model: str, temperature: float, n: int, every: str,
                   baseline, alert_urls, alpha: float, baseline_n: int | None = None) -> dict:
    """Every setting checked (nothing written), as the monitor's columns."""
    golden.get_set(store, set_name)
    check_model(store, model)
    if not 0 <= temperature <= 2:
        raise SpreadError(f"temperature {temperature:g} is outside 0–2")
    if not 1 <= n <= MAX_N:
        raise SpreadError(f"--n {n} is outside 1–{MAX_N} samples per item")
    baseline_n = BASELINE_FACTOR * n if baseline_n is None else baseline_n
    if not 1 <= baseline_n <= BASELINE_FACTOR * MAX_N:
        raise SpreadError(f"--baseline-n {baseline_n} is outside 1–{BASELINE_FACTOR * MAX_N} samples per item")
    if not 0 < alpha < 0.5:
        raise SpreadError(f"alpha {alpha:g} is outside (0, 0.5)")
    every = schedule.check(every)
    urls = [alerts.check_url(url) for url in alert_urls]
    baseline_id = None
    if baseline not in (None, "", "first"):
        try:
            baseline_id = int(baseline)
        except (TypeError, ValueError):
            raise SpreadError(f"--baseline {baseline!r} is neither a regress run id nor `first`") from None
        regress.check_baseline(store, baseline_id, set_name)
    return {"set_name": set_name, "model": model, "temperature": float(temperature), "n": int(n),
            "baseline_n": int(baseline_n), "every": every,
            "baseline_id": baseline_id, "baseline_first": baseline_id is None, "alerts": urls, "alpha": alpha}


def add(store: Store, name: str, *, set_name: str, model: str, temperature: float = 0.7, n: int = 5,
        every: str = "1h", baseline="first", alert_urls=(), alpha: float = DEFAULT_ALPHA,
        baseline_n: int | None = None, created_by: str = "", now: datetime | None = None) -> dict:
    """Record a monitor, due at once (its first check runs at the next `run-due` or worker
    poll). Nothing is written when a setting is wrong."""
    check_text(name or "", "the monitor name")
    settings = check_settings(store, set_name=set_name, model=model, temperature=temperature, n=n, every=every,
                              baseline=baseline, alert_urls=alert_urls, alpha=alpha, baseline_n=baseline_n)
    moment = now or schedule.now()
    stamp = schedule.text(moment)
    with store.transaction(lock="monitors") as db:
        if repo.get(db, name) is not None:
            raise SpreadError(f"a monitor named {name!r} already exists")
        repo.add(db, {"name": name, **settings, "paused": 0, "state": "ok", "announced_state": "ok",
                      "next_due_at": schedule.text(schedule.previous_at_or_before(settings["every"], moment)),
                      "created_at": stamp, "updated_at": stamp, "created_by": created_by})
    return get(store, name)


def edit(store: Store, name: str, *, now: datetime | None = None, **changes) -> dict:
    """Change a monitor's settings (the same checks as `add`); a new schedule is due at
    its next slot."""
    monitor = get(store, name)
    merged = {"set_name": monitor["set_name"], "model": monitor["model"], "temperature": monitor["temperature"],
              "n": monitor["n"], "every": monitor["every"], "alpha": monitor["alpha"],
              "baseline_n": monitor["baseline_n"] if "n" not in changes or changes.get("n") is None else None,
              "baseline": "first" if monitor["baseline_first"] and monitor["baseline_id"] is None
              else monitor["baseline_id"], "alert_urls": monitor["alerts"]}
    merged.update({k: v for k, v in changes.items() if v is not None})
    settings = check_settings(store, **merged)
    if settings["baseline_id"] is None and monitor["baseline_id"] is not None and merged["baseline"] != "first":
        settings["baseline_id"] = monitor["baseline_id"]
    settings["baseline_first"] = merged["baseline"] == "first"
    moment = now or schedule.now()
    if settings["every"] != monitor["every"]:
        settings["next_due_at"] = schedule.text(schedule.next_after(settings["every"], moment))
    with store.transaction(lock="monitors") as db:
        repo.update(db, monitor["id"], {**settings, "updated_at": schedule.text(moment)})
    return get(store, name)


def get(store: Store, name: str) -> dict:
    with store.connection() as db:
        found = repo.get(db, name)
    if found is None:
        raise SpreadError(f"no monitor named {name!r} (see `spread watch list`)")
    return found


def listing(store: Store) -> list[dict]:
    with store.connection() as db:
        return repo.all_monitors(db)


def set_paused(store: Store, name: str, paused: bool, *, now: datetime | None = None) -> dict:
    """Pause a monitor, or resume it: resumed, it is due at its next slot (a pause is not a
    missed window to catch up on)."""
    monitor = get(store, name)
    moment = now or schedule.now()
    changes = {"paused": paused, "updated_at": schedule.text(moment)}
    if not paused and monitor["paused"]:
        changes["next_due_at"] = schedule.text(schedule.next_after(monitor["every"], moment))
    with store.transaction(lock="monitors") as db:
        repo.update(db, monitor["id"], changes)
    return get(store, name)


def remove(store: Store, name: str) -> None:
    monitor = get(store, name)
    with store.transaction(lock="monitors") as db:
        repo.remove(db, monitor["id"])


def details(store: Store, name: str, *, checks: int = 50) -> dict:
    """A monitor with its latest checks and deliveries (webhook URLs shown as their host)."""
    monitor = get(store, name)
    with store.connection() as db:
        history = repo.checks(db, monitor["id"], limit=checks)
        delivered = repo.alerts(db, monitor["id"])
    return {**public(monitor), "checks": history, "deliveries": delivered,
            "failed_deliveries": [d for d in delivered if d["status"] == "failed"]}


def history(store: Store, name: str, *, checks: int = 500) -> list[dict]:
    """A monitor's finished checks, oldest first, as the Monitors page plots them: the pass
    rate with its interval, the verdict and state, where the answers' meanings went, the
    latency and cost, and the runs to open (the check's and its baseline's)."""
    monitor = get(store, name)
    with store.connection() as db:
        found = [c for c in repo.checks(db, monitor["id"], limit=checks) if c["status"] != "running"]
    baseline_run = None
    if monitor["baseline_id"] is not None:
        baseline = regress.get(store, monitor["baseline_id"])
        baseline_run = baseline["run_id"] if baseline else None
    rows = []
    for check in found:
        by_kind = {s["kind"]: s for s in check["signals"]}
        latency, cost = by_kind.get("latency") or {}, by_kind.get("cost") or {}
        rows.append({
            "check_id": check["id"], "when": check["due_at"] or check["started_at"], "status": check["status"],
            "verdict": check["verdict"], "state": check["state"], "pass_rate": check["pass_rate"],
            "pass_rate_low": check["pass_rate_low"], "pass_rate_high": check["pass_rate_high"],
            "alerting": [s["kind"] for s in check["signals"] if s["alerting"]],
            "meaning": (by_kind.get("meaning_shift") or {}).get("shares"),
            "p50_ms": (latency.get("p50") or {}).get("ms"), "p95_ms": (latency.get("p95") or {}).get("ms"),
            "cost_per_answer": cost.get("usd_per_answer"), "run_id": check["run_id"],
            "regress_id": check["regress_id"], "baseline_run_id": baseline_run,
            "is_baseline": check["regress_id"] is not None and check["regress_id"] == monitor["baseline_id"],
            "alerted": check["alerted"], "error": check["error"], "signals": check["signals"]})
    return rows


def public(monitor: dict) -> dict:
    """A monitor as the CLI and pages show it: webhook URLs reduced to their host."""
    return {**monitor, "alerts": [alerts.shown(url) for url in monitor["alerts"]]}


# --- running checks --------------------------------------------------------------------------

async def run_claimed(store: Store, claimed: list[tuple[dict, int]], *, now: datetime | None = None) -> list[dict]:
    """Run claimed checks one after another; a failing check is recorded and the next runs."""
    return [await run_check(store, monitor, check_id, now=now) for monitor, check_id in claimed]


async def run_due(store: Store, *, now: datetime | None = None, force: bool = False, names=None) -> list[dict]:
    claimed = await asyncio.to_thread(due.claim_due, store, now, force=force, names=names)
    return await run_claimed(store, claimed, now=now)


async def run_check(store: Store, monitor: dict, check_id: int, *, now: datetime | None = None) -> dict:
    """One check: a regress run against the baseline, its signals, the monitor's new state,
    and an alert when the state changed."""
    baseline_id = monitor["baseline_id"]
    # A `first` baseline samples more than a check (BASELINE_FACTOR): it is the yardstick.
    samples = monitor["n"] if baseline_id is not None else (monitor["baseline_n"] or monitor["n"])
    candidate = regress.Candidate(model=monitor["model"], temperature=monitor["temperature"], n=samples)
    gates = regress.Gates(max_drop=0.0 if baseline_id is not None else None, alpha=monitor["alpha"])
    with store.connection() as db:
        holder = repo.holder(db, check_id)
    try:
        run_id = regress.prepare(store, monitor["set_name"], candidate, gates, baseline_id=baseline_id,
                                 created_by=f"monitor {monitor['name']}")
        with store.connection() as db:  # so that a worker can end the check if this one dies (end_orphans)
            repo.set_check_run(db, check_id, run_id)
        result = await regress.complete(store, run_id, monitor["set_name"], candidate, gates,
                                        baseline_id=baseline_id, created_by=f"monitor {monitor['name']}")
    except SpreadError as error:
        # A model that stops answering (or answers nothing scorable) is itself a signal.
        return await _conclude(store, monitor, check_id, holder, None, scrub(str(error), str(store.target)), now)
    return await _conclude(store, monitor, check_id, holder, result, None, now)


async def end_orphans(store: Store, *, now: datetime | None = None, claimer: str = "") -> list[dict]:
    """End the checks whose worker died (due.orphaned_checks): each is taken over by one
    caller (a conditional update of its holder) and ended as its own worker would have
    ended it: signals, state, alert."""
    claimer = claimer or f"{os.uname().nodename}:{os.getpid()}"
    ended = []
    for check in await asyncio.to_thread(due.orphaned_checks, store, now):
        with store.transaction() as db:
            won = repo.take_over_check(db, check["id"], check["claimed_by"], claimer)
            monitor = repo.get_by_id(db, check["monitor_id"]) if won else None
        if monitor is None:
            continue
        judged = regress.for_run(store, check["run_id"])
        result = {**judged["result"], "regress_id": judged["id"], "run_id": check["run_id"]}
        ended.append(await _conclude(store, monitor, check["id"], claimer, result, None, now))
    return ended


async def _conclude(store: Store, monitor: dict, check_id: int, holder: str | None, result: dict | None,
                    error: str | None, now: datetime | None) -> dict:
    """The end of a check, from its regress report (or the error that stopped it): signals,
    the monitor's state, the check's row, and an alert when the state changed. A check taken
    over meanwhile (its holder changed: this worker was thought dead) is left to its new holder."""
    moment = schedule.utc(now or schedule.now())
    baseline_id = monitor["baseline_id"]
    outcome = {"verdict": None, "regress_id": None, "run_id": None, "pass_rate": None, "pass_rate_low": None,
               "pass_rate_high": None, "error": error}
    if result is None:
        found = [signals.failed_check(error)]
    else:
        outcome.update(verdict=result["gate"], regress_id=result["regress_id"], run_id=result["run_id"],
                       pass_rate=result["pass_rate"], pass_rate_low=result["pass_rate_low"],
                       pass_rate_high=result["pass_rate_high"])
        if baseline_id is None:
            found = []  # this check is the baseline
        else:
            found = await asyncio.to_thread(signals.for_check, store, monitor, result)
    state = "alerting" if any(s["alerting"] for s in found) else "ok"
    finished = schedule.text(moment)
    with store.transaction(lock=f"monitor check {check_id}") as db:
        if repo.holder(db, check_id) != holder:
            taken = True
        else:
            taken = False
            repo.finish_check(db, check_id, {**outcome, "signals": found, "state": state, "finished_at": finished,
                                             "status": "failed" if outcome["error"] else "done"})
            changes = {"state": state, "last_check_at": finished}
            if baseline_id is None and outcome["regress_id"] is not None:
                changes["baseline_id"] = outcome["regress_id"]
            repo.update(db, monitor["id"], changes)
            check = {**outcome, "id": check_id, "due_at": _due_at(db, check_id), "signals": found, "state": state}
    if taken:
        return {"monitor": monitor["name"], "check_id": check_id, "verdict": outcome["verdict"], "state": None,
                "signals": found, "alerted": False, "regress_id": outcome["regress_id"], "run_id": outcome["run_id"],
                "pass_rate": outcome["pass_rate"], "pass_rate_low": outcome["pass_rate_low"],
                "pass_rate_high": outcome["pass_rate_high"], "due_at": None, "error": "taken over by another worker"}
    alerted = await asyncio.to_thread(_announce, store, {**monitor, **changes}, check)
    return {"monitor": monitor["name"], "check_id": check_id, "verdict": outcome["verdict"], "state": state,
            "signals": found, "alerted": alerted, "regress_id": outcome["regress_id"], "run_id": outcome["run_id"],
            "pass_rate": outcome["pass_rate"], "pass_rate_low": outcome["pass_rate_low"],
            "pass_rate_high": outcome["pass_rate_high"], "due_at": check["due_at"], "error": outcome["error"]}


def _due_at(db, check_id: int) -> str | None:
    row = db.execute("select due_at from monitor_checks where id = ?", [check_id]).fetchone()
    return row[0] if row else None


def _announce(store: Store, monitor: dict, check: dict) -> bool:
    """Tell the webhooks of a change of state (once: against the state they last heard).
    Returns whether every webhook received it."""
    previous = monitor.get("announced_state") or "ok"
    if not monitor["alerts"] or check["state"] == previous:
        return False
    body = alerts.payload(monitor, check, previous)
    delivered = True
    for url in monitor["alerts"]:
        with store.connection() as db:
            alert_id = repo.add_alert(db, {"monitor_id": monitor["id"], "check_id": check["id"],
                                           "state": check["state"], "target": alerts.shown(url),
                                           "status": "sending", "attempts": 0,
                                           "created_at": now_iso()})
        sent = alerts.deliver(url, body)
        delivered &= sent["status"] == "delivered"
        with store.connection() as db:
            repo.update_alert(db, alert_id, {**sent, "delivered_at": now_iso()
                                             if sent["status"] == "delivered" else None})
    with store.transaction() as db:
        changes = {"last_alert_at": now_iso()}
        if delivered:
            changes["announced_state"] = check["state"]
        repo.update(db, monitor["id"], changes)
        repo.finish_check(db, check["id"], {"alerted": delivered})
    return delivered
