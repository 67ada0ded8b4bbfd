"""Playground: write a prompt, pick models × temperatures × N, start a run, watch it fill in."""

import streamlit as st

from core import display, store

from core.analyse import spread

from core.run import local_llm, models, plan, runner
from core.run.progress import LiveProgress
from core.config import SpreadError

st.title("Playground")
st.caption("Send one prompt to several models at several temperatures, many times each, "
           "and see how far the answers spread.")

catalogue = models.catalogue()
errors: dict[str, st.delta_generator.DeltaGenerator] = {}

with st.form("plan"):
    left, right = st.columns([3, 2])
    with left:
        prompt = st.text_area("Prompt", key="prompt", height=140,
                              placeholder="What is the capital of Australia?")
        errors["prompt"] = st.empty()
        system = st.text_area("System message", key="system", height=80,
                              placeholder="Optional: instructions sent before the prompt.")
        name = st.text_input("Prompt name", key="name",
                             help="Runs of the same name are versioned: new text, new version.")
    with right:
        chosen = st.multiselect(
            "Models", [entry.id for entry in catalogue], default=[local_llm.MODEL_ID], key="models",
            accept_new_options=True,
            help="Any litellm model id can be typed, e.g. openai/gpt-4o-mini, anthropic/..., "
                 "ollama/llama3.2, or openai/<name> with an API base.",
        )
        st.caption(local_llm.DESCRIPTION)
        errors["models"] = st.empty()
        temperatures_text = st.text_input("Temperatures", "0, 0.7, 1.0", key="temperatures",
                                          help="Comma-separated, each in 0..2.")
        errors["temperatures"] = st.empty()
        n_col, tokens_col, seed_col = st.columns(3)
        n = n_col.number_input("Samples (N)", min_value=1, max_value=plan.MAX_N, value=5, key="n")
        max_tokens = tokens_col.number_input("Max tokens", min_value=1, max_value=200_000, value=128,
                                             key="max_tokens")
        seed_text = seed_col.text_input("Seed", key="seed", placeholder="random",
                                        help="Sample i uses seed + i: the run can be repeated exactly.")
        errors["n"], errors["seed"] = st.empty(), st.empty()
        api_base = st.text_input("API base (OpenAI-compatible server)", key="api_base",
                                 placeholder="http://localhost:8000/v1",
                                 help="Used for every model except the embedded one.")
        errors["api_base"] = st.empty()
        concurrency = st.number_input("Calls in flight", min_value=1, max_value=1024, value=8, key="concurrency",
                                      help="At most this many calls at once, across all models (the embedded "
                                           "model also keeps to its own 4 slots).")
        errors["concurrency"] = st.empty()
    submitted = st.form_submit_button("Run", type="primary")

if submitted:
    try:
        spec = plan.RunSpec(
            prompt=prompt, system=system, name=name, models=chosen,
            temperatures=plan.parse_temperatures(temperatures_text), n=int(n),
            max_tokens=int(max_tokens), seed=plan.parse_seed(seed_text),
            api_base=api_base.strip() or None, concurrency=int(concurrency),
        )
        st.session_state["active_run"] = runner.start(spec, created_by=st.session_state.get("who", ""))
    except SpreadError as e:
        errors.get(e.field or "", errors["prompt"]).error(display.inert(str(e)), icon=":material/error:")

with store.connect() as db:
    active_id = st.session_state.get("active_run")
    run = store.run_state(db, active_id) if active_id else store.latest_active_run(db)

if run is not None:
    run_id = run["id"]

    @st.fragment(run_every=1.0 if run["status"] in ("pending", "running", "cancelling") else None)
    def live_progress():
        # Reads only the answers stored since the last refresh: the same cost at any run size.
        tracker = st.session_state.setdefault(f"progress-{run_id}", LiveProgress(run_id))
        current = tracker.refresh()
        spec = current["spec"]
        received = current["received"]
        st.subheader(f"Run {run_id}: {current['status']}")
        st.progress(received / max(current["planned"], 1),
                    text=f"{received}/{current['planned']} samples · {current['errors']} errors")
        st.dataframe(spread.progress_grid(current["counts"], spec["models"], spec["temperatures"], spec["n"]),
                     width="stretch")
        if current["status"] in ("running", "pending"):
            if st.button("Cancel run", key=f"cancel-{run_id}"):
                runner.request_cancel(run_id)
        elif current["status"] != run["status"]:
            st.rerun()  # the run just ended: redraw once to stop polling
        else:
            st.page_link("pages/runs.py", label=f"Open run {run_id}", icon=":material/open_in_new:",
                         query_params={"run": run_id})

    live_progress()
