"""Golden sets: browse, filter, edit, remove (and undo), export and import."""

import pandas as pd
import streamlit as st

from core import display
from core.config import SpreadError
from core.formats import golden_files
from core.prompts import conversation
from core.review import golden
from pages.parts import conversation_view
from pages.parts.store import app_store

store = app_store()

st.title("Golden sets")
who = st.session_state.get("who", "")

sets = golden.list_sets(store)
with st.expander("New golden set", expanded=not sets):
    with st.form("new_set", clear_on_submit=True):
        name = st.text_input("Name", key="new_set_name")
        description = st.text_input("Description", key="new_set_description")
        if st.form_submit_button("Create"):
            try:
                golden.create_set(store, name, description=description, created_by=who)
                st.rerun()
            except SpreadError as e:
                st.error(display.inert(str(e)))
if not sets:
    st.info("No golden sets yet. Create one here, or add answers from the Review page.")
    st.stop()

labels = {s["name"]: f"{s['name']} · v{s['version']} · {s['items']} items" for s in sets}
name = st.selectbox("Golden set", list(labels), format_func=labels.get, key="golden_set", persist_state="session")
current = next(s for s in sets if s["name"] == name)
st.caption(f"Version {current['version']} · created by {display.inert(current['created_by']) or 'unknown'} · "
           f"{display.inert(current['description'])}")

with st.expander("Contradictions: a text both accepted and rejected"):
    st.caption("An item made before Spread kept items consistent can accept and reject one text (case, spacing "
               "and punctuation aside); exports already leave such texts out of the accepted side. The fix keeps "
               "what the latest label on the text says, else rejects it, in one new version.")
    if st.button("Check this set", key="golden_check"):
        st.session_state["golden_checked"] = name
    if st.session_state.get("golden_checked") == name:
        found = golden.check(store, name)["items"]
        if not found:
            st.success("No item holds a text both accepted and rejected.")
        for entry in found:
            texts = ", ".join(f"{c['text']!r} ({c['as']})" for c in entry["contradictions"])
            st.text(f"{entry['item_key'][:8]} · {' '.join(entry['prompt'].split())[:60]}: also rejected: {texts}\n"
                    + "\n".join(f"   fix: {note}" for note in entry["resolution"]))
        if found and st.button(f"Fix {len(found)} item(s)", key="golden_fix", type="primary"):
            result = golden.check(store, name, fix=True, who=who)
            st.session_state.pop("golden_checked", None)
            st.success(f"{len(result['items'])} item(s) fixed: version {result['version']}")

left, right = st.columns([3, 1])
search = left.text_input("Filter by text", key="golden_search", persist_state="session",
                         placeholder="words in the prompt or reference")
show_removed = right.toggle("Show removed items", key="golden_removed", persist_state="session")
items = golden.items(store, name, include_removed=show_removed)
all_tags = sorted({t for item in items for t in item["tags"]})
tag_filter = st.multiselect("Tags", all_tags, key="golden_tags", persist_state="session")
shown = [i for i in items
         if (not search or search.lower() in f"{i['prompt']} {i['reference'] or ''}".lower())
         and (not tag_filter or set(tag_filter) & set(i["tags"]))]

st.dataframe(pd.DataFrame([{
    "item": i["item_key"][:8], "prompt": i["prompt"], "reference": i["reference"],
    "accepted": len(i["accepted"]), "rejected": len(i["rejected"]), "tags": ", ".join(i["tags"]),
    "added by": i["added_by"], "removed": bool(i["deleted_at"]),
} for i in shown]), hide_index=True, width="stretch")

for item in shown:
    title = f"{item['item_key'][:8]} · {display.inert(item['prompt'], 80)}"
    with st.expander(title + (" (removed)" if item["deleted_at"] else "")):
        st.caption("Prompt as sent")
        conversation_view.draw(conversation.as_sent(item["messages"], item["system"], item["prompt"]))
        st.caption(f"Accepted answers ({len(item['accepted'])})")
        st.text("\n".join(f"✓ {a}" for a in item["accepted"]) or "—")
        st.caption(f"Rejected answers ({len(item['rejected'])})")
        st.text("\n".join(f"✗ {r}" for r in item["rejected"]) or "—")
        with st.form(f"edit_{item['item_key']}"):
            reference = st.text_area("Reference answer", item["reference"] or "", key=f"ref_{item['item_key']}")
            tags = st.multiselect("Tags", sorted(set(all_tags) | set(item["tags"])), default=item["tags"],
                                  accept_new_options=True, key=f"tags_{item['item_key']}")
            if st.form_submit_button("Save"):
                golden.edit_item(store, name, item["item_key"], reference=reference, tags=tags, who=who)
                st.rerun()
        if item["deleted_at"]:
            if st.button("Restore", key=f"restore_{item['item_key']}"):
                golden.restore_item(store, name, item["item_key"], who=who)
                st.rerun()
        elif st.button("Remove", key=f"remove_{item['item_key']}"):
            golden.remove_item(store, name, item["item_key"], who=who)
            st.rerun()

st.subheader("Export")
mime = {"jsonl": "application/jsonl", "csv": "text/csv", "openai": "application/jsonl",
        "promptfoo": "application/yaml", "parquet": "application/octet-stream"}
suffix = {"jsonl": "jsonl", "csv": "csv", "openai": "openai.jsonl", "promptfoo": "promptfoo.yaml",
          "parquet": "parquet"}
columns = st.columns(len(golden_files.FORMATS))
for column, fmt in zip(columns, golden_files.FORMATS):
    # A callable: the file is built when the button is clicked, not on every rerun.
    column.download_button(fmt, lambda fmt=fmt: golden_files.export(store, name, fmt), file_name=f"{name}.v{current['version']}.{suffix[fmt]}",
                           mime=mime[fmt], key=f"export_{fmt}")

st.subheader("Import")
upload = st.file_uploader("JSONL or CSV", type=["jsonl", "csv"], key="golden_upload")
skip_bad = st.checkbox("Skip bad lines (otherwise a file with any bad line imports nothing)", key="golden_skip")
if upload is not None and st.button("Import into this set", key="golden_import"):
    fmt = "csv" if upload.name.lower().endswith(".csv") else "jsonl"
    try:
        result = golden_files.import_bytes(store, name, upload.getvalue(), fmt, skip_bad=skip_bad, who=who)
        st.success(f"{result['imported']} items imported (version {result['version']}), "
                   f"{result['skipped']} bad lines skipped")
        for error in result["errors"][:20]:
            st.caption(display.inert(error))
    except SpreadError as e:
        st.error(display.inert(str(e)))

with st.expander("History"):
    st.dataframe(pd.DataFrame(golden.changes(store, name)), hide_index=True)
