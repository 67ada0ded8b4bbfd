"""Traces: production's LLM calls (spread import-traces, spread collect) — volume, cost and
latency, the most frequent prompts, how production's answers spread for inputs seen more
than once, a call's whole conversation, and real inputs re-run on a candidate model."""

import datetime as dt

import streamlit as st

from core import config, display
from core.analyse import charts, embed, spread
from core.config import SpreadError
from core.execution import launch
from core.formats.traces import golden as traced_golden
from core.formats.traces import production
from core.review import golden
from core.run import plan
from core.store import Store
from core.store import traces as stored
from core.store.traces import CallFilter
from pages.parts import conversation_view
from pages.parts.store import app_store

st.title("Traces")


store = app_store()
with store.connection() as db:
    total = stored.count(db)
    first, last = stored.time_range(db)
    facets = stored.facets(db)
if not total:
    st.info("No production calls yet. Import an export with `spread import-traces FILE`, or point an app's "
            "OTLP exporter at `spread collect`.")
    st.stop()

# --- filters ---------------------------------------------------------------------------------
left, middle, right = st.columns(3)
start_day, end_day = dt.date.fromisoformat(first[:10]), dt.date.fromisoformat(last[:10])
days = left.date_input("Days (UTC)", (start_day, end_day), min_value=start_day, max_value=end_day, key="traces_days")
service = middle.selectbox("Service", ["", *facets["services"]], format_func=lambda s: s or "all services",
                           key="traces_service")
model = right.selectbox("Model", ["", *facets["models"]], format_func=lambda m: m or "all models",
                        key="traces_model")
since = days[0].isoformat() if len(days) > 0 else None
until = (days[1] + dt.timedelta(days=1)).isoformat() if len(days) > 1 else None
where = CallFilter(since=since, until=until, service=service or None, model=model or None)


@st.cache_data(max_entries=8, show_spinner="Reading production calls…", hash_funcs={Store: lambda store: str(store.target)})
def overview(store: Store, where: CallFilter, calls: int, bucket: str) -> dict:
    return production.overview(store, where, bucket=bucket)


bucket = "hour" if len(days) > 1 and (days[1] - days[0]).days <= 3 else "day"
seen = overview(store, where, total, bucket)
prompts = seen["prompts"]
prompt_keys = [p["prompt_key"] for p in prompts]
labels = {p["prompt_key"]: production.prompt_label(p) for p in prompts}
chosen_prompt = st.selectbox("Prompt", ["", *prompt_keys], key="traces_prompt",
                             format_func=lambda k: labels.get(k, "all prompts") if k else "all prompts")
if chosen_prompt:
    where = CallFilter(since=since, until=until, service=service or None, model=model or None,
                       prompt_key=chosen_prompt)
    seen = overview(store, where, total, bucket)
if not seen["calls"]:
    st.warning("No call matches these filters.")
    st.stop()

a, b, c = st.columns(3)
a.metric("Calls", f"{seen['calls']:,}")
known = [m["cost_usd"] for m in seen["measures"] if m["cost_usd"] is not None]
b.metric("Known cost", display.usd(sum(known), len(seen["measures"]) - len(known)) if known else "unknown")
c.metric("Prompts", len(seen["prompts"]))
st.plotly_chart(production.volume_chart(seen["volume"]), key="traces_volume")
frame = production.measures_frame(seen["measures"])
left, right = st.columns(2)
left.plotly_chart(charts.latency_distributions(frame), key="traces_latency")
cost_chart = charts.cost_distributions(frame)
if cost_chart is None:
    right.caption("No cost chart: no call in these traces says what it cost.")
else:
    right.plotly_chart(cost_chart, key="traces_cost")

st.subheader("Most frequent prompts")
st.dataframe([{"prompt": labels[p["prompt_key"]], "calls": p["calls"], "distinct inputs": p["inputs"],
               "first seen": p["first_seen"], "last seen": p["last_seen"]} for p in seen["prompts"]],
             hide_index=True)

# --- the spread production shows ---------------------------------------------------------------
st.subheader("How production's answers spread")
st.caption("Inputs seen more than once, analysed as a run of observed answers: the same meaning clusters "
           "and consistency as a run.")
methods = list(embed.METHODS) if embed.model_available() else ["tfidf", "exact"]
left, right = st.columns(2)
method = left.radio("Group answers by", methods, format_func=embed.METHODS.get, key="traces_method",
                    horizontal=True)
threshold = right.slider("Similarity threshold", 0.30, 0.99, spread.DEFAULT_THRESHOLD, 0.01, key="traces_threshold")


@st.cache_data(max_entries=8, show_spinner="Clustering production's answers…",
               hash_funcs={Store: lambda store: str(store.target)})
def spread_of(store: Store, where: CallFilter, calls: int, method: str, threshold: float):
    found = production.spread_of_inputs(store, where, method=method, threshold=threshold)
    if found.analysis is None:
        return None, []
    return {"rows": found.analysis.group(["input"]),
            "clusters": [(c.input, c.size, c.representative) for c in found.analysis.clusters]}, found.inputs


found, repeated = spread_of(store, where, seen["calls"], method, threshold)
if not repeated:
    st.info("No input was seen more than once under these filters: nothing to compare yet.")
else:
    rows = {row["input"]: row for row in found["rows"]}
    pick = st.selectbox("Input", [i["input"] for i in repeated], key="traces_input",
                        format_func=lambda k: f"{repeated[k]['calls']} calls · "
                                              f"{display.one_line(repeated[k]['question'], 90)}")
    row = rows[pick]
    a, b, c = st.columns(3)
    a.metric("Consistency", f"{row['consistency']:.0%}",
             help=f"share of the largest meaning; 95% interval {row['consistency_low']:.0%}–"
                  f"{row['consistency_high']:.0%}")
    a.caption(f"interval {row['consistency_low']:.0%}–{row['consistency_high']:.0%} over {row['count']} answers")
    b.metric("Meanings", row["n_clusters"])
    c.metric("Distinct answers", row["distinct_answers"])
    with st.expander("The conversation"):
        conversation_view.draw(repeated[pick]["messages"])
    for input_idx, size, representative in found["clusters"]:
        if input_idx == pick:
            with st.expander(f"{size} answers ({size / row['count']:.0%})"):
                st.text(representative)

# --- a call -----------------------------------------------------------------------------------
st.subheader("Calls")
with store.connection() as db:
    recent = stored.calls(db, where, limit=200)
call_id = st.selectbox("Call", [r["id"] for r in recent], key="traces_call",
                       format_func=lambda i: next(f"{r['id']} · {r['started_at'] or ''} · "
                                                  f"{r['model_reported'] or r['model_requested'] or ''} · "
                                                  f"{display.one_line(r['output_text'] or '', 60)}"
                                                  for r in recent if r["id"] == i))
call = next(r for r in recent if r["id"] == call_id)
conversation_view.draw(call["messages"])
st.caption("Production's answer")
st.text(call["output_text"] or "")
for made in call["output_calls"] or []:
    st.code(f"{made['name']}({made['arguments']})", language=None)
st.caption(f"{call['input_tokens'] or '?'} → {call['output_tokens'] or '?'} tokens · "
           f"{'%.0f ms' % call['latency_ms'] if call['latency_ms'] is not None else 'latency unknown'} · "
           f"cost {display.usd(call['cost_usd']) if call['cost_usd'] is not None else 'unknown'} · "
           f"span {call['span_id'] or '-'}")
sets = [s["name"] for s in golden.list_sets(store)]
if sets:
    left, right = st.columns([2, 3])
    target_set = left.selectbox("Golden set", sets, key="traces_golden_set")
    correction = right.text_input("Correction (if production's answer is wrong)", key="traces_correction")
    if st.button("Add this call to the golden set", key="traces_add_golden"):
        try:
            version = traced_golden.add_calls(store, target_set, [str(call_id)], who=st.session_state.get("who", ""),
                                              correction=correction or None)
            st.success(f"Added to {display.inert(target_set)}: version {version}")
        except SpreadError as error:
            st.error(display.inert(str(error)))

# --- real inputs on a candidate ---------------------------------------------------------------
st.subheader("Re-run real inputs on a candidate")
left, middle, right = st.columns(3)
sample = left.number_input("Distinct inputs", 1, 1000, 10, key="traces_sample")
strategy = middle.radio("Sample", production.STRATEGIES, key="traces_strategy", horizontal=True,
                        help="diverse: spread over the inputs' meanings, near-duplicates dropped")
candidate = right.text_input("Candidate model", key="traces_candidate", placeholder="e.g. openai/gpt-4.1-mini")
if st.button("Start the run", key="traces_start", disabled=not candidate.strip()):
    try:
        chosen = production.sample_inputs(store, int(sample), strategy=strategy, where=where)
        spec = plan.RunSpec(variants=[plan.Variant("", "", "production", production.replay(chosen))], inputs=chosen,
                            models=[candidate.strip()], temperatures=[1.0], n=1, name="production sample")
        run_id = launch.start(store, spec, created_by=st.session_state.get("who", ""))
        st.success(f"Run {run_id} started on {len(chosen)} production inputs: see it on Runs or Spread.")
    except SpreadError as error:
        st.error(display.inert(str(error)))
