"""Runs: past runs, and one run's answers per model × temperature cell."""

import pandas as pd
import streamlit as st

from core import display, store

from core.analyse import spread

from core.run import runner

st.title("Runs")

with store.connect() as db:
    runs = store.list_runs(db)

if not runs:
    st.info("No runs yet. Start one in the Playground.")
    st.stop()

table = pd.DataFrame(runs)[["id", "name", "status", "answers", "errors", "planned", "cost_usd",
                            "created_at", "created_by"]]
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"cost_usd": st.column_config.NumberColumn("cost (USD)", format="%.6f")})

ids = [run["id"] for run in runs]
requested = st.query_params.get("run")
default = ids.index(int(requested)) if requested and requested.isdigit() and int(requested) in ids else 0
run_id = st.selectbox("Open run", ids, index=default,
                      format_func=lambda i: f"{i} · {next(r['name'] for r in runs if r['id'] == i)}")
st.query_params["run"] = str(run_id)


@st.cache_data(max_entries=20)
def load(run_id: int, received: int) -> tuple[dict, list[dict], list[dict]]:
    """Cached per run and answer count: a finished run is read once."""
    with store.connect() as db:
        run = store.get_run(db, run_id)
        rows = store.responses(db, run_id)
    return run, rows, spread.cell_table(rows)


summary = next(r for r in runs if r["id"] == run_id)
run, rows, cells = load(run_id, summary["received"])
spec = run["spec"]

st.subheader(f"Run {run_id}: {run['status']}")
st.text(f"Prompt: {spec['prompt']}")
if spec.get("system"):
    st.text(f"System: {spec['system']}")
st.caption(f"{run['answers']}/{run['planned']} answers · {run['errors']} errors · "
           f"models {display.inert(', '.join(spec['models']))} · temperatures {', '.join(f'{t:g}' for t in spec['temperatures'])}"
           f" · N={spec['n']} · max tokens {spec.get('max_tokens')} · seed {spec.get('seed')}")

missing = run["planned"] - run["received"]
if run["status"] in ("interrupted", "cancelled", "done") and (missing or run["errors"]):
    retry = st.checkbox("Also retry the cells that ended in an error", key="retry_errors") if run["errors"] else False
    if st.button(f"Resume: fill the {missing} missing samples" + (" and retry errors" if retry else ""),
                 disabled=not missing and not retry):
        runner.resume(run_id, retry_errors=retry)
        st.session_state["active_run"] = run_id
        st.switch_page("pages/playground.py")

if cells:
    st.dataframe(pd.DataFrame(cells).drop(columns=["error_types"]), hide_index=True, width="stretch",
                 column_config={"cost_usd": st.column_config.NumberColumn("cost (USD)", format="%.6f")})

answers = spread.frame(rows)
for cell in cells:
    label = (f"{cell['model']} @ T={cell['temperature']:g} · {cell['count']} answers · "
             f"{cell['errors']} errors · {cell['distinct_answers']} distinct")
    with st.expander(label):
        in_cell = answers[(answers["model"] == cell["model"]) & (answers["temperature"] == cell["temperature"])]
        # A dataframe shows answers as plain text: model output is data, never markup.
        st.dataframe(
            in_cell[["sample_idx", "text", "finish_reason", "completion_tokens", "latency_ms",
                     "ttft_ms", "cost_usd", "attempts", "error_type", "error_message"]],
            hide_index=True, width="stretch",
        )
