"""Spread: how far one run's answers spread, by meaning, length, cost and latency."""

import streamlit as st

from core import display, store

from core.analyse import charts, embed, spread

st.title("Spread")

with store.connect() as db:
    runs = store.list_runs(db)
if not runs:
    st.info("No runs yet. Start one in the Playground.")
    st.stop()

ids = [run["id"] for run in runs]
requested = st.query_params.get("run")
run_id = st.selectbox("Run", ids, index=ids.index(int(requested)) if requested in map(str, ids) else 0,
                      format_func=lambda i: f"{i} · {next(r['name'] for r in runs if r['id'] == i)}", key="spread_run")
st.query_params["run"] = str(run_id)

methods = list(embed.METHODS) if embed.model_available() else ["tfidf", "exact"]
left, middle, right = st.columns(3)
method = left.radio("Group answers by", methods, format_func=embed.METHODS.get, key="method", horizontal=False)
threshold = middle.slider("Similarity threshold", 0.30, 0.99, spread.DEFAULT_THRESHOLD, 0.01, key="threshold",
                          help="Answers at least this alike (cosine similarity, on average) share a cluster.")
metric = right.selectbox("Colour the grid by", list(charts.METRIC_LABELS), format_func=charts.METRIC_LABELS.get,
                         key="metric")


@st.cache_data(max_entries=16, show_spinner="Clustering answers by meaning…")
def analysis_of(run_id: int, received: int, method: str, threshold: float) -> spread.Analysis:
    """Cached per run, answer count and settings: a finished run is analysed once."""
    return spread.analyse_run(run_id, method=method, threshold=threshold)


summary = next(r for r in runs if r["id"] == run_id)
live = summary["status"] in ("pending", "running", "cancelling")


@st.fragment(run_every=2.0 if live else None)
def results():
    with store.connect() as db:
        run = store.get_run(db, run_id)
    if live:
        st.progress(run["received"] / max(run["planned"], 1),
                    text=f"{run['status']}: {run['received']}/{run['planned']} samples")
    analysis = analysis_of(run_id, run["received"], method, threshold)
    if not analysis.cells:
        st.info("No answers yet.")
        return
    st.text(f"Prompt: {run['spec']['prompt']}")
    st.caption(f"{len(analysis.answers)} answers · {len(analysis.errors)} errors · "
               f"{len(analysis.clusters)} meaning clusters across the run")
    st.plotly_chart(charts.heatmap(analysis.cells, metric), key="heatmap")

    labels = [f"{c['model']} @ T={c['temperature']:g}" for c in analysis.cells]
    chosen = st.selectbox("Cell", range(len(labels)), format_func=labels.__getitem__, key="cell")
    cell = analysis.cells[chosen]
    bars, numbers = st.columns([3, 2])
    bars.plotly_chart(charts.cluster_bars(cell), key="bars")
    with numbers:
        cost = "unknown" if cell["cost_usd"] is None else f"${cell['cost_usd']:.6f}"
        low, high = cell["consistency_low"], cell["consistency_high"]
        st.metric("Consistency", "–" if cell["consistency"] is None else f"{cell['consistency']:.0%}",
                  help="Share of answers in the largest meaning cluster (95% Wilson interval below).")
        if low is not None:
            st.caption(f"95% interval {low:.0%} – {high:.0%} from {cell['count']} answers")
        st.metric("Meanings", cell["n_clusters"])
        st.metric("Semantic entropy", "–" if cell["entropy"] is None else f"{cell['entropy']:.2f}")
        st.caption(f"distinct texts {cell['distinct_answers']} · mean similarity {cell['mean_similarity']} · "
                   f"length {cell['length_mean']} ± {cell['length_sd']} tokens · cut by max tokens "
                   f"{cell['cut_by_max_tokens']} · latency p50/p95/p99 {cell['latency_ms_p50']}/"
                   f"{cell['latency_ms_p95']}/{cell['latency_ms_p99']} ms · cost {cost}")
    for size in cell["clusters"][:30]:
        with st.expander(f"#{size['cluster']} · {size['size']} answers ({size['share']:.0%}) · "
                         f"{display.inert(size['representative'], 90)}"):
            st.caption("Representative answer (medoid):")
            st.text(size["representative"])
            members = analysis.answers[analysis.answers["id"].isin(size["member_ids"])]
            st.dataframe(members[["id", "sample_idx", "text", "completion_tokens", "finish_reason"]],
                         hide_index=True, width="stretch")

    if analysis.coords is not None and len(analysis.coords) >= 3:
        st.plotly_chart(charts.answer_map(analysis.coords), key="map")
    left, right = st.columns(2)
    left.plotly_chart(charts.length_distributions(analysis.answers), key="lengths")
    right.plotly_chart(charts.cost_vs_consistency(analysis.cells), key="cost_consistency")
    left, right = st.columns(2)
    left.plotly_chart(charts.latency_distributions(analysis.answers), key="latency")
    right.plotly_chart(charts.cost_distributions(analysis.answers), key="cost")

    columns = ["count", "errors", "n_clusters", "consistency", "consistency_low", "consistency_high", "entropy",
               "mean_similarity", "length_mean", "cut_share", "cost_usd", "latency_ms_p50", "latency_ms_p95"]
    st.subheader("Per model")
    st.dataframe([{k: row[k] for k in ["model", *columns]} for row in analysis.by_model], hide_index=True)
    st.subheader("Per temperature")
    st.dataframe([{k: row[k] for k in ["temperature", *columns]} for row in analysis.by_temperature], hide_index=True)


results()
