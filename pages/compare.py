"""Compare: cells of one run, or two runs of a prompt (before and after a change), side by side."""

import streamlit as st

from core import store

from core.analyse import embed, spread

st.title("Compare")
st.caption("Which meanings two sets of answers share, which are unique to one side, and whether "
           "consistency moved by more than sampling noise.")

with store.connect() as db:
    runs = store.list_runs(db)
if not runs:
    st.info("No runs yet. Start one in the Playground.")
    st.stop()
names = {r["id"]: f"{r['id']} · {r['name']} (v{r['prompt_version']})" for r in runs}


def side(column, label: str, default_index: int):
    with column:
        st.subheader(label)
        run_id = st.selectbox("Run", list(names), index=min(default_index, len(names) - 1),
                              format_func=names.get, key=f"run_{label}")
        run = next(r for r in runs if r["id"] == run_id)
        cells = [(m, t) for m in run["models"] for t in run["temperatures"]]
        chosen = st.multiselect("Cells (none = the whole run)", cells, key=f"cells_{label}",
                                default=cells[:1] if label == "A" else cells[1:2] or cells[:1],
                                format_func=lambda c: f"{c[0]} @ T={c[1]:g}")
        return run_id, chosen


a_col, b_col = st.columns(2)
side_a = side(a_col, "A", 0)
side_b = side(b_col, "B", 0)
methods = list(embed.METHODS) if embed.model_available() else ["tfidf", "exact"]
method = st.radio("Group answers by", methods, format_func=embed.METHODS.get, horizontal=True, key="cmp_method")
threshold = st.slider("Similarity threshold", 0.30, 0.99, spread.DEFAULT_THRESHOLD, 0.01, key="cmp_threshold")

result = spread.compare_runs(side_a, side_b, method=method, threshold=threshold)
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
shift_col.caption(f"95% interval {low:+.0%} to {high:+.0%}: "
                  + ("a real shift" if result["shift_is_significant"] else "within sampling noise"))
st.caption(f"{result['n_a']} answers in A · {result['n_b']} in B")

for title, key in (("Meanings both sides gave", "shared"), ("Only in A", "only_a"), ("Only in B", "only_b")):
    st.subheader(f"{title} ({len(result[key])})")
    if result[key]:
        st.dataframe(result[key], hide_index=True, width="stretch",
                     column_config={"share_a": st.column_config.NumberColumn(format="percent"),
                                    "share_b": st.column_config.NumberColumn(format="percent")})

st.subheader("Top answer of each side, word by word")
left, right = st.columns(2)
left.caption("A")
left.text(result["representative_a"])
right.caption("B")
right.text(result["representative_b"])
# A diff as plain text: removed words on "-" lines, added on "+" lines. Never markup.
st.code("\n".join(f"{op} {words}" for op, words in result["diff"]), language="diff")
