"""Compare: two parts of one run (wording A against B, one model against another), or two runs
(before and after a prompt change), paired per input."""

import pandas as pd
import streamlit as st

from core import display
from core.analyse import embed, spread, tables
from core.prompts import conversation
from core.store import runs as run_rows
from pages.parts import conversation_view
from pages.parts.store import app_store

store = app_store()

st.title("Compare")
st.caption("Which meanings two sets of answers share, which are unique to one side, and whether "
           "consistency moved by more than sampling noise. Over several inputs the comparison is paired: "
           "each input against itself.")

with store.connection() as db:
    runs = run_rows.list_runs(db)
if not runs:
    st.info("No runs yet. Start one in the Playground.")
    st.stop()
names = {r["id"]: f"{r['id']} · {r['name']} (v{r['prompt_version']})" for r in runs}


def side(column, label: str, default_variant: int):
    with column:
        st.subheader(label)
        run_id = st.selectbox("Run", list(names), format_func=names.get, key=f"run_{label}", persist_state="session")
        run = next(r for r in runs if r["id"] == run_id)
        wordings = list(range(len(run["variants"])))
        variants = st.multiselect("Wordings (none = all)", wordings,
                                  key=f"variants_{label}_{run_id}", persist_state="session",
                                  default=[min(default_variant, len(wordings) - 1)] if len(wordings) > 1 else [],
                                  format_func=lambda v: run["variants"][v])
        cells = [(m, t) for m in run["models"] for t in run["temperatures"]]
        several = len(wordings) > 1
        chosen = st.multiselect("Models × temperatures (none = all)", cells,
                                key=f"cells_{label}_{run_id}", persist_state="session",
                                default=[] if several else (cells[:1] if label == "A" else cells[1:2] or cells[:1]),
                                format_func=lambda c: f"{c[0]} @ T={c[1]:g}")
        return run_id, chosen, variants


a_col, b_col = st.columns(2)
side_a = side(a_col, "A", 0)
side_b = side(b_col, "B", 1)
methods = list(embed.METHODS) if embed.model_available() else ["tfidf", "exact"]
method = st.radio("Group answers by", methods, format_func=embed.METHODS.get, horizontal=True,
                  key="cmp_method", persist_state="session")
threshold = st.slider("Similarity threshold", 0.30, 0.99, spread.DEFAULT_THRESHOLD, 0.01,
                      key="cmp_threshold", persist_state="session")

result = spread.compare_runs(store, side_a, side_b, method=method, threshold=threshold)
if not result["n_a"] or not result["n_b"]:
    st.warning("One side has no answers.")
    st.stop()

a_col, b_col, shift_col = st.columns(3)
a_col.metric("Consistency A", f"{result['consistency_a']:.0%}",
             help=f"95% interval {result['consistency_a_ci'][0]:.0%}–{result['consistency_a_ci'][1]:.0%}")
b_col.metric("Consistency B", f"{result['consistency_b']:.0%}",
             help=f"95% interval {result['consistency_b_ci'][0]:.0%}–{result['consistency_b_ci'][1]:.0%}")
low, high = result["consistency_shift_ci"]
shift_col.metric("Shift (A − B)", f"{result['consistency_shift']:+.0%}")
if low is None:
    shift_col.caption("One input in common: no interval over inputs.")
else:
    shift_col.caption(f"95% interval {low:+.0%} to {high:+.0%}: "
                      + ("a real shift" if result["shift_is_significant"] else "within sampling noise"))
paired = result.get("paired_inputs", 0)
st.caption(f"{result['n_a']} answers in A · {result['n_b']} in B · {paired} input(s) answered by both")
if paired > 1:
    changed_low, changed_high = result["top_meaning_changed_ci"]
    st.metric("Inputs whose top meaning differs", f"{result['top_meaning_changed']} of {paired}",
              help=f"95% interval {changed_low:.0%}–{changed_high:.0%} of inputs")
    st.subheader("Per input")
    per_input = pd.DataFrame(result["per_input"]).sort_values(
        ["same_top_meaning", "shift"], key=lambda c: c if c.name == "same_top_meaning" else -c.abs())
    st.dataframe(pd.DataFrame({
        "input": per_input["input_name"], "answers A": per_input["n_a"], "answers B": per_input["n_b"],
        "top meaning share A": per_input["consistency_a"].map(tables.percent),
        "top meaning share B": per_input["consistency_b"].map(tables.percent),
        "shift (A − B, points)": (100 * per_input["shift"]).map(lambda x: f"{x:+.0f}"),
        "same top meaning": per_input["same_top_meaning"].map({True: "yes", False: "no"}),
        "top answer A": per_input["top_a"], "top answer B": per_input["top_b"]}),
        hide_index=True, width="stretch")

for title, key in (("Meanings both sides gave", "shared"), ("Only in A", "only_a"), ("Only in B", "only_b")):
    st.subheader(f"{title} ({len(result[key])})")
    if result[key]:
        st.dataframe(pd.DataFrame([{"input": row["input_name"], "meaning (representative answer)": row["representative"],
                                    "share of A": tables.percent(row["share_a"]),
                                    "share of B": tables.percent(row["share_b"])} for row in result[key]]),
                     hide_index=True, width="stretch")

st.subheader("Top answer of each side, word by word" + (" (the input that differs most)" if paired > 1 else ""))
left, right = st.columns(2)
left.caption("A")
left.text(result["representative_a"])
right.caption("B")
right.text(result["representative_b"])
for column, side_name in ((left, "a"), (right, "b")):
    if result.get(f"representative_{side_name}_id") is not None:
        with column.expander("Prompt as sent"):
            conversation_view.draw(conversation.answered_with(store, result[f"representative_{side_name}_id"]))
# A diff as plain text: removed words on "-" lines, added on "+" lines. Never markup.
st.code("\n".join(f"{op} {words}" for op, words in result["diff"]), language="diff")
st.caption(display.inert(f"Clusters by {result['method']} at {result['threshold']}."))
