"""Serve: `spread serve`'s traffic per route (confidence, abstentions, fallbacks, latency added)
and how well its confidence is calibrated by reviewers' labels."""

import pandas as pd
import streamlit as st

from core.config import SpreadError
from core.review import golden
from core.serve import calibration, traffic
from pages.parts.store import app_store

store = app_store()

st.title("Serve")
st.caption("Requests answered by `spread serve`. Each is an input of a run (one per route, day and request shape): "
           "open it on the Runs, Spread or Review pages to read and label its answers.")

def rate(row: dict, name: str) -> str:
    return f"{row[name + '_rate']:.0%} [{row[name + '_low']:.0%}, {row[name + '_high']:.0%}]"


def calibration_shown(points_of, precision: float, empty: str) -> None:
    """The calibration report of some labelled answers: its text and its reliability table."""
    try:
        report = calibration.report(points_of(), precision=precision)
    except SpreadError as e:
        st.info(f"{e}. {empty}")
        return
    st.text(calibration.as_text(report))
    st.dataframe(pd.DataFrame(report["reliability"]), hide_index=True, width="stretch")


def traffic_section(rows: list[dict], precision: float) -> None:
    st.dataframe(pd.DataFrame([{
        "route": r["route"], "requests": r["requests"], "runs": r["runs"], "mean confidence": r["mean_confidence"],
        "abstained (95% CI)": rate(r, "abstention"), "fell back (95% CI)": rate(r, "fallback"),
        "all calls failed": rate(r, "failure"), "mean k": r["mean_k"], "calls": r["calls"],
        "set aside by checks": r["filtered"], "added p50 ms": r["latency_added_p50_ms"],
        "added p95 ms": r["latency_added_p95_ms"], "cost USD": r["cost_usd"], "last": r["last"][:19].replace("T", " "),
    } for r in rows]), hide_index=True, width="stretch")
    st.caption("Latency added: a request's time beyond the slowest upstream call of each round it waited for "
               "(deciding, checking, storing).")
    route = st.selectbox("Route", [r["route"] for r in rows], key="serve_route")
    left, right = st.columns(2)
    with left:
        st.subheader("Confidence")
        histogram = pd.DataFrame(traffic.confidence_histogram(store, route))
        st.bar_chart(histogram, x="confidence", y="requests")
    with right:
        st.subheader("Calibration")
        calibration_shown(lambda: calibration.points_for_route(store, route), precision,
                          "Confidence is calibrated only where reviewers labelled the answers it chose.")
    st.subheader("Latest requests")
    st.dataframe(pd.DataFrame(traffic.recent(store, route)), hide_index=True, width="stretch")


precision = st.slider("Precision wanted", 0.5, 0.99, 0.95, 0.01, key="serve_precision",
                      help="The threshold proposed is the lowest confidence whose precision's lower bound reaches this.")
rows = traffic.summary(store)
if rows:
    traffic_section(rows, precision)
else:
    st.info("No served requests yet. Start an endpoint with `spread serve --route NAME=MODEL` and point an OpenAI "
            "client's base URL at it. A run or a golden set can be calibrated below all the same.")

with st.expander("Calibrate a run"):
    st.caption("Any run: each input's largest meaning against reviewers' labels (its checks where an input has "
               "none, counted apart).")
    run_id = st.number_input("Run", min_value=1, step=1, value=None, key="serve_calibrate_run")
    if run_id is not None:
        calibration_shown(lambda: calibration.points_for_run(store, int(run_id)), precision,
                          "Label its answers on the Review page.")

with st.expander("Calibrate a golden set"):
    st.caption("Every regress run of the set, pooled: each item's largest meaning against its checks (an item's "
               "accepted and rejected answers) — what `--min-confidence calibrated:P` can rest on for those prompts.")
    sets = [s["name"] for s in golden.list_sets(store)]
    chosen = st.selectbox("Golden set", sets, index=None, key="serve_calibrate_set", placeholder="choose a set")
    if chosen is not None:
        calibration_shown(lambda: calibration.points_for_golden(store, chosen), precision,
                          "Run a regression of the set (Regression page) to have answers to calibrate on.")
