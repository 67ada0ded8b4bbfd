"""Regression: re-sample a golden set on a candidate, and see whether it got worse — with the
statistics that tell a regression from sampling noise."""

import pandas as pd
import streamlit as st

from core import display
from core.analyse import charts
from core.config import SpreadError
from core.evaluate import regress, verdict
from core.execution import launch
from core.models import local_llm
from core.review import golden
from pages.parts.store import app_store

store = app_store()

st.title("Regression")
st.caption("Sample every item of a golden set K times on a candidate model or prompt version, score each sample "
           "with the item's checks (by default: the same meaning as its accepted answers, not a rejected one), "
           "and compare with an earlier regress run of the set.")
state = st.session_state
VERDICT_BOXES = {"pass": (st.success, ":material/check_circle:"), "fail": (st.error, ":material/cancel:"),
                 "inconclusive": (st.warning, ":material/help:")}

sets = golden.list_sets(store)
if not sets:
    st.info("No golden sets yet. Build one from reviewed answers (Review page) or import one (Golden sets page).")
    st.stop()
set_name = st.selectbox("Golden set", [s["name"] for s in sets], key="regress_set", persist_state="session",
                        format_func=lambda n: f"{n} · {next(s['items'] for s in sets if s['name'] == n)} items")
past = regress.history(store, set_name)

with st.form("regress"):
    left, middle, right = st.columns(3)
    model = left.text_input("Candidate model", local_llm.DEFAULT_MODEL, key="regress_model", persist_state="session",
                            help="An endpoint of the Models page, or any litellm model id, e.g. "
                                 "openai/gpt-4o-mini, or openai/<name> with an API base.")
    api_base = left.text_input("API base", key="regress_api_base", persist_state="session",
                               placeholder="for an OpenAI-compatible server")
    version = middle.number_input("Prompt version (0 = as recorded)", 0, 10_000, 0,
                                  key="regress_version", persist_state="session",
                                  help="Re-render each item from this version of the prompt it came from.")
    temperature = middle.number_input("Temperature", 0.0, 2.0, 0.7, 0.1,
                                      key="regress_temperature", persist_state="session")
    k = middle.number_input("Samples per item (K)", 1, 200, 5, key="regress_k", persist_state="session")
    baseline = right.selectbox("Baseline", [None] + [row["id"] for row in reversed(past)],
                               key="regress_baseline", persist_state="session",
                               format_func=lambda i: "none" if i is None else
                               next(f"regress {r['id']} · {r['model']} · {r['pass_rate']:.0%} · {r['created_at'][:16]}"
                                    for r in past if r["id"] == i))
    min_pass = right.number_input("Minimum pass rate (0 = no gate)", 0.0, 1.0, 0.0, 0.05,
                                  key="regress_min", persist_state="session",
                                  help="Fails when the pass rate's whole interval is below it; cannot tell "
                                       "(inconclusive) when only the estimate is.")
    max_drop = right.number_input("Maximum drop vs baseline", 0.0, 1.0, 0.0, 0.05,
                                  key="regress_drop", persist_state="session",
                                  help="Fails when the drop is larger and significant; cannot tell (inconclusive) "
                                       "when it is larger but sampling noise could explain it.")
    alpha = right.number_input("Significance (alpha)", 0.001, 0.5, 0.05, 0.01,
                               key="regress_alpha", persist_state="session")
    if local_llm.is_local(model):
        st.caption(local_llm.embedded(model).description)
    submitted = st.form_submit_button("Run the regression", type="primary")

if submitted:
    candidate = regress.Candidate(model=model, api_base=api_base.strip() or None,
                                  prompt_version=int(version) or None, temperature=float(temperature), n=int(k))
    gates = regress.Gates(min_pass_rate=min_pass or None, max_drop=max_drop if baseline else None, alpha=float(alpha))
    try:
        run_id = regress.prepare(store, set_name, candidate, gates, baseline_id=baseline, created_by=state.get("who", ""))
        # Where every run goes (the workers on PostgreSQL, this server's loop on SQLite): the
        # run outlives this page and this server, and whoever finishes it records the verdict.
        launch.resume(store, run_id)
        state["regress_run"] = run_id
    except SpreadError as e:
        st.error(display.inert(str(e)), icon=":material/error:")

STILL_SAMPLING = ("queued", "pending", "running")


def waiting_rows() -> list[dict]:
    """This set's regressions without a verdict: those still sampling, and the one asked
    for here whatever became of it."""
    return [row for row in regress.pending(store, set_name)
            if row["status"] in STILL_SAMPLING or row["run_id"] == state.get("regress_run")]


waiting = waiting_rows()
if waiting:
    moving = any(row["status"] in STILL_SAMPLING or (row["status"] == "done" and not row["error"]) for row in waiting)

    @st.fragment(run_every=1.0 if moving else None)
    def progress():
        rows = waiting_rows()
        for row in rows:
            title = f"Regress of run {row['run_id']} on {display.inert(row['model'])}"
            if row["error"]:
                st.error(f"{title}: no verdict: {display.inert(row['error'])}", icon=":material/error:")
            elif row["status"] in STILL_SAMPLING:
                st.progress(row["received"] / max(row["planned"], 1),
                            text=f"{title} ({row['status']}): {row['received']}/{row['planned']} samples · "
                                 f"{row['errors']} errors")
            elif row["status"] == "done":
                st.caption(f"{title}: sampled; scoring and comparing…")
            else:
                st.warning(f"{title}: {row['status']}. Resume it on the Runs page (or `spread resume "
                           f"{row['run_id']}`): the verdict is recorded when its run completes.",
                           icon=":material/pause_circle:")
        if [r["run_id"] for r in rows] != [r["run_id"] for r in waiting]:
            st.rerun()  # one was judged: draw its verdict and the history below

    progress()

asked = state.get("regress_run")
chosen = regress.for_run(store, asked) if asked is not None else None
if chosen is None or chosen["set_name"] != set_name:
    chosen = regress.get(store, past[-1]["id"]) if past else None
if chosen is not None:
    result = chosen["result"]
    heading = verdict.heading(result)
    st.subheader(f"Regress {chosen['id']}: {heading}" if heading else f"Regress {chosen['id']} (no gate set)")
    summary = verdict.summary(result)  # numbers and fixed words only: no model or user text
    if summary:
        show, icon = VERDICT_BOXES[result["gate"]]
        show(summary, icon=icon)
    a, b, c = st.columns(3)
    a.metric("Pass rate", verdict.pct(result["pass_rate"]),
             help="95% interval: the wider of a t interval over items (each item's samples are not independent) "
                  "and Wilson's over all samples")
    a.caption(f"95% interval {verdict.interval(result['pass_rate_low'], result['pass_rate_high'])} · "
              f"{len(result['items'])} items × K={result['n']}")
    if result.get("baseline_id") is not None:
        b.metric("Change vs baseline", verdict.signed_pct(result["change"]),
                 help=f"Candidate minus baseline (a drop is negative). Baseline regress {result['baseline_id']}: "
                      f"{verdict.pct(result['baseline_pass_rate'])}")
        b.caption(f"95% interval {verdict.interval(result['change_low'], result['change_high'], signed=True)} · "
                  f"p = {result['p_value']:.3g} (exact stratified test; alpha {result['alpha']}) · "
                  f"{result['items_regressed']} items worse, {result['items_improved']} better")
    c.metric("Cost", verdict.result_cost(result))
    c.caption(f"{display.inert(result['model'])} · T={result['temperature']:g} · "
              f"prompt version {result['prompt_version'] or 'as recorded'}")
    for note in result["notes"]:
        st.warning(display.inert(note))

    st.subheader("Items, worst change first")
    st.dataframe(pd.DataFrame(verdict.item_rows(result)), hide_index=True, width="stretch")
    samples = regress.item_samples(store, chosen["run_id"])
    for item in verdict.worst_first(result["items"])[:50]:
        with st.expander(display.inert(verdict.item_title(item))):
            st.text(item["prompt"])
            st.dataframe(pd.DataFrame(samples.get(item["key"], [])), hide_index=True, width="stretch")
            st.page_link("pages/spread.py", label="Its meaning clusters", icon=":material/scatter_plot:",
                         query_params={"run": chosen["run_id"]})

if past:
    st.subheader(f"History of {display.inert(set_name)}")
    st.plotly_chart(charts.regress_history(past), key="history")
    st.dataframe(pd.DataFrame(verdict.history_rows(past)), hide_index=True, width="stretch")
