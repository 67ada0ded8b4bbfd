"""Review: label meaning clusters (largest first), then single answers; see where reviewers disagree."""

import time

import pandas as pd
import streamlit as st

from core import display
from core.analyse import embed, spread
from core.config import SpreadError
from core.prompts import conversation, shapes
from core.review import decisions, golden, labels
from core.run import plan
from core.store import runs as run_rows
from pages.parts import conversation_view
from pages.parts.store import app_store

store = app_store()


def golden_form(item: dict, who: str) -> None:
    """Add the representative answer to a golden set. A failed answer is never a reference:
    it takes a correction (the new item's reference) or joins an existing item's rejected answers.

    Every field belongs to the answer on screen (keyed by it): a reference typed for one answer
    never becomes the next one's. The set list starts at the set last added to."""
    state = st.session_state
    answer_id = item["representative_id"]
    keys = {field: f"golden_{field}_{answer_id}" for field in ("target", "new", "correction", "item")}
    sets = [s["name"] for s in golden.list_sets(store)]
    if sets and keys["target"] not in state and state.get("golden_last_set") in sets:
        state[keys["target"]] = state["golden_last_set"]
    target = st.selectbox("Golden set", sets, key=keys["target"]) if sets else None
    new_name = st.text_input("…or a new set", key=keys["new"])
    name = new_name.strip() or target
    failed = golden.answer_verdict(store, answer_id) == "fail"
    if failed:
        st.caption("This answer was failed: it can only be a rejected example. Give the correct answer as the "
                   "new item's reference, or reject it in an item already in the set.")
    correction = st.text_area("Correct answer (the reference)" if failed else
                              "Reference (empty: this answer)", key=keys["correction"], height=68)

    def add() -> None:
        # Read from session state at the click: the values on screen for this answer.
        chosen = (state.get(keys["new"]) or "").strip() or state.get(keys["target"])
        try:
            if chosen and chosen not in [s["name"] for s in golden.list_sets(store)]:
                golden.create_set(store, chosen, created_by=who)
            version = golden.add_responses(store, chosen or "", [answer_id], who=who,
                                           correction=state.get(keys["correction"]) or None)
        except SpreadError as e:
            state["golden_message"] = (answer_id, "error", str(e))
            return
        state["golden_message"] = (answer_id, "success", f"Added to {chosen!r}: version {version}")
        # The set now exists: the list shows it chosen and the new-set box is empty, so a
        # later choice in the list is what the next Add uses.
        state["golden_last_set"] = state[keys["target"]] = chosen
        state[keys["new"]] = ""

    needs_reference = failed and not correction.strip() and not golden.labelled_correction(store, answer_id)
    st.button("Add as a new item", key="golden_add", disabled=needs_reference, on_click=add)
    message = state.get("golden_message")
    if message and message[0] == answer_id:
        (st.success if message[1] == "success" else st.error)(display.inert(message[2]))
    try:
        existing = golden.matching_items(store, name, answer_id) if failed and name in sets else []
        if existing:
            references = {row["item_key"]: display.one_line(row["reference"] or "(no reference)", 60) for row in existing}
            key = st.selectbox("Item with this input", list(references), format_func=references.get,
                               key=keys["item"])
            if st.button("Add to its rejected answers", key="golden_reject"):
                version = golden.add_rejected(store, name, key, [answer_id], who=who)
                st.success(f"Rejected in {display.inert(repr(name))}: version {version}")
    except SpreadError as e:
        st.error(display.inert(str(e)))


# Other reviewers' labels reach this page by themselves: these parts redraw every AGREEMENT_S
# seconds (the same cadence at which the labels are recounted, once per server for everybody).
@st.fragment(run_every=labels.AGREEMENT_S)
def disputes_here(item: dict) -> None:
    disputed = sorted(labels.recent_disputes(store, item["run_id"]).intersection(item["member_ids"]))
    if disputed:
        st.caption(f"Reviewers disagree on answers {', '.join(map(str, disputed))}")


@st.fragment(run_every=labels.AGREEMENT_S)
def agreement(run_ids: list[int], who: str) -> None:
    for run_id in run_ids:
        stats = labels.recent_agreement(store, run_id)
        counted = time.strftime('%H:%M:%S', time.localtime(stats['as_of']))
        if stats["percent"] is None:
            # This reviewer's own labels count at once; the others' as last counted.
            so_far = sorted(set(stats["reviewers"]) | ({who} if labels.my_labels(store, run_id, who) else set()))
            st.caption(f"Run {run_id}: agreement needs two reviewers on the same answers (so far: "
                       f"{display.inert(', '.join(so_far)) or 'nobody'}; others' labels counted at {counted}).")
            continue
        kind = "Cohen's" if stats["kappa_kind"] == "cohen" else "Fleiss'"
        a, b, c = st.columns(3)
        a.metric(f"Run {run_id}: agreement", f"{stats['percent']:.0%}", help=f"over {stats['answers']} answers "
                 "labelled by every reviewer")
        b.metric(f"{kind} kappa", "–" if stats["kappa"] is None else f"{stats['kappa']:.2f}",
                 help="Agreement beyond chance: 1 perfect, 0 no better than chance.")
        c.metric("Reviewers", len(stats["reviewers"]))
        st.caption(f"Counted at {counted} (again every {labels.AGREEMENT_S:g} s while reviewers label)")
        disputed = stats["disagreements"]
        if disputed:
            st.caption(f"Answers the reviewers disagree on: {stats['disputed']:,}"
                       + (f", the first {len(disputed)} listed" if stats["disputed"] > len(disputed) else ""))
            st.dataframe(pd.DataFrame([{"answer": d["response_id"], **d["verdicts"]} for d in disputed]),
                         hide_index=True)


st.title("Review")
who = st.session_state.get("who", "")
if not who:
    st.warning("Enter your name as reviewer in the sidebar first: every label records who gave it.")
    st.stop()

with store.connection() as db:
    runs = run_rows.list_runs(db)
if not runs:
    st.info("No runs yet. Start one in the Playground.")
    st.stop()
names = {r["id"]: f"{r['id']} · {r['name']}" for r in runs}

with st.expander("What to review", expanded=True):
    left, right = st.columns(2)
    run_ids = left.multiselect("Runs", list(names), default=[runs[0]["id"]], format_func=names.get,
                               key="review_runs", persist_state="session")
    chosen = [r for r in runs if r["id"] in run_ids]
    all_models = sorted({m for r in chosen for m in r["models"]})
    all_temperatures = sorted({t for r in chosen for t in r["temperatures"]})
    models = right.multiselect("Models (none = all)", all_models, key="review_models", persist_state="session")
    temperatures = right.multiselect("Temperatures (none = all)", all_temperatures,
                                     key="review_temperatures", persist_state="session")
    most_variants = max((len(r["variants"]) for r in chosen), default=1)
    most_inputs = max((r["n_inputs"] for r in chosen), default=1)
    variants = left.multiselect("Wordings (none = all)", list(range(most_variants)),
                                key="review_variants", persist_state="session",
                                format_func=plan.variant_label) if most_variants > 1 else []
    inputs_chosen = left.multiselect("Inputs (none = all)", list(range(most_inputs)),
                                     key="review_inputs", persist_state="session",
                                     format_func=lambda i: f"#{i + 1}") if most_inputs > 1 else []  # several runs
    a, b, c, d = st.columns(4)
    unlabelled_only = a.toggle("Unlabelled by me only", key="review_unlabelled", persist_state="session")
    disagreements_only = b.toggle("Disagreements only", key="review_disagreements", persist_state="session")
    methods = list(embed.METHODS) if embed.model_available() else ["tfidf", "exact"]
    method = c.selectbox("Group by", methods, format_func=embed.METHODS.get,
                         key="review_method", persist_state="session")
    threshold = d.slider("Similarity", 0.30, 0.99, spread.DEFAULT_THRESHOLD, 0.01,
                         key="review_threshold", persist_state="session")

if not run_ids:
    st.info("Pick at least one run.")
    st.stop()

result = labels.queue(store, run_ids, who, method=method, threshold=threshold, models=models,
                      temperatures=temperatures, variants=variants, inputs=inputs_chosen, unlabelled_only=unlabelled_only,
                      disagreements_only=disagreements_only)
items = result["items"]
st.progress(result["labelled"] / max(result["total"], 1),
            text=f"{result['labelled']}/{result['total']} answers labelled by {display.inert(who)}")
if not items:
    st.success("Nothing left to review with these filters.")
else:
    # The place is the answer being reviewed, not a position: a filter that keeps it in the
    # list keeps it on screen; otherwise review goes on from the first answer of the new list.
    ids = [i["representative_id"] for i in items]
    position = ids.index(st.session_state.get("review_item")) if st.session_state.get("review_item") in ids else 0
    item = items[position]
    st.session_state["review_item"] = item["representative_id"]
    step = {"previous": ids[max(position - 1, 0)], "next": ids[min(position + 1, len(ids) - 1)]}
    context, answer = st.columns([2, 3])
    with context:
        where = f" · input {item['input_name']}" if most_inputs > 1 else ""
        wordings = f" · wording {', '.join(item['wordings'])}" if most_variants > 1 else ""
        st.caption(display.inert(f"Run {item['run_id']}{where}{wordings} · prompt as sent"))
        conversation_view.draw(conversation.answered_with(store, item["representative_id"]))
    with answer:
        kind = (f"Meaning cluster of {item['size']} answers" if item["kind"] == "cluster" else "Single answer")
        if item["meaning_kind"]:
            kind += f" ({item['meaning_kind']}s)" if item["kind"] == "cluster" else f" ({item['meaning_kind']})"
        st.subheader(f"{position + 1} of {len(items)} · {kind}")
        st.caption("Representative answer" if item["kind"] == "cluster" else "Answer")
        st.text(item["representative"])  # model output: shown as text, never rendered
        mine = item["verdicts"]
        if mine:
            counts = pd.Series(list(mine.values())).value_counts().to_dict()
            st.caption("Your labels here: " + ", ".join(f"{v} {n}" for v, n in counts.items()))
        if item["overrides"]:
            st.caption(f"Overridden individually: answers {', '.join(map(str, item['overrides']))}")
        disputes_here(item)

        st.segmented_control("Score", [1, 2, 3, 4, 5], key=f"score_{item['representative_id']}")
        st.multiselect("Tags", labels.known_tags(store), key=f"tags_{item['representative_id']}", accept_new_options=True)
        st.text_area("Corrected or ideal answer", key=f"correction_{item['representative_id']}", height=80)
        offered = labels.tools_for(store, item["representative_id"])
        if offered:  # a tool-call run: the correction can be the calls the answer should have made
            def add_call(rid: int, tools: list[dict]) -> None:
                state = st.session_state
                try:
                    (checked,) = shapes.checked_calls([{"name": state[f"call_tool_{rid}"],
                                                        "arguments": state.get(f"call_args_{rid}") or "{}"}], tools)
                except SpreadError as e:
                    state[f"call_error_{rid}"] = str(e)
                    return
                state[f"calls_{rid}"] = [*state.get(f"calls_{rid}", []), checked]
                state[f"call_args_{rid}"] = ""

            def remove_call(rid: int, k: int) -> None:
                calls = list(st.session_state.get(f"calls_{rid}", []))
                st.session_state[f"calls_{rid}"] = calls[:k] + calls[k + 1:]

            rid = item["representative_id"]
            st.caption("Expected tool calls: the calls this answer should have made (each checked against its "
                       "tool's schema)")
            for k, expected in enumerate(st.session_state.get(f"calls_{rid}", [])):
                shown, remove = st.columns([5, 1], vertical_alignment="center")
                shown.code(shapes.readable_call(expected), language=None)
                remove.button("Remove", key=f"call_remove_{rid}_{k}", on_click=remove_call, args=(rid, k))
            tool_column, arguments_column = st.columns([1, 2])
            tool_column.selectbox("Tool", shapes.tool_names(offered), key=f"call_tool_{rid}")
            arguments_column.text_area("Arguments (JSON)", key=f"call_args_{rid}", height=68,
                                       placeholder='{"city": "Paris"}')
            st.button("Add the call", key=f"call_add_{rid}", on_click=add_call, args=(rid, offered))
            if call_error := st.session_state.pop(f"call_error_{rid}", None):
                st.error(display.inert(call_error))
        st.text_input("Note", key=f"note_{item['representative_id']}")

        def save(verdict: str) -> None:
            # Read the fields from session state: a callback's closure holds the previous run's values.
            state = st.session_state
            if (state.get(f"call_args_{item['representative_id']}") or "").strip():
                state["review_error"] = ("the expected call typed above is not added yet: press Add the call, "
                                         "or clear its arguments")
                return
            label = labels.Label(verdict, score=state.get(f"score_{item['representative_id']}"), tags=state.get(f"tags_{item['representative_id']}"),
                                 correction=state.get(f"correction_{item['representative_id']}") or None,
                                 note=state.get(f"note_{item['representative_id']}") or None,
                                 correction_calls=state.get(f"calls_{item['representative_id']}") or None)
            try:
                if item["kind"] == "cluster":
                    labels.label_cluster(store, item["member_ids"], item["representative_id"], who, label)
                else:
                    labels.label(store, item["member_ids"][0], who, label)
            except SpreadError as e:
                st.session_state["review_error"] = str(e)
                return
            st.session_state["review_item"] = step["next"]

        buttons = st.columns(5)
        buttons[0].button("Pass", shortcut="P", on_click=save, args=("pass",), type="primary", key="pass")
        buttons[1].button("Fail", shortcut="F", on_click=save, args=("fail",), key="fail")
        buttons[2].button("Unsure", shortcut="U", on_click=save, args=("unsure",), key="unsure")
        buttons[3].button("Previous", shortcut="K", key="previous", disabled=position == 0,
                          on_click=lambda: st.session_state.update(review_item=step["previous"]))
        buttons[4].button("Next", shortcut="J", key="next", disabled=position >= len(items) - 1,
                          on_click=lambda: st.session_state.update(review_item=step["next"]))
        st.caption("Keys: P pass · F fail · U unsure · J next · K previous. A cluster label applies to "
                   "every member; members you labelled one by one keep their own label.")
        if error := st.session_state.pop("review_error", None):
            st.error(display.inert(error))

    if item["kind"] == "cluster":
        with st.expander(f"The {item['size']} members: change a verdict to override it for one answer"):
            table = pd.DataFrame(labels.members(store, item["member_ids"], who))
            edited = st.data_editor(
                table, hide_index=True, key=f"members_{item['representative_id']}_{len(table)}",
                disabled=["id", "text", "override"],
                column_config={"verdict": st.column_config.SelectboxColumn(options=list(labels.VERDICTS))},
            )
            for before, after in zip(table.itertuples(), edited.itertuples()):
                # An emptied cell reads as NaN: only a chosen verdict overrides.
                if after.verdict in labels.VERDICTS and after.verdict != before.verdict:
                    labels.label(store, int(after.id), who, labels.Label(after.verdict))
                    st.rerun()
            others = [m for m in item["member_ids"] if m != item["representative_id"]]
            texts = {row["id"]: row["text"] for row in table.to_dict("records")}
            member = st.selectbox("Why is this answer in the cluster?", others, key=f"why_{item['cluster']}",
                                  format_func=lambda m: display.one_line(texts.get(m, ""), 80))
            if member is not None:
                pair = decisions.explain(store, item["representative_id"], member, method=method, threshold=threshold)
                st.text(f"Against the representative: {pair.reason} (similarity {pair.similarity:.2f})")
                if st.button("It means something else: split it out", key=f"split_{item['cluster']}_{member}"):
                    decisions.decide(store, item["representative_id"], member, "split", reviewer=who)
                    st.rerun()
            stats = labels.agreement_of(store, item["member_ids"])
            if stats["percent"] is not None:
                st.caption(f"Reviewers agree on {stats['percent']:.0%} of this cluster's answers "
                           f"({stats['kappa_kind']} kappa {stats['kappa']})")

    with st.popover("Add to a golden set"):
        golden_form(item, who)

st.divider()
st.subheader("Agreement")
agreement(run_ids, who)
