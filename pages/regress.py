"""Regression: re-sample a golden set on a candidate, and see whether it got worse — with the
statistics that tell a regression from sampling noise."""

import pandas as pd
import streamlit as st

from core import display, store
from core.analyse import charts
from core.config import SpreadError
from core.evaluate import regress, scoring
from core.review import golden
from core.run import local_llm, runner

st.title("Regression")
st.caption("Sample every item of a golden set K times on a candidate model or prompt version, score each sample "
           "with the item's checks (by default: the same meaning as its accepted answers, not a rejected one), "
           "and compare with an earlier regress run of the set.")
state = st.session_state

sets = golden.list_sets()
if not sets:
    st.info("No golden sets yet. Build one from reviewed answers (Review page) or import one (Golden sets page).")
    st.stop()
set_name = st.selectbox("Golden set", [s["name"] for s in sets], key="regress_set",
                        format_func=lambda n: f"{n} · {next(s['items'] for s in sets if s['name'] == n)} items")
past = regress.history(set_name)

with st.form("regress"):
    left, middle, right = st.columns(3)
    model = left.text_input("Candidate model", local_llm.DEFAULT_MODEL, key="regress_model",
                            help="An endpoint of the Models page, or any litellm model id, e.g. "
                                 "openai/gpt-4o-mini, or openai/<name> with an API base.")
    api_base = left.text_input("API base", key="regress_api_base", placeholder="for an OpenAI-compatible server")
    version = middle.number_input("Prompt version (0 = as recorded)", 0, 10_000, 0, key="regress_version",
                                  help="Re-render each item from this version of the prompt it came from.")
    temperature = middle.number_input("Temperature", 0.0, 2.0, 0.7, 0.1, key="regress_temperature")
    k = middle.number_input("Samples per item (K)", 1, 200, 5, key="regress_k")
    baseline = right.selectbox("Baseline", [None] + [row["id"] for row in reversed(past)], key="regress_baseline",
                               format_func=lambda i: "none" if i is None else
                               next(f"regress {r['id']} · {r['model']} · {r['pass_rate']:.0%} · {r['created_at'][:16]}"
                                    for r in past if r["id"] == i))
    min_pass = right.number_input("Minimum pass rate (0 = no gate)", 0.0, 1.0, 0.0, 0.05, key="regress_min")
    max_drop = right.number_input("Maximum drop vs baseline", 0.0, 1.0, 0.0, 0.05, key="regress_drop",
                                  help="Fails only when the drop is larger and significant.")
    alpha = right.number_input("Significance (alpha)", 0.001, 0.5, 0.05, 0.01, key="regress_alpha")
    if local_llm.is_local(model):
        st.caption(local_llm.embedded(model).description)
    submitted = st.form_submit_button("Run the regression", type="primary")

if submitted:
    candidate = regress.Candidate(model=model, api_base=api_base.strip() or None,
                                  prompt_version=int(version) or None, temperature=float(temperature), n=int(k))
    gates = regress.Gates(min_pass_rate=min_pass or None, max_drop=max_drop if baseline else None, alpha=float(alpha))
    try:
        run_id = regress.prepare(set_name, candidate, gates, baseline_id=baseline, created_by=state.get("who", ""))
        state["regress_job"] = (run_id, runner.spawn(regress.complete(
            run_id, set_name, candidate, gates, baseline_id=baseline, created_by=state.get("who", ""))))
    except SpreadError as e:
        st.error(display.inert(str(e)), icon=":material/error:")

job = state.get("regress_job")
if job is not None:
    run_id, future = job

    @st.fragment(run_every=1.0 if not future.done() else None)
    def progress():
        with store.connect() as db:
            run = store.get_run(db, run_id)
        if not future.done():
            st.progress(run["received"] / max(run["planned"], 1),
                        text=f"Sampling: {run['received']}/{run['planned']} samples · {run['errors']} errors")
            return
        error = future.exception()
        if error is not None:
            st.error(display.inert(str(error)), icon=":material/error:")
        elif state.get("regress_drawn") != run_id:
            state["regress_drawn"] = run_id
            st.rerun()  # once: draw the verdict below

    progress()

chosen = regress.for_run(job[0]) if job is not None else (regress.get(past[-1]["id"]) if past else None)
if chosen is not None:
    result = chosen["result"]
    verdict = "holds" if result["gate"] == "pass" else "FAILS"
    st.subheader(f"Regress {chosen['id']}: the gate {verdict}")
    a, b, c = st.columns(3)
    a.metric("Pass rate", f"{result['pass_rate']:.0%}",
             help=f"95% interval {result['pass_rate_low']:.0%}–{result['pass_rate_high']:.0%} "
                  f"(over items: each item's samples are not independent)")
    a.caption(f"95% interval {result['pass_rate_low']:.0%} – {result['pass_rate_high']:.0%} · "
              f"{len(result['items'])} items × K={result['n']}")
    if result.get("baseline_id") is not None:
        b.metric("Drop vs baseline", f"{result['drop']:+.0%}",
                 help=f"Baseline regress {result['baseline_id']}: {result['baseline_pass_rate']:.0%}")
        b.caption(f"p = {result['p_value']:.3g} (exact stratified test; alpha {result['alpha']}) · "
                  f"{result['items_regressed']} items worse, {result['items_improved']} better")
    c.metric("Model · prompt version", f"{display.inert(result['model'])}",
             help=f"T={result['temperature']}, prompt version {result['prompt_version'] or 'as recorded'}")
    for gate in result["gates"]:
        (st.success if gate["passed"] else st.error)(
            f"{gate['gate']} {gate['threshold']}: {gate['value']} — {'holds' if gate['passed'] else 'fails'}")
    for note in result["notes"]:
        st.warning(display.inert(note))

    st.subheader("Items, worst change first")
    items = sorted(result["items"], key=lambda i: (i.get("change") if i.get("change") is not None else 0,
                                                   i["pass_rate"] if i["pass_rate"] is not None else 1))
    st.dataframe(pd.DataFrame([{
        "item": i["key"][:12], "passes": f"{i['passes']}/{i['samples']}", "pass rate": i["pass_rate"],
        "interval": f"{i['pass_rate_low']:.0%}–{i['pass_rate_high']:.0%}" if i["pass_rate_low"] is not None else "",
        "baseline": i.get("baseline_pass_rate"), "change": i.get("change"), "p (Holm)": i.get("p_adjusted"),
        "regressed": i.get("regressed", False), "all pass": i["all_pass"], "meanings": i["meanings"],
    } for i in items]), hide_index=True, width="stretch")
    with store.connect() as db:
        answers = store.responses(db, chosen["run_id"])
        keys = {i["input"]: i["vars"].get("golden.item_key") for i in store.run_inputs(db, chosen["run_id"])}
    verdicts = {}
    for row in scoring.stored_results(chosen["run_id"]):
        verdicts.setdefault(row["response_id"], []).append(row)
    for item in items[:50]:
        title = (f"{item['key'][:12]} · {item['passes']}/{item['samples']} pass"
                 + (f" · {item['change']:+.0%}" if item.get("change") is not None else "")
                 + (" · regressed" if item.get("regressed") else ""))
        with st.expander(title):
            samples = [a for a in answers if keys.get(a["input"]) == item["key"]]
            st.dataframe(pd.DataFrame([{
                "answer": a["text"], "passed": all(r["passed"] for r in verdicts.get(a["id"], []))
                if a["error_type"] is None else None,
                "why": "; ".join(r["reason"] for r in verdicts.get(a["id"], []) if not r["passed"] and r["reason"]),
                "error": a["error_type"], "provider model": a["provider_model"],
            } for a in samples]), hide_index=True, width="stretch")
            st.page_link("pages/spread.py", label="Its meaning clusters", icon=":material/scatter_plot:",
                         query_params={"run": chosen["run_id"]})

if past:
    st.subheader(f"History of {display.inert(set_name)}")
    st.plotly_chart(charts.regress_history(past), key="history")
    st.dataframe(pd.DataFrame(past), hide_index=True, width="stretch")
