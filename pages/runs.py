"""Runs: past runs, and one run's cells and answers, filtered by wording, input, model and temperature."""

import json

import pandas as pd
import streamlit as st

from core import display
from core.analyse import spread, tables, tool_usage
from core.config import SpreadError
from core.execution import launch
from core.prompts import inputs as inputs_module
from core.run import drafts
from core.store import Store, batches, responses
from core.store import runs as run_rows
from pages.parts.store import app_store

store = app_store()

st.title("Runs")

with store.connection() as db:
    runs = run_rows.list_runs(db)

if not runs:
    st.info("No runs yet. Start one in the Playground.")
    st.stop()

table = pd.DataFrame([{
    "run": r["id"], "name": r["name"], "status": r["status"], "answers": r["answers"], "errors": r["errors"],
    "planned calls": r["planned"], "reused (cache)": r.get("cached") or 0,
    "wordings": len(r["variants"]), "inputs": r["n_inputs"],
    "cost": display.usd(r["cost_usd"], r["unknown_cost"]), "started": (r["created_at"] or "")[:16].replace("T", " "),
    "by": r["created_by"]} for r in runs])
st.dataframe(table, hide_index=True, width="stretch")

ids = [run["id"] for run in runs]
requested = st.query_params.get("run")
# A link (?run=N) opens its run; otherwise the run chosen last time stays open.
if requested in map(str, ids) and requested != st.session_state.get("runs_run_linked"):
    st.session_state["runs_run"] = int(requested)
if st.session_state.get("runs_run") not in ids:
    st.session_state["runs_run"] = ids[0]
run_id = st.selectbox("Open run", ids, key="runs_run", persist_state="session",
                      format_func=lambda i: f"{i} · {next(r['name'] for r in runs if r['id'] == i)}")
st.query_params["run"] = st.session_state["runs_run_linked"] = str(run_id)


@st.cache_data(max_entries=20, hash_funcs={Store: lambda store: str(store.target)})
def load(store: Store, run_id: int, received: int) -> tuple[dict, list[dict], list[dict], dict, list[dict], list[dict]]:
    """Cached per database, run and answer count: a finished run is read once."""
    with store.connection() as db:
        run = run_rows.get_run(db, run_id)
        rows = responses.of_run(db, run_id)
        prompts = run_rows.rendered_prompts(db, run_id)
        variants = run_rows.run_variants(db, run_id)
        inputs = run_rows.run_inputs(db, run_id)
    return run, rows, spread.cell_table(rows, run["spec"]), prompts, variants, inputs


summary = next(r for r in runs if r["id"] == run_id)
run, rows, cells, prompts, variants, inputs = load(store, run_id, summary["received"])
spec = run["spec"]
labels = {v["variant"]: v["label"] for v in variants}
input_names = {i["input"]: inputs_module.label(i["input"], i["vars"], 40) for i in inputs}

st.subheader(f"Run {run_id}: {run['status']}")
for variant in variants:
    st.text(f"Wording {variant['label']} (version {variant['version']}): {variant['prompt']}")
    if variant["system"]:
        st.text(f"System: {variant['system']}")
    if variant.get("tools"):
        st.code(f"Tools offered by wording {variant['label']}:\n"
                + tool_usage.offered_text(variant["tools"], variant.get("tool_choice")), language=None)
st.caption(f"{run['answers']}/{run['planned']} answers · {run['errors']} errors · {len(inputs)} input(s) · "
           f"models {display.inert(', '.join(spec['models']))} · temperatures "
           f"{', '.join(f'{t:g}' for t in spec['temperatures'])} · N={spec['n']} · max tokens "
           f"{spec.get('max_tokens')} · seed {'random' if spec.get('seed') is None else spec['seed']}"
           + (f" · sampled until settled (precision {spec.get('precision'):g}, N at most)"
              if spec.get("until_settled") else "")
           + (" · through the provider's batch API" if spec.get("batch") else "")
           + (f" · {run.get('cached') or 0} answers reused from the cache" if spec.get("cache") else ""))
with store.connection() as db:
    batch_wait = batches.waiting(db, [run_id])
if run_id in batch_wait:
    st.info(batch_wait[run_id], icon=":material/hourglass_top:")

def load_plan() -> None:
    st.session_state.update(drafts.from_run(store, run_id), draft_loaded=True)


if st.button("Load this run's plan into the Playground", key="load_plan", icon=":material/edit_note:",
             on_click=load_plan):
    st.switch_page("pages/playground.py")

missing = run["planned"] - run["received"]
if run["status"] in ("interrupted", "cancelled", "done") and (missing or run["errors"]):
    retry = st.checkbox("Also retry the cells that ended in an error", key="retry_errors") if run["errors"] else False
    if st.button(f"Resume: fill the {missing} missing samples" + (" and retry errors" if retry else ""),
                 disabled=not missing and not retry):
        try:
            launch.resume(store, run_id, retry_errors=retry)
        except SpreadError as e:  # PostgreSQL: a worker still holds the run's lease
            st.error(str(e))
        else:
            st.session_state["active_run"] = run_id
            st.switch_page("pages/playground.py")

if len(inputs) > 1:
    with st.expander(f"The {len(inputs)} inputs"):
        st.dataframe(pd.DataFrame([{"input": f"#{i['input'] + 1}", **i["vars"]} for i in inputs]), hide_index=True,
                     width="stretch")

answers = spread.frame(rows)
left, middle, right, last = st.columns(4)
chosen_variants = left.multiselect("Wordings (none = all)", sorted(labels), format_func=labels.get,
                                   key="runs_variants", persist_state="session") if len(labels) > 1 else []
chosen_inputs = middle.multiselect("Inputs (none = all)", [i["input"] for i in inputs],
                                   key="runs_inputs", persist_state="session",
                                   format_func=input_names.get) if len(inputs) > 1 else []
chosen_models = right.multiselect("Models (none = all)", spec["models"], key="runs_models", persist_state="session")
chosen_temperatures = last.multiselect("Temperatures (none = all)", spec["temperatures"],
                                       key="runs_temperatures", persist_state="session")


def keep(df: pd.DataFrame) -> pd.DataFrame:
    for column, chosen in (("variant", chosen_variants), ("input", chosen_inputs), ("model", chosen_models),
                           ("temperature", chosen_temperatures)):
        if chosen:
            df = df[df[column].isin(chosen)]
    return df


if cells:
    if any(c["latency_under_local_load"] for c in cells):
        st.caption("(local load): latency of a remote model timed while the embedded model generated on the same "
                   "cores — it includes waiting for this machine, so read it as an upper bound.")
    names = {"variant": labels, "input": input_names}
    kept_cells = keep(pd.DataFrame(cells)).to_dict("records")
    # The cell's name stays in view while the numbers scroll (a laptop's 1,400 px).
    st.dataframe(tables.cell_rows(kept_cells, names), hide_index=True, width="stretch",
                 column_config={name: st.column_config.Column(pinned=True) for name in ("wording", "input")})

shown = keep(answers)
if "cached_from" in shown and shown["cached_from"].notna().any():  # reused answers: their original's cost, no new cost
    shown = shown.assign(cached=shown["cached_from"].notna())
shown = shown.assign(wording=shown["variant"].map(labels), input=shown["input"].map(input_names),
                     prompt=[prompts.get((v, i), ("", ""))[1] for v, i in zip(shown["variant"], shown["input"])])
st.caption(f"{len(shown):,} answers shown, each beside the prompt it answered (plain text)")
# A dataframe shows answers as plain text: model output is data, never markup.
st.dataframe(
    shown[["id", "wording", "input", "model", *(["deployment"] if shown["deployment"].notna().any() else []),
           "temperature", "sample_idx", "prompt", "text", "finish_reason",
           "completion_tokens", "latency_ms", "ttft_ms", "cost_usd", "attempts", "error_type", "error_message",
           *(["cached"] if "cached" in shown else [])]]
    .rename(columns={"id": "answer", "sample_idx": "sample", "finish_reason": "finish", "completion_tokens":
                     "tokens", "latency_ms": "latency (ms)", "ttft_ms": "first token (ms)", "cost_usd": "cost (USD)",
                     "error_type": "error", "error_message": "error message"}),
    hide_index=True, width="stretch", column_config={"cost (USD)": st.column_config.NumberColumn(format="%.7f")},
)

if spec.get("endpoints"):
    with st.expander("Endpoints as this run used them (settings at the time, never keys)"):
        st.dataframe(pd.DataFrame([{
            "name": name, "model": e["model"], "api base": e.get("api_base") or "",
            "key variable": e.get("key_env") or "", "parameters": json.dumps(e.get("params") or {}),
            "$/M in": e.get("price_in"), "$/M out": e.get("price_out"),
            "max in flight": e.get("max_concurrency"), "rpm": e.get("rpm"), "timeout s": e.get("timeout_s"),
            "from": e.get("source")} for name, e in spec["endpoints"].items()]), hide_index=True, width="stretch")
