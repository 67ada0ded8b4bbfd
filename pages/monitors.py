"""Monitors: golden sets re-sampled on a schedule, each check gated against a baseline,
with drift signals and one alert per change of state (core/watch/)."""

import pandas as pd
import streamlit as st

from core.store import Store
from core import display
from core.config import SpreadError
from core.review import golden
from core.watch import charts, due, monitors
from pages.parts.store import app_store

store = app_store()

st.title("Monitors")
st.caption("A monitor re-samples a golden set on a model on a schedule; the workers run each check as a regression "
           "run against a pinned baseline, compute drift signals with their statistics, and tell the webhooks once "
           "per change of state. `spread watch run-due` runs due checks from cron or CI.")
state = st.session_state
who = state.get("reviewer") or ""


def settings_form(key: str, current: dict | None):
    """The monitor's settings; returns them when submitted."""
    sets = [s["name"] for s in golden.list_sets(store)]
    with st.form(key):
        left, middle, right = st.columns(3)
        name = current["name"] if current else left.text_input("Name")
        set_name = left.selectbox("Golden set", sets, index=sets.index(current["set_name"])
                                  if current and current["set_name"] in sets else 0)
        model = left.text_input("Model", current["model"] if current else "",
                                help="An endpoint of the Models page, or a litellm id.")
        temperature = middle.number_input("Temperature", 0.0, 2.0, float(current["temperature"]) if current else 0.7,
                                          0.1)
        n = middle.number_input("Samples per item (K)", 1, monitors.MAX_N, int(current["n"]) if current else 5)
        every = middle.text_input("Every", current["every"] if current else "1h",
                                  help="15m, 1h, 6h, 1d, or a cron expression in UTC, e.g. 30 9 * * 1-5")
        baseline = right.text_input("Baseline", "first" if not current or current["baseline_id"] is None
                                    else str(current["baseline_id"]),
                                    help="`first` (the first check) or a regress run id of the same set")
        urls = right.text_area("Webhooks, one per line", "" if current else "",
                               help="http(s) URLs told of each change of state (Slack-compatible). "
                                    + ("Leave empty to keep the current ones." if current else ""))
        submitted = st.form_submit_button("Save" if current else "Create")
    if not submitted:
        return None
    alert_urls = [line.strip() for line in urls.splitlines() if line.strip()]
    return {"name": name, "set_name": set_name, "model": model, "temperature": temperature, "n": int(n),
            "every": every, "baseline": baseline, "alert_urls": alert_urls}


found = [monitors.public(m) for m in monitors.listing(store)]
with st.expander("New monitor", expanded=not found):
    if not golden.list_sets(store):
        st.info("No golden sets yet: build one on the Review page or import one on the Golden sets page.")
    else:
        given = settings_form("new_monitor", None)
        if given:
            try:
                monitors.add(store, given.pop("name"), created_by=who, **given)
            except SpreadError as error:
                st.error(str(error))
            else:
                st.rerun()

if not found:
    st.info("No monitors yet.")
    st.stop()

st.dataframe(pd.DataFrame([{
    "monitor": m["name"], "golden set": m["set_name"], "model": m["model"], "every": m["every"],
    "state": "paused" if m["paused"] else m["state"], "next due": None if m["paused"] else m["next_due_at"],
    "last check": m["last_check_at"], "last alert": m["last_alert_at"]} for m in found]),
    hide_index=True, width="stretch")

name = st.selectbox("Monitor", [m["name"] for m in found], key="monitor_chosen", persist_state="session")
details = monitors.details(store, name)
if details["state"] == "alerting":
    st.error(f"{display.inert(name)} is alerting", icon=":material/notifications_active:")
else:
    st.success(f"{display.inert(name)} is ok", icon=":material/check_circle:")
baseline = details["baseline_id"] if details["baseline_id"] is not None else "(its first check)"
st.caption(display.inert(
    f"{details['set_name']} on {details['model']} (T={details['temperature']:g}, K={details['n']}) every "
    f"{details['every']}, against regress {baseline}"
    + (f"; alerts to {', '.join(details['alerts'])}" if details["alerts"] else "; no webhooks")
    + (f"; last alert {details['last_alert_at']}" if details["last_alert_at"] else "")))
for failed in details["failed_deliveries"][:3]:
    st.warning(f"Alert not delivered ({failed['state']}, to {failed['target']}, {failed['created_at']}): "
               f"{failed['error']} after {failed['attempts']} attempts. It is tried again at the next check.",
               icon=":material/sms_failed:")

buttons = st.columns(4)
if details["paused"]:
    if buttons[0].button("Resume", icon=":material/play_arrow:"):
        monitors.set_paused(store, name, False)
        st.rerun()
elif buttons[0].button("Pause", icon=":material/pause:"):
    monitors.set_paused(store, name, True)
    st.rerun()
with st.expander("Edit"):
    given = settings_form(f"edit_{name}", details)
    if given:
        given.pop("name")
        given["alert_urls"] = given["alert_urls"] or None
        try:
            monitors.edit(store, name, **given)
        except SpreadError as error:
            st.error(str(error))
        else:
            st.rerun()

rows = monitors.history(store, name)
if not rows:
    st.info("No check yet: the workers run the first one when it is due (or `spread watch run-due --force`).")
    st.stop()
st.plotly_chart(charts.pass_rate(rows), key="monitor_pass_rate")
for key, figure in (("monitor_meaning", charts.meaning_shares(rows)), ("monitor_latency", charts.latency(rows)),
                    ("monitor_cost", charts.cost(rows))):
    if figure is not None:
        st.plotly_chart(figure, key=key)

st.subheader("A check")
check_ids = [row["check_id"] for row in rows][::-1]
chosen_id = st.selectbox("Check", check_ids, key=f"monitor_check_{name}",
                         format_func=lambda i: next(f"{r['when']} · {r['verdict'] or 'no verdict'} · {r['state']}"
                                                    + (" · baseline" if r["is_baseline"] else "")
                                                    for r in rows if r["check_id"] == i))
check = next(row for row in rows if row["check_id"] == chosen_id)
for signal in check["signals"]:
    (st.error if signal["alerting"] else st.caption)(display.inert(f"{signal['kind']}: {signal['summary']}"))
if check["error"]:
    st.error(display.inert(check["error"]))
if check["run_id"] is not None:
    links = st.columns(3)
    links[0].page_link("pages/spread.py", label="Its run on Spread", icon=":material/scatter_plot:",
                       query_params={"run": check["run_id"]})
    if links[1].button("Review its answers", icon=":material/rule:"):
        state["review_runs"] = [check["run_id"]]
        st.switch_page("pages/review.py")
    if check["baseline_run_id"] is not None and not check["is_baseline"] and links[2].button(
            "Compare with the baseline", icon=":material/compare_arrows:"):
        state["run_A"], state["run_B"] = check["baseline_run_id"], check["run_id"]
        st.switch_page("pages/compare.py")
