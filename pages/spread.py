"""Spread: how far one run's answers spread, by meaning, wording, length, cost and latency."""

import json

import pandas as pd
import streamlit as st

from core import display
from core.analyse import charts, embed, meaning, sensitivity, settled, spread, tables, tool_usage
from core.config import SpreadError
from core.evaluate import checks, rates, regress, scoring
from core.execution import launch
from core.models import endpoints
from core.prompts import conversation, inputs
from core.review import decisions
from core.run import drafts
from core.store import Store
from core.store import runs as run_rows
from pages.parts import conversation_view
from pages.parts.store import app_store

store = app_store()

st.title("Spread")

with store.connection() as db:
    runs = run_rows.list_runs(db)
if not runs:
    st.info("No runs yet. Start one in the Playground.")
    st.stop()

ids = [run["id"] for run in runs]
requested = st.query_params.get("run")
# A link (?run=N) opens its run; otherwise the run chosen last time stays open.
if requested in map(str, ids) and requested != st.session_state.get("spread_run_linked"):
    st.session_state["spread_run"] = int(requested)
if st.session_state.get("spread_run") not in ids:
    st.session_state["spread_run"] = ids[0]
run_id = st.selectbox("Run", ids, format_func=lambda i: f"{i} · {next(r['name'] for r in runs if r['id'] == i)}",
                      key="spread_run", persist_state="session")
st.query_params["run"] = st.session_state["spread_run_linked"] = str(run_id)
summary = next(r for r in runs if r["id"] == run_id)
live = summary["status"] in ("pending", "running", "cancelling")
if st.button("Load this run's plan into the Playground", key="load_plan", icon=":material/edit_note:",
             on_click=lambda: st.session_state.update(drafts.from_run(store, run_id), draft_loaded=True)):
    st.switch_page("pages/playground.py")

methods = list(embed.METHODS) if embed.model_available() else ["tfidf", "exact"]
left, middle, right = st.columns(3)
method = left.radio("Group answers by", methods, format_func=embed.METHODS.get,
                    key="method", persist_state="session", horizontal=False)
own_models = endpoints.embedding_names(store)  # the team's embedding endpoints, if the catalogue has any
if own_models:
    with store.connection() as db:
        run_default = run_rows.get_run(db, run_id)["spec"].get("embeddings")
    chosen = left.selectbox("…or with your embedding endpoint", ["", *own_models], key=f"embeddings_{run_id}",
                            index=own_models.index(run_default) + 1 if run_default in own_models else 0,
                            format_func=lambda name: name or "— (the choice above)")
    method = embed.ENDPOINT + chosen if chosen else method
threshold = middle.slider("Similarity threshold", 0.30, 0.99, spread.DEFAULT_THRESHOLD, 0.01,
                          key="threshold", persist_state="session",
                          help="Answers at least this alike (cosine similarity, on average) share a cluster.")
metric = right.selectbox("Colour the grid by", [m for m in charts.METRIC_LABELS if m != "pass_rate"],
                         format_func=charts.METRIC_LABELS.get, key="metric", persist_state="session")

with st.expander("Long answers and second opinions"):
    left, right = st.columns(2)
    with store.connection() as db:
        run_extract = run_rows.get_run(db, run_id)["spec"].get("extract") or "whole"
    extract = left.text_input("Compare this part of each answer", run_extract,
                              key=f"extract_{run_id}", persist_state="session",
                              help="whole, first-sentence, final-answer (after a last 'Answer:' or the last "
                                   "number), json:FIELD (a dotted path), regex:PATTERN (its first group)")
    opinion_model = right.text_input("Second opinion on near-threshold pairs (a judge model)",
                                     key="second_opinion", persist_state="session",
                                     placeholder="off — e.g. openai/gpt-4o-mini",
                                     help="Asked only about pairs no fact decides within 0.1 of the threshold; "
                                          "each pair is paid for once.")
    try:
        meaning.check_extract_mode(extract.strip() or "whole")
    except ValueError as e:
        st.error(display.inert(str(e)))
        extract = "whole"

# The two axes of the heatmap; the others are aggregated. Default: what the run varies.
several_variants, several_inputs = len(summary["variants"]) > 1, summary["n_inputs"] > 1
default_axes = (("variant", "model") if several_variants else ("input", "model") if several_inputs
                else ("model", "temperature"))
# A link can name the axes: /spread?run=3&rows=input&cols=variant
asked = (st.query_params.get("rows"), st.query_params.get("cols"))
if asked[0] in spread.AXES and asked[1] in spread.AXES and asked[0] != asked[1]:
    default_axes = asked
left, right = st.columns(2)
y_axis = left.selectbox("Rows", spread.AXES, index=spread.AXES.index(default_axes[0]),
                        key="y_axis", persist_state="session",
                        format_func=charts.AXIS_NAMES.get)
x_axis = right.selectbox("Columns", [a for a in spread.AXES if a != y_axis],
                         key=f"x_axis_{y_axis}", persist_state="session",
                         index=[a for a in spread.AXES if a != y_axis].index(default_axes[1])
                         if default_axes[1] != y_axis else 0, format_func=charts.AXIS_NAMES.get)


# A resource, not data: every rerun and every reviewer's session reads the same analysis
# instead of unpickling its own copy of 10,000 answers (nothing on the page changes it).
@st.cache_resource(max_entries=16, show_spinner="Clustering answers by meaning…", hash_funcs={Store: lambda store: str(store.target)})
def analysis_of(store: Store, run_id: int, received: int, method: str, threshold: float, extract: str,
                opinion: str, decided: int) -> spread.Analysis:
    """Cached per database, run, answer count, settings and reviewers' decisions: a finished
    run is analysed once."""
    return spread.analyse_run(store, run_id, method=method, threshold=threshold, extract=extract,
                              second_opinion_model=opinion or None)


@st.fragment(run_every=2.0 if live else None)
def results():
    with store.connection() as db:
        run = run_rows.get_run(db, run_id)
    if live:
        st.progress(run["received"] / max(run["planned"], 1),
                    text=f"{run['status']}: {run['received']}/{run['planned']} samples")
    made = decisions.for_run(store, run_id)
    try:
        analysis = analysis_of(store, run_id, run["received"], method, threshold,
                               extract.strip() or "whole", opinion_model.strip(),
                               max([d["id"] for d in made], default=0) + len(made))
    except SpreadError as e:  # an embedding or judge endpoint that cannot answer: say why, in one line
        st.error(display.inert(str(e)))
        return
    if not analysis.cells:
        st.info("No answers yet.")
        return
    if run["spec"].get("until_settled"):  # n, settled and the anytime interval per cell (docs/cost.md)
        settled.attach(store, analysis, run)
        st.caption(settled.summary_text(analysis.cells, run))
    variant_names = {v["variant"]: v["label"] for v in analysis.variants}
    # Plain text: plotly escapes it (charts._safe); options and tables never render markup.
    input_names = {i["input"]: inputs.label(i["input"], i["vars"], 40) for i in analysis.inputs}
    names = {"variant": variant_names, "input": input_names}
    for variant in analysis.variants:
        st.text(f"Wording {variant['label']} (version {variant['version']}): {variant['prompt']}")
        if variant.get("tools"):
            st.code(f"Tools offered by wording {variant['label']}:\n"
                    + tool_usage.offered_text(variant["tools"], variant.get("tool_choice")), language=None)
    st.caption(f"{len(analysis.answers)} answers · {len(analysis.errors)} errors · {len(analysis.variants)} wording(s) "
               f"· {len(analysis.inputs)} input(s) · {len(analysis.clusters)} meaning clusters (formed per input)"
               + (f" · comparing the {display.inert(analysis.extract)} part" if analysis.extract != "whole" else "")
               + (f" · {len(made)} reviewer decision(s) applied" if made else ""))
    if analysis.second_opinion:
        opinion = analysis.second_opinion
        cost = "unknown" if opinion["cost_usd"] is None else f"${opinion['cost_usd']:.6f}"
        st.caption(f"Second opinion by {display.inert(opinion['model'])}: {opinion['calls']} new calls, cost {cost}"
                   + (f" · {len(opinion['errors'])} failed" if opinion["errors"] else ""))
    adaptive = bool(run["spec"].get("until_settled"))
    st.plotly_chart(analysis.once(("heatmap", y_axis, x_axis, metric, adaptive), lambda: charts.heatmap(
        settled.squares(analysis, analysis.group([y_axis, x_axis]), [y_axis, x_axis]) if adaptive
        else analysis.group([y_axis, x_axis]), metric, y=y_axis, x=x_axis, names=names)), key="heatmap")
    if len(analysis.inputs) > 1 and "input" not in (y_axis, x_axis):
        st.caption("Across inputs, a square is the mean over inputs, and its interval comes from how inputs differ "
                   "(the samples of one input are not independent).")

    drill(analysis, names)
    if len(analysis.variants) > 1:
        wording(analysis, names)
    checks_section(analysis, run, names)

    if analysis.coords is not None and len(analysis.coords) >= 3:
        st.plotly_chart(analysis.once(("map",), lambda: charts.answer_map(analysis.coords)), key="map")
    left, right = st.columns(2)
    left.plotly_chart(analysis.once_per_run(("lengths",), lambda: charts.length_distributions(analysis.answers)),
                      key="lengths")
    left.plotly_chart(analysis.once_per_run(("latency",), lambda: charts.latency_distributions(analysis.answers)),
                      key="latency")
    cost_charts = [(analysis.once(("cost_consistency",), lambda: charts.cost_vs_consistency(analysis.cells)),
                    "cost_consistency"),
                   (analysis.once_per_run(("cost",), lambda: charts.cost_distributions(analysis.answers)), "cost")]
    for figure, key in cost_charts:
        if figure is not None:
            right.plotly_chart(figure, key=key)
    unpriced = sum(c["answers_unpriced"] for c in analysis.cells)
    if unpriced:
        right.caption(f"Cost charts leave out the {unpriced:,} answers of unknown price" if unpriced < len(
            analysis.answers) else "No cost chart: no answer of this run has a known price.")

    for title, rows, key in (("Per wording", analysis.by_variant, "variant"), ("Per input", analysis.by_input, "input"),
                             ("Per model", analysis.by_model, "model"),
                             ("Per temperature", analysis.by_temperature, "temperature")):
        if len(rows) > 1 or key in ("model", "temperature"):
            st.subheader(title)
            st.dataframe(tables.spread_rows(rows, [key], names), hide_index=True)


def drill(analysis: spread.Analysis, names: dict) -> None:
    """One cell of the grid: its meaning clusters, numbers and answers."""
    st.subheader("One cell")
    cells = {(c["variant"], c["input"], c["model"], c["temperature"]): c for c in analysis.cells}
    choices = {axis: sorted({key[k] for key in cells}) for k, axis in enumerate(spread.AXES)}
    picked = []
    columns = st.columns(4)
    for column, axis in zip(columns, spread.AXES):
        picked.append(column.selectbox(charts.AXIS_NAMES[axis].capitalize(), choices[axis],
                                       key=f"cell_{axis}", persist_state="session",
                                       format_func=lambda v, a=axis: charts.axis_label(a, v, names.get(a)),
                                       disabled=len(choices[axis]) == 1))
    cell = cells.get(tuple(picked))
    if cell is None:
        st.caption("No answers in this cell.")
        return
    st.caption("Prompt as sent")
    conversation_view.draw(conversation.sent_for(store, run_id, cell["variant"], cell["input"]))
    bars, numbers = st.columns([3, 2])
    bars.plotly_chart(charts.cluster_bars(cell), key="bars")
    with numbers:
        cost = display.usd(cell["cost_usd_known"], cell["answers_unpriced"])
        low, high = cell["consistency_low"], cell["consistency_high"]
        st.metric("Consistency", "–" if cell["consistency"] is None else f"{cell['consistency']:.0%}",
                  help="Share of answers in the largest meaning cluster (95% Wilson interval below).")
        if low is not None:
            st.caption(f"95% interval {low:.0%} – {high:.0%} from {cell['count']} answers"
                       + (" (anytime-valid: it holds after stopping early)" if cell.get("settled") is not None else ""))
        if cached := settled.reused(analysis, cell):
            st.caption(f"{cached} of these answers reused from the cache (same request and sample index): "
                       "no new cost; their original cost is shown")
        if cell.get("settled") is not None:
            st.metric("Samples (n)", cell["n"], help="Sampled until settled: the samples this cell took.")
            st.caption(settled.cell_text(cell))
        st.metric("Meanings", cell["n_clusters"])
        st.metric("Semantic entropy (nats)", tables.number(cell["entropy"]))
        st.caption(f"distinct texts {cell['distinct_answers']} · mean similarity {tables.number(cell['mean_similarity'])}"
                   f" · length {tables.number(cell['length_mean'], 1)} ± {tables.number(cell['length_sd'], 1)} tokens"
                   f" · cut by max tokens {cell['cut_by_max_tokens']} · latency p50/p95/p99 "
                   f"{tables.milliseconds(cell['latency_ms_p50'])}/{tables.milliseconds(cell['latency_ms_p95'])}/"
                   f"{tables.milliseconds(cell['latency_ms_p99'])} ms"
                   + (" (timed under the embedded model's load: an upper bound)" if cell["latency_under_local_load"]
                      else "") + f" · cost {cost}")
    if cell.get("tools"):
        tools, arguments = tool_usage.tables(cell)
        left, right = st.columns([2, 3])
        left.caption("Tools chosen (an answer calling two tools counts for both)")
        left.dataframe(pd.DataFrame(tools), hide_index=True, width="stretch")
        right.caption("How each argument spread")
        right.dataframe(pd.DataFrame(arguments), hide_index=True, width="stretch")
    for size in cell["clusters"][:30]:
        kind = f"[{size['kind']}] " if size.get("kind") else ""
        with st.expander(f"#{size['cluster']} · {size['size']} answers ({size['share']:.0%}) · {kind}"
                         f"{display.inert(size['representative'], 90)}"):
            st.caption("Representative answer (medoid):")
            st.text(size["representative"])
            members = analysis.answers[analysis.answers["id"].isin(size["member_ids"])]
            # "shown": the answer's text, then its tool calls as lines (plain text)
            st.dataframe(members[["id", "sample_idx", "shown", "completion_tokens", "finish_reason"]]
                         .rename(columns={"shown": "answer"}),
                         hide_index=True, width="stretch")
    why(analysis, cell)


def why(analysis: spread.Analysis, cell: dict) -> None:
    """Why two answers of this input were merged or kept apart; a reviewer can overrule it."""
    in_input = analysis.answers[analysis.answers["input"] == cell["input"]].drop_duplicates("norm")
    if len(in_input) < 2:
        return
    with st.expander("Why together, why apart? (and overrule it)"):
        options = dict(zip(in_input["id"].astype(int), in_input["shown"]))
        left, right = st.columns(2)
        first = left.selectbox("Answer", list(options), key="why_a", format_func=lambda i: display.one_line(options[i], 80))
        rest = [i for i in options if i != first]
        second = right.selectbox("and answer", rest, key="why_b", format_func=lambda i: display.one_line(options[i], 80))
        pair = decisions.explain(store, first, second, method=analysis.method, threshold=analysis.threshold)
        verdict = "the same meaning" if pair.same else "different meanings"
        st.text(f"Spread says: {verdict}. {pair.reason} (similarity {pair.similarity:.2f})")
        if pair.conflicts:
            st.caption("Conflicting facts: " + display.inert("; ".join(pair.conflicts)))
        who = st.session_state.get("who", "")
        merge, split = st.columns(2)
        for column, action, label in ((merge, "merge", "They mean the same: merge"),
                                      (split, "split", "They differ: split")):
            if column.button(label, key=f"decide_{action}", disabled=not who,
                             help=None if who else "Enter your name as reviewer in the sidebar first."):
                try:
                    decisions.decide(store, first, second, action, reviewer=who)
                    st.rerun()
                except SpreadError as e:
                    st.error(display.inert(str(e)))
        made = decisions.for_run(store, int(analysis.answers["run_id"].iloc[0]))
        if made:
            st.caption("Reviewers' decisions on this run (applied in order, after clustering)")
            st.dataframe(pd.DataFrame(made)[["id", "input", "action", "text_a", "text_b", "reviewer", "created_at"]],
                         hide_index=True, width="stretch")
            undo = st.selectbox("Undo a decision", [None] + [d["id"] for d in made], key="undo_decision")
            if undo and st.button("Undo", key="undo"):
                decisions.undo(store, undo)
                st.rerun()


def wording(analysis: spread.Analysis, names: dict) -> None:
    """How much of the spread comes from the wording, and how much from sampling."""
    st.subheader("Wording or sampling?")
    rows = analysis.wording()
    if not rows:
        st.caption("No input was answered by two wordings yet.")
        return
    st.caption("Per input and model, the spread of meanings (entropy) splits into the part within each wording "
               "(sampling) and the part the wording explains. The share due to wording is bias-corrected: what "
               "shuffling the wordings gives by chance is taken off, so a model that ignores the prompt gets about "
               "0. Intervals come from the same shuffles; p-values are shown raw and Holm-adjusted over the rows.")
    label = names["variant"]
    st.dataframe(pd.DataFrame([{
        "model": row["model"], "inputs": row["inputs"],
        "spread due to wording (mean over inputs)": row["wording_share"],
        "95% interval": f"{row['wording_share_low']} – {row['wording_share_high']}" if row["wording_share_low"] is not None else "",
        "inputs whose top meaning changes": f"{row['top_meaning_changes']} ({row['top_meaning_changes_share']:.0%})",
        "beyond noise": row["wording_matters"],
        **{f"consistency {label.get(v, v)}": c for v, c in row["consistency_within"].items()},
    } for row in sensitivity.summary(rows)]), hide_index=True)
    st.plotly_chart(charts.wording_share(rows, names), key="wording")
    with st.expander("Per input"):
        st.dataframe(pd.DataFrame([{
            "input": names["input"].get(row["input"], row["input"]), "model": row["model"],
            "meanings": row["meanings"], "spread due to wording": row["wording_share"],
            "interval (95%, all rows together)": f"{row['wording_share_low']} – {row['wording_share_high']}",
            "p (raw)": row["p_value"], "p (Holm-adjusted)": row["p_value_holm"],
            "beyond noise": row["wording_matters"], "top meanings agree": row["top_agreement"],
            **{f"consistency {label.get(v, v)}": values["consistency"] for v, values in row["variants"].items()},
        } for row in rows]), hide_index=True, width="stretch")


@st.cache_data(max_entries=16, show_spinner="Scoring the answers with the run's checks…", hash_funcs={Store: lambda store: str(store.target)})
def scored_of(store: Store, run_id: int, received: int, checks_key: str) -> list[dict]:
    """The run's check results, computed once per answer count and set of checks (a judge's
    calls run on the background loop)."""
    return launch.wait(scoring.score_run(store, run_id))


def checks_section(analysis: spread.Analysis, run: dict, names: dict) -> None:
    """Pass rates of the run's checks, and how far each check agrees with the reviewers."""
    st.subheader("Checks")
    with st.expander("Add checks to this run" if run["spec"].get("checks") else "Add checks to this run: "
                     "none yet", expanded=not run["spec"].get("checks")):
        text = st.text_area("One per line: TYPE[:VALUE]", key="spread_checks", height=80,
                            placeholder="similar:{{expected}}\nmax-length:200",
                            help="Types: " + ", ".join(checks.TYPES) + ". Values may use the input's {{variables}}.")
        judge_model = st.text_input("Judge model for llm-rubric checks", key="spread_judge")
        if st.button("Add and score", key="spread_add_checks"):
            try:
                scoring.attach(store, run_id, checks.validate(
                    [checks.parse(line) for line in text.splitlines() if line.strip()],
                    [i["vars"] for i in analysis.inputs], judge=judge_model.strip() or None))
                st.rerun()
            except SpreadError as e:
                st.error(display.inert(str(e)))
    if not run["spec"].get("checks") and not any(scoring.TEST_CHECKS in i["vars"] for i in analysis.inputs):
        return  # neither the run's checks nor its tests' own (an imported promptfoo suite)
    results = scored_of(store, run_id, run["received"], json.dumps(run["spec"].get("checks")))
    scored = rates.frame(analysis.answers, scoring.verdicts(store, run_id, results))
    if not len(scored):
        st.caption("No answer scored yet.")
        return
    adaptive = bool(run["spec"].get("until_settled"))  # intervals that hold after stopping early
    st.plotly_chart(charts.heatmap(rates.by_group(scored, [y_axis, x_axis], adaptive=adaptive), "pass_rate",
                                   y=y_axis, x=x_axis, names=names), key="pass_heatmap")
    reduced = rates.reducer_rates(rates.reducers(scored), ["variant", "model", "temperature"])
    st.caption("Per cell over its N samples, as the share of inputs: all pass (pass^N), at least one (pass@k), "
               "a majority (Wilson intervals over inputs).")
    st.dataframe(pd.DataFrame([{
        "wording": names["variant"].get(r["variant"], r["variant"]), "model": r["model"],
        "temperature": f"{r['temperature']:g}", "inputs": r["inputs"],
        **{title: tables.share_with_interval(r[key], *r[f"{key}_ci"]) for title, key in (
            ("all samples pass (95% interval)", "all_pass"), ("at least one passes", "any_pass"),
            ("a majority passes", "majority_pass"))},
    } for r in reduced]), hide_index=True)
    per_check = {}
    for row in results:
        entry = per_check.setdefault(row["check_key"], {"check": checks.from_dict(json.loads(row["check_key"])).label(),
                                                        "passed": 0, "scored": 0, "unknown": 0, "judge calls": 0})
        entry["unknown" if row["passed"] is None else "scored"] += 1
        entry["passed"] += row["passed"] or 0
        entry["judge calls"] += row["judge_calls"] or 0
    agreement = {row["check"]: row for row in regress.human_agreement(store, run_id)}
    st.caption("Each check against the reviewers' majority verdicts: how far to trust it before gating on it.")
    st.dataframe(pd.DataFrame([entry | {
        "answers both judged": agreement.get(key, {}).get("answers"),
        "agrees with reviewers": tables.percent(agreement.get(key, {}).get("agreement")),
        "Cohen's kappa": tables.number(agreement.get(key, {}).get("kappa")),
        "passes reviewers failed": agreement.get(key, {}).get("false_passes"),
        "fails reviewers passed": agreement.get(key, {}).get("false_fails"),
    } for key, entry in per_check.items()]), hide_index=True, width="stretch")


results()
