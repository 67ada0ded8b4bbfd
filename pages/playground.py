"""Playground: write one or more wordings of a prompt, give it a table of inputs, pick models ×
temperatures × N, see the estimate, start a run and watch it fill in."""

import json

import pandas as pd
import streamlit as st

from core import display
from core.analyse import spread
from core.config import SpreadError
from core.evaluate import checks
from core.execution import launch
from core.formats import promptfoo_config
from core.formats.traces import production
from core.models import catalogue, endpoints, local_llm
from core.prompts import conversation, inputs, shapes, templates
from core.review import golden
from core.run import drafts, estimate, plan, rewording, settle
from core.run.progress import ACTIVE, LiveProgress
from core.store import Store, runs
from core.store import traces as stored_traces
from pages.parts.store import app_store

store = app_store()

st.title("Playground")
st.caption("Send a prompt — in one or more wordings, over a table of inputs — to several models at several "
           "temperatures, many times each, and see how far the answers spread.")

model_entries = catalogue.catalogue()
# Catalogue endpoints first (Models page), then the built-in examples; any litellm id can be typed.
model_choices = list(dict.fromkeys(endpoints.names(store) + [entry.id for entry in model_entries]))
errors: dict[str, st.delta_generator.DeltaGenerator] = {}
state = st.session_state

# The plan is the app's own state (app.py keeps it across pages and starts a new session
# from the reviewer's draft in the database); a fresh plan starts from these defaults.
for key, value in {**drafts.DEFAULTS, "models": [local_llm.DEFAULT_MODEL], "max_calls": plan.DEFAULT_MAX_CALLS}.items():
    state.setdefault(key, value)
state.setdefault("reword_k", 3)
state.setdefault("until_settled", False)
state.setdefault("use_cache", False)
state.setdefault("use_batch", False)
state.setdefault("precision", settle.DEFAULT_PRECISION)


def import_promptfoo() -> None:
    """Fill the plan from a promptfoo suite (its providers join the catalogue); else list what cannot map."""
    try:
        suite = promptfoo_config.read(store, state.get("promptfoo_path", "").strip())
        values = promptfoo_config.playground_plan(suite)
        promptfoo_config.add_endpoints(store, suite, who=state.get("who", ""))
    except promptfoo_config.Unmappable as e:
        state["promptfoo_problems"] = e.problems
        return
    except SpreadError as e:
        state["promptfoo_problems"] = [str(e)]
        return
    state.update(values, promptfoo_problems=[])


with st.expander("Import a promptfoo config"):
    st.text_input("promptfooconfig.yaml", key="promptfoo_path", placeholder="(path on this server) e.g. "
                  "evals/promptfooconfig.yaml", help="Its prompts, providers and tests fill the plan below, each "
                  "test's asserts as its checks; the providers join the catalogue.")
    st.button("Fill the plan", key="import_promptfoo", icon=":material/upload_file:", on_click=import_promptfoo)
    if state.get("promptfoo_problems"):
        st.error("Not imported; nothing changed:\n" + "\n".join(
            f"- {display.inert(problem)}" for problem in state["promptfoo_problems"]))


# --- prompt variants ----------------------------------------------------------------

def add_variant(prompt: str = "", name: str = "") -> None:
    key = state.setdefault("variant_seq", 0)
    state["variant_seq"] = key + 1
    state.setdefault("variants", []).append(key)
    state[f"prompt_{key}"], state[f"variant_name_{key}"] = prompt, name


def duplicate_variant(key: int) -> None:
    """A copy of the wording as it stands: text or conversation, tools, tool choice, response format."""
    turns_of(key)  # what the turn widgets hold now
    new_key = state.setdefault("variant_seq", 0)
    fields, state["turn_seq"] = drafts.wording_copy(state, key, new_key, state.get("turn_seq", 0))
    state.update(fields, variant_seq=new_key + 1)
    state["variants"].append(new_key)


def remove_variant(key: int) -> None:
    state["variants"].remove(key)


# A conversation's turns live in `turns_{key}` ({id, role, content}); each turn's widgets
# start from there, so the turns outlive a visit to another page.
TURN_ROLES = [*conversation.ROLES, conversation.HISTORY]


def turns_of(key: int) -> list[dict]:
    """The variant's turns with what the widgets hold now."""
    turns = state.setdefault(f"turns_{key}", [])
    for turn in turns:
        for field in ("role", "content", "tool_call_id"):
            if f"{field}_{key}_{turn['id']}" in state:
                turn[field] = state[f"{field}_{key}_{turn['id']}"]
    return turns


def add_turn(key: int) -> None:
    turns = turns_of(key)
    state["turn_seq"] = state.get("turn_seq", 0) + 1
    last = turns[-1]["role"] if turns else "assistant"
    turns.append({"id": state["turn_seq"], "role": "assistant" if last == "user" else "user", "content": ""})


def move_turn_up(key: int, turn_id: int) -> None:
    turns = turns_of(key)
    at = next(k for k, turn in enumerate(turns) if turn["id"] == turn_id)
    if at:
        turns[at - 1], turns[at] = turns[at], turns[at - 1]


def remove_turn(key: int, turn_id: int) -> None:
    state[f"turns_{key}"] = [turn for turn in turns_of(key) if turn["id"] != turn_id]


def to_conversation(key: int) -> None:
    """Switching a wording to a conversation: its text becomes the first user turn."""
    if state.get(f"kind_{key}") == "conversation" and not state.get(f"turns_{key}"):
        state[f"turns_{key}"] = []
        add_turn(key)
        state[f"turns_{key}"][0]["content"] = state.get(f"prompt_{key}", "")


def variant_text(key: int) -> str:
    """What the word diff compares: the prompt, or the conversation as text."""
    if state.get(f"kind_{key}") == "conversation":
        return conversation.text(conversation.from_turns(turns_of(key)))
    return state.get(f"prompt_{key}", "")


def conversation_editor(key: int) -> None:
    turns = turns_of(key)
    for number, turn in enumerate(turns):
        tid = turn["id"]
        state.setdefault(f"role_{key}_{tid}", turn["role"])
        state.setdefault(f"content_{key}_{tid}", turn["content"])
        role_col, up_col, remove_col = st.columns([3, 1, 1])
        role = role_col.selectbox(f"Turn {number + 1}", TURN_ROLES, key=f"role_{key}_{tid}")
        up_col.button(":material/arrow_upward:", key=f"turn_up_{key}_{tid}", help="Move this turn up",
                      disabled=number == 0, on_click=move_turn_up, args=(key, tid))
        remove_col.button(":material/close:", key=f"turn_remove_{key}_{tid}", help="Remove this turn",
                          on_click=remove_turn, args=(key, tid))
        if role == "tool":
            state.setdefault(f"tool_call_id_{key}_{tid}", turn.get("tool_call_id", ""))
            st.text_input("Call id", key=f"tool_call_id_{key}_{tid}", placeholder="(optional) e.g. call_1",
                          help="The id of the assistant's tool call this turn answers (tool_call_id).")
        st.text_area("Content", key=f"content_{key}_{tid}", height=68, label_visibility="collapsed",
                     placeholder="the input column holding a conversation, e.g. messages" if role == "history"
                     else "(empty) this turn's text; may use {{variables}}")
    st.button("Add a turn", key=f"add_turn_{key}", icon=":material/add:", on_click=add_turn, args=(key,))


if not state.get("variants"):
    add_variant()

st.subheader("Prompt")
st.text_area("System message", key="system", persist_state="session", height=68,
             placeholder="(optional) instructions sent before the prompt; may use {{variables}} too")
keys = state["variants"]
for row_start in range(0, len(keys), 3):
    columns = st.columns(min(len(keys), 3))
    for column, key in zip(columns, keys[row_start:row_start + 3]):
        position = keys.index(key)
        with column:
            label = plan.variant_label(position, state.get(f"variant_name_{key}", ""))
            state.setdefault(f"kind_{key}", "text")
            st.radio(f"Variant {label}" if len(keys) > 1 else "Prompt", ["text", "conversation"], horizontal=True,
                     key=f"kind_{key}", persist_state="session", on_change=to_conversation, args=(key,),
                     help="One prompt text, or a conversation: system, few-shot user/assistant turns, "
                          "tool results, and history turns that place an input's conversation.")
            if state.get(f"kind_{key}") == "conversation":
                conversation_editor(key)
            else:
                st.text_area(f"Variant {label}" if len(keys) > 1 else "Prompt",
                             key=f"prompt_{key}", persist_state="session", height=140,
                             placeholder="(empty) write the prompt here, e.g. What is the capital of {{country}}?",
                             help="{{name}} is filled from each input's column of that name.",
                             label_visibility="collapsed")
            with st.expander("Tools and response format"):
                st.text_area("Tools (OpenAI tools list, JSON or YAML)",
                             key=f"tools_{key}", persist_state="session", height=100,
                             help="The model may call these; calls are stored and compared, never executed.")
                st.text_input("Tool choice", key=f"tool_choice_{key}", persist_state="session",
                              placeholder="auto, none, required or a name")
                st.text_area("Response format", key=f"response_format_{key}", persist_state="session", height=68,
                             placeholder="json, or a JSON Schema", help="Ask for JSON, or JSON valid against a schema.")
            left, middle, right = st.columns([3, 1, 1])
            left.text_input("Name", key=f"variant_name_{key}", persist_state="session", placeholder=label,
                            label_visibility="collapsed",
                            help="A short name for this wording; prompts are versioned per name.")
            middle.button(":material/content_copy:", key=f"duplicate_{key}", help="Duplicate this wording",
                          on_click=duplicate_variant, args=(key,))
            right.button(":material/delete:", key=f"remove_{key}", help="Remove this wording",
                         disabled=len(keys) == 1, on_click=remove_variant, args=(key,))
errors["prompt"] = st.empty()
st.button("Add a wording", key="add_variant", icon=":material/add:", on_click=add_variant)

texts = {plan.variant_label(k, state.get(f"variant_name_{key}", "")): variant_text(key)
         for k, key in enumerate(keys)}
if len(texts) > 1:
    with st.expander("Word diff between two wordings"):
        left, right = st.columns(2)
        first = left.selectbox("From", list(texts), key="diff_a")
        second = right.selectbox("To", list(texts), index=1, key="diff_b")
        # Plain text: removed words on "-" lines, added on "+" lines. Never markup.
        st.code("\n".join(f"{op} {words}" for op, words in spread.word_diff(texts[first], texts[second])),
                language="diff")

with st.expander("Generate rewordings with a model"):
    st.caption("A model rewrites the first wording K times, keeping its {{variables}}; edit, approve, and they run "
               "as more variants. The embedded models are tiny: they rewrite poorly — pick a "
               "capable model for this.")
    left, middle, right = st.columns([3, 1, 1])
    rewriter = left.selectbox("Model", model_choices, key="reword_model", persist_state="session",
                              accept_new_options=True)
    k = middle.number_input("K", 1, rewording.MAX_REWORDINGS, key="reword_k", persist_state="session")
    if right.button("Generate", key="reword"):
        try:
            first_text = state.get(f"prompt_{keys[0]}", "")
            result = launch.wait(rewording.reword(store, first_text, int(k), rewriter,
                                                  api_base=(state.get("api_base") or "").strip() or None))
            state["rewordings"] = result
            for i, text in enumerate(result["rewordings"]):
                state[f"rewording_{i}"], state[f"approve_{i}"] = text, True
        except SpreadError as e:
            st.error(display.inert(str(e)))
    result = state.get("rewordings")
    if result:
        cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.6f}"
        st.caption(f"{result['calls']} calls · cost {cost} · {len(result['rejected'])} set aside")
        for i, _ in enumerate(result["rewordings"]):
            st.text_area(f"Rewording {i + 1}", key=f"rewording_{i}", height=80)
            st.checkbox("Approve", key=f"approve_{i}")
        for rejected in result["rejected"]:
            st.caption(f"Set aside ({display.inert(rejected['reason'])}): {display.inert(rejected['text'], 120)}")

        def add_approved() -> None:
            for i, _ in enumerate(state["rewordings"]["rewordings"]):
                if state.get(f"approve_{i}") and state.get(f"rewording_{i}", "").strip():
                    add_variant(state[f"rewording_{i}"])
            state["rewordings"] = None

        st.button("Add the approved rewordings as variants", key="add_rewordings", on_click=add_approved)


# --- inputs -------------------------------------------------------------------------

st.subheader("Inputs")


@st.cache_data(max_entries=4, show_spinner="Sampling production inputs…", hash_funcs={Store: lambda store: str(store.target)})
def sampled_from_traces(store: Store, how_many: int, strategy: str, calls: int) -> list[dict]:
    """`calls`: how many production calls are stored; new traffic draws a new sample."""
    return production.sample_inputs(store, how_many, strategy=strategy)


needed = list(dict.fromkeys(name for text in [*texts.values(), state.get("system", "")]
                            for name in templates.variables(text)))
source = st.radio("Inputs from", ["none", "typed rows", "pasted text", "a file", "a golden set", "an earlier run",
                                  "production traces"],
                  key="inputs_source", persist_state="session", horizontal=True,
                  help="Each input fills the {{variables}}; columns no variable uses are kept for checks "
                       "(an expected answer, for example).")
input_rows: list[dict] = []
try:
    if source == "typed rows":
        typed = state["typed_rows"]
        columns = list(dict.fromkeys(needed + [c for c in state.get("input_columns", []) if c]
                                     + [c for row in typed for c, value in row.items() if value]))
        editor = f"inputs_table_{'_'.join(columns)}"
        if editor not in state:  # a new editor (first visit, or new columns) starts from the rows kept so far
            state["typed_base"] = typed
        edited = st.data_editor(pd.DataFrame(state["typed_base"], columns=columns or ["input"], dtype=str),
                                num_rows="dynamic", key=editor, width="stretch")
        state["typed_rows"] = edited.fillna("").to_dict("records")
        input_rows = inputs.from_table(state["typed_rows"])
        st.text_input("More columns (comma-separated)", key="input_columns_text", persist_state="session",
                      on_change=lambda: state.update(input_columns=[c.strip() for c in
                                                                    state["input_columns_text"].split(",")]),
                      placeholder="expected", help="For example an expected answer for checks.")
    elif source == "pasted text":
        pasted = st.text_area("CSV with a header row, or JSON Lines",
                              key="inputs_pasted", persist_state="session", height=120,
                              placeholder="(empty) e.g.\ncountry,expected\nFrance,Paris\nPeru,Lima")
        input_rows = inputs.parse_pasted(pasted)
    elif source == "a file":
        upload = st.file_uploader("CSV (with a header row), JSONL or JSON", type=["csv", "jsonl", "json"],
                                  key="inputs_file")
        if upload is not None:
            # Parsed once and kept: an uploaded file's widget forgets it on another page.
            state["file_rows"], state["file_name"] = inputs.parse(upload.getvalue(), upload.name), upload.name
        elif state.get("file_rows"):
            st.caption(f"Using {display.inert(state['file_name'])}: upload another file to replace it.")
        input_rows = state.get("file_rows") or []
    elif source == "a golden set":
        sets = [s["name"] for s in golden.list_sets(store)]
        chosen_set = st.selectbox("Golden set", sets, key="inputs_golden", persist_state="session") if sets else None
        if chosen_set:
            input_rows = golden.as_inputs(store, chosen_set)
        else:
            st.caption("No golden sets yet.")
    elif source == "an earlier run":
        with store.connection() as db:
            past = runs.list_runs(db)
        chosen_run = st.selectbox("Run", [r["id"] for r in past], key="inputs_run", persist_state="session",
                                  format_func=lambda i: f"{i} · {next(r['name'] for r in past if r['id'] == i)}")
        if chosen_run:
            input_rows = inputs.from_run(store, chosen_run)
    elif source == "production traces":
        left, right = st.columns(2)
        how_many = left.number_input("Distinct real inputs", 1, 1000, 20, key="inputs_traces_n",
                                     persist_state="session")
        strategy = right.radio("Sample", production.STRATEGIES, key="inputs_traces_strategy",
                               persist_state="session", horizontal=True,
                               help="diverse: spread over the inputs' meanings, near-duplicates dropped")
        with store.connection() as db:
            stored_calls = stored_traces.count(db)
        input_rows = sampled_from_traces(store, int(how_many), strategy, stored_calls)
        st.caption("Template variables where the trace recorded them; otherwise each conversation is in "
                   "`messages` and its system message in `system`: a conversation variant with a "
                   "`{{system}}` system turn and a history turn from `messages` replays them as production "
                   "sent them.")
except SpreadError as e:
    st.error(display.inert(str(e)), icon=":material/error:")
if input_rows and source != "typed rows":
    st.dataframe(pd.DataFrame(input_rows).head(200), hide_index=True, width="stretch")
if input_rows:
    st.caption(f"{len(input_rows):,} inputs · variables: {display.inert(', '.join(inputs.columns(input_rows)))}")
errors["inputs"] = st.empty()


# --- models and sampling ------------------------------------------------------------

st.subheader("Models and sampling")
left, right = st.columns([3, 2])
with left:
    chosen = st.multiselect(
        "Models", list(dict.fromkeys(model_choices + state["models"])), key="models", persist_state="session",
        accept_new_options=True,
        help="Endpoints from the Models page first (each with its own server, key, prices and limits), then "
             "examples. Any litellm model id can be typed, e.g. openai/gpt-4o-mini, anthropic/..., "
             "ollama/llama3.2, or openai/<name> with an API base.",
    )
    for model in filter(local_llm.is_local, chosen):
        st.caption(local_llm.embedded(model).description)
    errors["models"] = st.empty()
    api_base = st.text_input("API base (OpenAI-compatible server)", key="api_base", persist_state="session",
                             placeholder="http://localhost:8000/v1",
                             help="Used for every model typed as a litellm id, not for the embedded model nor for "
                                  "endpoints of the Models page (each has its own).")
    errors["api_base"] = st.empty()
with right:
    temperatures_text = st.text_input("Temperatures", key="temperatures", persist_state="session",
                                      help="Comma-separated, each in 0..2.")
    errors["temperatures"] = st.empty()
    n_col, tokens_col, seed_col = st.columns(3)
    n = n_col.number_input("Samples (N)", min_value=1, max_value=plan.MAX_N, key="n", persist_state="session")
    max_tokens = tokens_col.number_input("Max tokens", min_value=1, max_value=200_000,
                                         key="max_tokens", persist_state="session")
    seed_text = seed_col.text_input("Seed", key="seed", persist_state="session", placeholder="random",
                                    help="Sample i uses seed + i: the run can be repeated exactly.")
    errors["n"], errors["seed"] = st.empty(), st.empty()
    # One toggle per line: in half of this column their labels were cut to "Sample until…".
    st.toggle("Sample until settled", key="until_settled", persist_state="session",
              help="Cells are sampled in rounds; a cell stops once the 95% interval of its consistency is "
                   "narrower than the precision (a cell split between meanings goes on). N is then the most "
                   "samples a cell takes. Its intervals stay valid after stopping early (docs/cost.md).")
    precision_col, _ = st.columns(2)
    precision_col.number_input("Precision (interval width)", min_value=0.01, max_value=0.99, step=0.05,
                               key="precision", persist_state="session", disabled=not state.get("until_settled"))
    st.toggle("Reuse stored answers (cache)", key="use_cache", persist_state="session",
              help="An answer already stored for the very same request and sample index is reused at no new "
                   "cost; repeats stay independent draws, never copies of one answer.")
    st.toggle("Cheaper, slower: provider batch", key="use_batch", persist_state="session",
              help="Send the samples through the provider's batch API (OpenAI-compatible endpoints, Anthropic, "
                   "Gemini, Together) at its batch price; answers arrive in minutes to hours.")
    concurrency_col, cap_col = st.columns(2)
    concurrency = concurrency_col.number_input("Calls in flight", 1, 1024, key="concurrency", persist_state="session",
                                               help="At most this many calls at once, over all models.")
    max_calls = cap_col.number_input("Allow up to (calls)", 1, plan.HARD_MAX_CALLS,
                                     key="max_calls", persist_state="session",
                                     help="A plan above this is refused: raise it knowingly.")
    errors["max_calls"] = st.empty()
name = st.text_input("Run name", key="name", persist_state="session", help="Names the run and its prompt versions.")
with st.expander("Checks on every answer, and what counts as its meaning (optional)"):
    st.text_area("One per line: TYPE[:VALUE]", key="checks_text", persist_state="session", height=90,
                 placeholder="similar:{{expected}}\nmax-length:200\nnot-icontains:as an AI",
                 help="Types: " + ", ".join(checks.TYPES) + ". Values may use the input's {{variables}}.")
    st.text_input("Judge model for llm-rubric checks",
                  key="judge_model", persist_state="session", placeholder="e.g. openai/gpt-4o-mini",
                  help="A judge is off unless you name one; its calls and cost are counted.")
    errors["checks"] = st.empty()
    st.text_input("Judge an answer's meaning by", key="extract", persist_state="session",
                  help="whole, first-sentence, final-answer (after a last 'Answer:' or the last number), "
                       "json:FIELD, regex:PATTERN — for long answers, compare the part that matters.")
    errors["extract"] = st.empty()


def current_checks() -> list[dict]:
    lines = [line.strip() for line in state.get("checks_text", "").splitlines() if line.strip()]
    found = checks.validate([checks.parse(line) for line in lines], input_rows,
                            judge=(state.get("judge_model") or "").strip() or None)
    return [c.as_dict() for c in found]


def current_variant(key: int) -> plan.Variant:
    try:
        tools = shapes.tools_from_text(state.get(f"tools_{key}", ""))
        choice = shapes.checked_tool_choice((state.get(f"tool_choice_{key}") or "").strip() or None, tools)
        response_format = shapes.response_format_from_text(state.get(f"response_format_{key}", ""))
    except SpreadError as e:  # shown under the Run button: say which wording it is about
        label = plan.variant_label(keys.index(key), state.get(f"variant_name_{key}", ""))
        raise SpreadError(f"wording {label}: {e}" if len(keys) > 1 else str(e), e.field) from None
    conversational = state.get(f"kind_{key}") == "conversation"
    return plan.Variant("" if conversational else state.get(f"prompt_{key}", ""), state.get("system", ""),
                        state.get(f"variant_name_{key}", ""),
                        conversation.from_turns(turns_of(key)) if conversational else None, tools, choice,
                        response_format)


def current_spec() -> plan.RunSpec:
    return plan.RunSpec(
        variants=[current_variant(key) for key in keys],
        inputs=input_rows, name=name, models=chosen, temperatures=plan.parse_temperatures(temperatures_text),
        n=int(n), max_tokens=int(max_tokens), seed=plan.parse_seed(seed_text), api_base=api_base.strip() or None,
        concurrency=int(concurrency), max_calls=int(max_calls), checks=current_checks(),
        extract=(state.get("extract") or "whole").strip(),
        until_settled=bool(state.get("until_settled")), precision=float(state.get("precision")),
        cache=bool(state.get("use_cache")), batch=bool(state.get("use_batch")),
    )


def show_error(e: SpreadError) -> None:
    errors.get(e.field or "", errors["prompt"]).error(display.inert(str(e)), icon=":material/error:")


# --- estimate and run -----------------------------------------------------------------

@st.cache_data(max_entries=8, show_spinner="Counting prompt tokens…", hash_funcs={Store: lambda store: str(store.target)})
def estimate_of(store: Store, _spec: plan.RunSpec, key: str) -> dict:
    """Cached by the plan's content (`key`): counting tokens over a big table takes a moment."""
    return estimate.estimate(store, _spec, check_providers=False)


estimate_col, run_col = st.columns([4, 1])
# Tools and response formats sit in collapsed expanders above: their problems show here,
# under the Run button, where the person who pressed it looks.
errors["tools"] = errors["response_format"] = st.empty()
with estimate_col:
    try:
        spec_now = current_spec()
        guess = estimate_of(store, spec_now, repr(spec_now) + endpoints.fingerprint(store))
        cost = estimate.cost_text(guess)
        ceiling = "no ceiling" if guess["completion_tokens_max"] is None else f"≤ {guess['completion_tokens_max']:,}"
        st.info(f"**{guess['calls']:,} calls** = {guess['variants']} wordings × {guess['inputs']} inputs × "
                f"{guess['models']} models × {guess['temperatures']} temperatures × N={guess['n']} · prompt tokens "
                f"{guess['prompt_tokens']:,} (counted) · completion tokens {ceiling} · cost {cost}",
                icon=":material/calculate:")
        if "batch" in guess:
            found = guess["batch"]
            high = "?" if found["cost_usd_high"] is None else display.money(found["cost_usd_high"])
            st.caption(f"Through the provider's batch API: {display.money(found['cost_usd_low'])} – {high} "
                       f"({found['note']}).")
        if "until_settled" in guess:
            found = guess["until_settled"]
            st.caption(f"Until settled: {found['calls_fewest']:,} calls if every cell settles at "
                       f"{found['samples_per_cell_fewest']} samples, up to {found['calls_most']:,} if none settles "
                       f"before N={found['samples_per_cell_most']}.")
        for note in guess["notes"]:
            st.caption(display.inert(note))
    except SpreadError as e:
        if e.field not in ("prompt", None) or any(variant_text(key).strip() for key in keys):
            show_error(e)
if run_col.button("Run", type="primary", key="run", width="stretch"):
    try:
        planned = current_spec()
        if planned.until_settled:  # the rule judges meaning after every round: its model must answer now
            from core.analyse import settled

            settled.check_meaning_model(store, planned.embeddings)
        state["active_run"] = launch.start(store, planned, created_by=state.get("who", ""))
    except SpreadError as e:
        show_error(e)


# --- the run in progress ----------------------------------------------------------------

with store.connection() as db:
    active_id = state.get("active_run")
    run = runs.get_run(db, active_id) if active_id else runs.latest_active_run(db)

if run is not None:
    run_id = run["id"]

    @st.fragment(run_every=1.0 if run["status"] in ACTIVE else None)
    def live_progress():
        # Reads only the answers stored since the last refresh: the same cost at any run size.
        tracker = st.session_state.setdefault(f"progress-{run_id}", LiveProgress(store, run_id))
        current = tracker.refresh()
        if current.get("outage"):  # the database is away: its last state stays, with why it is not moving
            st.warning(display.inert(current["outage"]), icon=":material/cloud_off:")
        spec = current["spec"]
        received = current["received"]
        st.subheader(f"Run {run_id}: {current['status']}")
        st.progress(received / max(current["planned"], 1),
                    text=f"{received}/{current['planned']} samples · {current['errors']} errors")
        per_cell = len(spec["variants"]) * spec["n_inputs"] * spec["n"]
        st.dataframe(spread.progress_grid(current["counts"], spec["models"], spec["temperatures"], per_cell),
                     width="stretch")
        if received:
            seen = estimate.projection_from(current["counts"], current["planned"], spec["models"])
            projected = display.money(seen["cost_usd_projected"]) if seen["complete"] else "not yet known for every model"
            st.caption(f"Cost so far {display.usd(seen['cost_usd_so_far'], seen['answers_unpriced'])} · "
                       f"projected for the whole run: {projected}")
        if current["status"] in ("queued", "running", "pending"):
            if st.button("Cancel run", key=f"cancel-{run_id}"):
                launch.request_cancel(store, run_id)
        elif current["status"] != run["status"]:
            st.rerun()  # the run just ended: redraw once to stop polling
        else:
            st.page_link("pages/spread.py", label=f"See how run {run_id} spread", icon=":material/scatter_plot:",
                         query_params={"run": run_id})
            st.page_link("pages/runs.py", label=f"Open run {run_id}", icon=":material/open_in_new:",
                         query_params={"run": run_id})

    live_progress()


# --- the draft ---------------------------------------------------------------------------

def save_draft() -> None:
    """Write the plan as the reviewer's draft when it changed (a cheap upsert)."""
    draft = drafts.plan_of(state)
    text = json.dumps(draft, sort_keys=True, default=str)
    if text != state.get("draft_saved"):
        drafts.save(store, state.get("draft_owner", ""), draft)
        state["draft_saved"] = text


save_draft()
