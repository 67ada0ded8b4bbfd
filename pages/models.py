"""Models: the shared catalogue of named endpoints (server, key variable, parameters, prices,
limits, timeout): add, edit, duplicate, remove, test one call, see which are ready, and
import or export a LiteLLM proxy config."""

import json

import pandas as pd
import streamlit as st

from core import display
from core.config import SpreadError
from core.execution import launch
from core.formats import litellm_config
from core.models import catalogue, endpoints, llm
from core.store import Store
from pages.parts.store import app_store

store = app_store()

st.title("Models")
llm.preload()  # the Test button's first call should cost the provider's latency, not litellm's import
st.caption("Name each model once — a self-hosted server (vLLM, Ollama, llama.cpp, a LiteLLM proxy) or a cloud "
           "model — with its own server, key, parameters, prices and limits; everyone using this database can "
           "then run it by name. Keys stay in the server's environment or .streamlit/secrets.toml: an endpoint "
           "records only the name of the variable that holds its key.")
state = st.session_state
NEW = "(new endpoint)"
FIELDS = ("name", "model", "api_base", "key_env", "params", "price_in", "price_out", "max_concurrency", "rpm",
          "timeout_s")


@st.cache_data(ttl=30, show_spinner="Checking keys and servers…", hash_funcs={Store: lambda store: str(store.target)})
def readiness_of(store: Store, fingerprint: str) -> list[dict]:
    """Cached per catalogue version for 30 s: probing servers takes a moment."""
    return [endpoint.settings() | endpoints.readiness(endpoint, timeout_s=1.5)
            for endpoint in endpoints.list_endpoints(store)]


def as_text(value) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def load_form() -> None:
    """Fill the form from the endpoint picked (or clear it for a new one)."""
    picked = endpoints.get(store, state["ep_pick"]) if state.get("ep_pick") not in (None, NEW) else None
    for name in FIELDS:
        value = getattr(picked, name) if picked else None
        if name == "params":
            value = "\n".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                              for k, v in (value or {}).items())
        state[f"ep_{name}"] = as_text(value)
    state["ep_test"] = None


def form_endpoint() -> endpoints.Endpoint:
    values = {name: (state.get(f"ep_{name}") or "").strip() for name in FIELDS}
    values["params"] = endpoints.parse_params(values["params"].splitlines())
    # What the form does not show (a model group's deployments, model_info, tpm) is kept as imported.
    picked = endpoints.get(store, state["ep_pick"]) if state.get("ep_pick") not in (None, NEW) else None
    kept = {k: getattr(picked, k) for k in ("tpm", "deployments", "router", "info")} if picked else {}
    return endpoints.validate(endpoints.Endpoint(**{k: v or None for k, v in values.items() if k != "params"},
                                                 params=values["params"], **kept))


def save() -> None:
    try:
        endpoint = form_endpoint()
        if state.get("ep_pick") in (None, NEW):
            endpoints.add(store, endpoint, who=state.get("who", ""))
        else:
            endpoints.update(store, state["ep_pick"], endpoint, who=state.get("who", ""))
        state["ep_pick"], state["ep_message"] = endpoint.name, f"Saved {endpoint.name!r}."
    except SpreadError as e:
        state["ep_message"] = e


def duplicate() -> None:
    try:
        copy = endpoints.duplicate(store, state["ep_pick"], who=state.get("who", ""))
        state["ep_pick"], state["ep_message"] = copy.name, f"Duplicated as {copy.name!r}: edit it and save."
        load_form()
    except SpreadError as e:
        state["ep_message"] = e


def remove() -> None:
    try:
        endpoints.remove(store, state["ep_pick"])
        state["ep_message"] = f"Removed {state['ep_pick']!r}; runs made with it keep its settings."
        state["ep_pick"] = NEW
        load_form()
    except SpreadError as e:
        state["ep_message"] = e


def import_all(preview) -> None:
    try:
        state["ep_imported"] = litellm_config.apply(store, preview, who=state.get("who", ""))
        state["ep_import_text"] = ""
    except SpreadError as e:  # someone added one of these names meanwhile
        state["ep_imported"] = e


# --- the catalogue --------------------------------------------------------------------

rows = readiness_of(store, endpoints.fingerprint(store))
st.subheader(f"Endpoints ({len(rows)})")
if rows:
    table = pd.DataFrame([{
        "name": r["name"], "ready": "yes" if r["ready"] else "no", "key": r["key"], "server": r["server"],
        "problem": r["problem"] or "", "model": r["model"], "mode": r["info"].get("mode") or "chat",
        "deployments": ", ".join(d["name"] for d in r["deployments"]), "api base": r["api_base"] or "",
        "key variable": r["key_env"] or "", "parameters": json.dumps(r["params"]) if r["params"] else "",
        "$/M in": r["price_in"], "$/M out": r["price_out"], "max in flight": r["max_concurrency"],
        "rpm": r["rpm"], "timeout s": r["timeout_s"]} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    if st.button("Check again", key="ep_recheck", help="Keys and servers are checked at most every 30 s."):
        readiness_of.clear()
        st.rerun()
else:
    st.info("No endpoints yet: add one below, or import a LiteLLM proxy config. Any litellm id also works "
            "without an entry.")

with st.expander("Built-in models and provider keys"):
    st.dataframe(pd.DataFrame([{"id": e.id, "provider": e.provider, "key present": e.key_present,
                                "about": e.description} for e in catalogue.catalogue()]),
                 hide_index=True, width="stretch")


# --- add, edit, duplicate, remove, test -----------------------------------------------

st.subheader("Add or edit an endpoint")
names = [r["name"] for r in rows]
if state.get("ep_pick") not in [NEW, *names]:
    state["ep_pick"] = NEW
st.selectbox("Endpoint", [NEW, *names], key="ep_pick", persist_state="session", on_change=load_form)
left, right = st.columns(2)
left.text_input("Name", key="ep_name", placeholder="team-llama",
                help="The label shown in every view and used by runs (spread run --model NAME).")
right.text_input("litellm model id", key="ep_model", placeholder="openai/meta-llama/Llama-3.1-8B-Instruct",
                 help="openai/<served name> for vLLM, llama.cpp's server or a LiteLLM proxy; ollama/<name>; or any "
                      "cloud id such as anthropic/claude-3-5-haiku-latest.")
left.text_input("API base", key="ep_api_base", placeholder="http://gpu-1:8000/v1",
                help="The server; empty for a cloud provider's own.")
right.text_input("Key variable", key="ep_key_env", placeholder="TEAM_VLLM_KEY",
                 help="The NAME of the environment variable or .streamlit/secrets.toml entry holding the key — never "
                      "the key itself. Empty: the provider's usual variable, or no key for a self-hosted server.")
st.text_area("Parameters, one KEY=VALUE per line", key="ep_params", height=80,
             placeholder='top_k=40\nreasoning_effort=low\nresponse_format={"type": "json_object"}',
             help="Sent with every call; a VALUE that reads as JSON is sent as JSON.")
columns = st.columns(5)
columns[0].text_input("$ per M input tokens", key="ep_price_in", placeholder="litellm's",
                      help="Overrides litellm's price map; empty: its price, or unknown.")
columns[1].text_input("$ per M output tokens", key="ep_price_out", placeholder="litellm's")
columns[2].text_input("Max calls in flight", key="ep_max_concurrency", placeholder="no limit")
columns[3].text_input("Requests per minute", key="ep_rpm", placeholder="no limit",
                      help="Calls start at least 60/R s apart, so no minute sees more than R.")
columns[4].text_input("Timeout (s)", key="ep_timeout_s", placeholder="the run's")

editing = state.get("ep_pick") not in (None, NEW)
buttons = st.columns([1, 1, 1, 1, 4])
buttons[0].button("Save", key="ep_save", type="primary", on_click=save)
test_clicked = buttons[1].button("Test", key="ep_test_button", help="One short call with these settings.")
buttons[2].button("Duplicate", key="ep_duplicate", on_click=duplicate, disabled=not editing)
buttons[3].button("Remove", key="ep_remove", on_click=remove, disabled=not editing)

message = state.pop("ep_message", None)
if isinstance(message, SpreadError):
    st.error(display.inert(str(message)), icon=":material/error:")
elif message:
    st.success(display.inert(message))

if test_clicked:
    try:
        with st.spinner("Calling…"):
            state["ep_test"] = launch.wait(endpoints.try_call(form_endpoint()), timeout_s=600)
    except SpreadError as e:
        state["ep_test"] = {"ok": False, "error": str(e)}
result = state.get("ep_test")
if result:
    if result["ok"]:
        cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.6f}"
        st.caption("Answer (plain text):")
        st.text(result["answer"])  # model output: text, never markup
        reported = display.inert(result["provider_model"] or "?")
        st.caption(f"{result['latency_ms']:.0f} ms · model reported: {reported} · "
                   f"tokens {result['prompt_tokens']}/{result['completion_tokens']} · cost {cost}")
    else:
        st.error(display.inert(result["error"], 400), icon=":material/error:")


# --- import and export ----------------------------------------------------------------

st.subheader("LiteLLM proxy config")
with st.expander("Import the model_list of a config.yaml"):
    upload = st.file_uploader("config.yaml", type=["yaml", "yml"], key="ep_import_file")
    pasted = st.text_area("…or paste it", key="ep_import_text", height=160,
                          placeholder="model_list:\n  - model_name: team-llama\n    litellm_params:\n"
                                      "      model: openai/llama\n      api_base: http://gpu-1:8000/v1\n"
                                      "      api_key: os.environ/TEAM_VLLM_KEY\n      rpm: 60")
    replace = st.checkbox("Replace endpoints of the same name", key="ep_import_replace")
    text = upload.getvalue().decode("utf-8", errors="replace") if upload is not None else pasted
    if text.strip():
        try:
            preview = litellm_config.preview(store, text, replace=replace)
            st.caption(f"{len(preview.endpoints)} endpoint(s) will be added:")
            st.dataframe(pd.DataFrame([{
                "name": e.name, "model": e.model, "mode": e.mode,
                "deployments": ", ".join(d["name"] for d in e.deployments), "api base": e.api_base or "",
                "key variable": e.key_env or "",
                "parameters": json.dumps(e.params) if e.params else "", "$/M in": e.price_in, "$/M out": e.price_out,
                "max in flight": e.max_concurrency, "rpm": e.rpm, "timeout s": e.timeout_s}
                for e in preview.endpoints]), hide_index=True, width="stretch")
            for note in [f"skipped {s}" for s in preview.skipped] + preview.notes:
                st.caption(display.inert(note))
            st.button(f"Import {len(preview.endpoints)} endpoint(s)", key="ep_import", type="primary",
                      on_click=import_all, args=(preview,))
        except litellm_config.ImportRefused as e:  # every problem, one line each, no credential's value
            st.error(display.inert(f"{len(e.problems)} problem(s), nothing imported:"), icon=":material/error:")
            for problem in e.problems:
                st.error(display.inert(problem, 400))
        except SpreadError as e:
            st.error(display.inert(str(e), 1000), icon=":material/error:")
    imported = state.pop("ep_imported", None)
    if isinstance(imported, SpreadError):
        st.error(display.inert(str(imported), 1000), icon=":material/error:")
    elif imported:
        st.success(display.inert(f"Imported {', '.join(imported)}."))

named_endpoints = endpoints.list_endpoints(store)
st.download_button("Export the catalogue as config.yaml", litellm_config.export(named_endpoints),
                   file_name="config.yaml", mime="application/yaml", key="ep_export", disabled=not named_endpoints,
                   help="Keys as os.environ/NAME, never their values.")
