"""Watch: `spread watch add|edit|list|show|pause|resume|remove|run-due` (monitors that
re-sample golden sets on a schedule and alert when a model's behaviour moves)."""

from __future__ import annotations

import asyncio

import click

from core.cli.common import json_option, pass_store, print_json
from core.store import Store

now_option = click.option("--now", metavar="ISO", help="act as if it were this instant (UTC unless an offset is given)")


def _now(text):
    from core.watch import schedule

    return schedule.parse(text) if text else None


@click.group("watch")
def watch_group():
    """Monitors: re-sample a golden set on a model on a schedule, compare each check with a
    pinned baseline through the regression gate, and send one webhook alert per change of
    state (ok → alerting → ok). The workers (`spread worker`, and each app server's on
    PostgreSQL) run due checks by themselves; `spread watch run-due` runs them from cron or CI."""


def _settings_options(required: bool):
    def decorate(f):
        for option in reversed([
            click.option("--golden", "set_name", required=required, metavar="SET", help="the golden set to re-sample"),
            click.option("--model", required=required, metavar="M",
                         help="an endpoint of the catalogue (`spread models add`), or a litellm id"),
            click.option("--temperature", type=float, default=0.7 if required else None, show_default=required,
                         metavar="T"),
            click.option("--n", type=int, default=5 if required else None, show_default=required, metavar="K",
                         help="samples per item at each check"),
            click.option("--baseline-n", type=int, default=None, metavar="K",
                         help="samples per item of a `first` baseline (default: 4 × --n; it is paid once and "
                              "every check is compared with it)"),
            click.option("--every", required=required, metavar="15m|1h|6h|1d|CRON",
                         help="the schedule: a fixed interval, aligned to the clock, or a cron expression in UTC "
                              "(five fields, quoted)"),
            click.option("--baseline", default="first" if required else None, show_default=required,
                         metavar="REGRESS_ID|first",
                         help="the regress run each check is compared with; `first`: the monitor's first check"),
            click.option("--alert", "alert_urls", multiple=True, metavar="URL",
                         help="a webhook told of each change of state: an http(s) URL, or env:NAME, the variable that "
                              "holds it (keeps a tokened URL out of the database); repeatable"),
            click.option("--alpha", type=float, default=None, metavar="A",
                         help="significance level of each alerting test per check (default 0.0003: under one "
                              "false alarm a month in all at an hourly cadence)"),
        ]):
            f = option(f)
        return f
    return decorate


@watch_group.command("add")
@click.argument("name")
@_settings_options(required=True)
@now_option
@json_option
@pass_store
def add_command(store: Store, name, set_name, model, temperature, n, baseline_n, every, baseline, alert_urls,
                alpha, now, as_json):
    """Create a monitor; its first check is due at once."""
    from core.cli.common import reviewer
    from core.watch import monitors

    monitor = monitors.add(store, name, set_name=set_name, model=model, temperature=temperature, n=n,
                           every=every, baseline=baseline, alert_urls=alert_urls, baseline_n=baseline_n,
                           alpha=monitors.DEFAULT_ALPHA if alpha is None else alpha, created_by=reviewer(),
                           now=_now(now))
    _print_monitor(monitors.public(monitor), as_json, f"monitor {name} created")


@watch_group.command("edit")
@click.argument("name")
@_settings_options(required=False)
@click.option("--no-alerts", is_flag=True, help="remove every webhook")
@now_option
@json_option
@pass_store
def edit_command(store: Store, name, set_name, model, temperature, n, baseline_n, every, baseline, alert_urls,
                 alpha, no_alerts, now, as_json):
    """Change a monitor's settings (the ones given); `--alert` replaces its webhooks."""
    from core.watch import monitors

    urls = [] if no_alerts else (list(alert_urls) or None)
    monitor = monitors.edit(store, name, set_name=set_name, model=model, temperature=temperature, n=n,
                            baseline_n=baseline_n, every=every, baseline=baseline, alert_urls=urls, alpha=alpha, now=_now(now))
    _print_monitor(monitors.public(monitor), as_json, f"monitor {name} changed")


@watch_group.command("list")
@json_option
@pass_store
def list_command(store: Store, as_json):
    """Every monitor: its schedule, state and next due time."""
    from core.watch import monitors

    found = [monitors.public(m) for m in monitors.listing(store)]
    if as_json:
        print_json({"monitors": found})
        return
    if not found:
        print("no monitors: add one with `spread watch add NAME --golden SET --model M --every 1h`")
    for m in found:
        print(f"{m['name']}: {m['set_name']} on {m['model']} every {m['every']} — {m['state']}"
              + (" (paused)" if m["paused"] else f", next due {m['next_due_at']}"))


@watch_group.command("show")
@click.argument("name")
@click.option("--checks", type=click.IntRange(1, 1000), default=20, show_default=True, metavar="N",
              help="how many of the latest checks to show")
@json_option
@pass_store
def show_command(store: Store, name, checks, as_json):
    """A monitor, its latest checks with their signals, and its webhook deliveries (failed ones first)."""
    from core.watch import monitors

    found = monitors.details(store, name, checks=checks)
    if as_json:
        print_json(found)
        return
    _print_monitor(found, False, f"monitor {name}")
    for failed in found["failed_deliveries"]:
        print(f"  ALERT NOT DELIVERED ({failed['state']}, to {failed['target']}, {failed['created_at']}): "
              f"{failed['error']} after {failed['attempts']} attempt(s)")
    for check in found["checks"][::-1]:
        when = check["due_at"] or f"forced at {check['started_at']}"
        rate = "" if check["pass_rate"] is None else (
            f" pass rate {check['pass_rate']:.0%} [{check['pass_rate_low']:.0%}–{check['pass_rate_high']:.0%}]")
        print(f"  check {check['id']} ({when}): {check['status']}, verdict {check['verdict'] or '—'},"
              f"{rate} → {check['state'] or '—'}" + (" (alerted)" if check["alerted"] else ""))
        for signal in check["signals"]:
            print(f"    {signal['kind']}{' [ALERTING]' if signal['alerting'] else ''}: {signal['summary']}")
        if check["error"]:
            print(f"    error: {check['error']}")


@watch_group.command("pause")
@click.argument("name")
@json_option
@pass_store
def pause_command(store: Store, name, as_json):
    """Stop running a monitor's checks (its history stays)."""
    from core.watch import monitors

    _print_monitor(monitors.public(monitors.set_paused(store, name, True)), as_json, f"monitor {name} paused")


@watch_group.command("resume")
@click.argument("name")
@now_option
@json_option
@pass_store
def resume_command(store: Store, name, now, as_json):
    """Run a paused monitor again, from its next slot."""
    from core.watch import monitors

    monitor = monitors.set_paused(store, name, False, now=_now(now))
    _print_monitor(monitors.public(monitor), as_json, f"monitor {name} resumed")


@watch_group.command("remove")
@click.argument("name")
@json_option
@pass_store
def remove_command(store: Store, name, as_json):
    """Delete a monitor and its checks' records (their regress runs stay)."""
    from core.watch import monitors

    monitors.remove(store, name)
    if as_json:
        print_json({"removed": name})
    else:
        print(f"monitor {name} removed")


@watch_group.command("run-due")
@click.option("--force", is_flag=True, help="run every monitor now, due or not")
@click.option("--monitor", "names", multiple=True, metavar="NAME", help="only this monitor (repeatable)")
@click.option("--fail-on-alert", is_flag=True, help="exit 1 when a monitor checked is alerting (else 0: the "
              "webhooks carry the news)")
@now_option
@json_option
@pass_store
def run_due_command(store: Store, force, names, fail_on_alert, now, as_json):
    """Run every due monitor's check once and exit: what a cron job or a CI step calls. A
    window missed while nothing ran is run once, not once per missed slot."""
    from core.watch import monitors

    checks = asyncio.run(monitors.run_due(store, now=_now(now), force=force, names=list(names) or None))
    if as_json:
        print_json({"checks": checks})
    else:
        if not checks:
            print("no monitor due")
        for check in checks:
            print(f"{check['monitor']}: verdict {check['verdict'] or '—'} → {check['state']}"
                  + (" (alert sent)" if check["alerted"] else ""))
            for signal in check["signals"]:
                print(f"  {signal['kind']}{' [ALERTING]' if signal['alerting'] else ''}: {signal['summary']}")
            if check["error"]:
                print(f"  error: {check['error']}")
    return 1 if fail_on_alert and any(c["state"] == "alerting" for c in checks) else 0


def _print_monitor(monitor: dict, as_json: bool, heading: str) -> None:
    if as_json:
        print_json(monitor)
        return
    baseline = monitor["baseline_id"] if monitor["baseline_id"] is not None else "its first check"
    print(f"{heading}: {monitor['set_name']} on {monitor['model']} (T={monitor['temperature']:g}, K={monitor['n']}) "
          f"every {monitor['every']}, against regress {baseline}; state {monitor['state']}"
          + (", paused" if monitor["paused"] else f", next due {monitor['next_due_at']}"))
    if monitor["alerts"]:
        print(f"  alerts to {', '.join(monitor['alerts'])}")


COMMANDS = [watch_group]
