"""Golden sets: named, versioned collections of reviewed examples.

An item holds the input (system and user messages, template variables), a reference
answer (a reviewer's correction, else the chosen answer), the accepted answers (texts
reviewers passed) and the rejected ones (texts they failed), assertions, tags, where
it came from and who added it. Every change (add, edit, remove, restore, import, fix)
makes a new version of the set and is logged in `golden_changes`. Removal is soft.

An item never contradicts itself: one text (compared by `normalised`) is either
accepted (the reference or an accepted answer) or rejected, never both. A failed
answer is never a reference: it needs a correction, or it joins an existing item's
rejected answers. When labels disagree on one text, the later label wins, and the
change's `detail` says what moved.
"""

from __future__ import annotations

import json
import unicodedata
import uuid
from dataclasses import asdict, dataclass, field

from core.config import SpreadError, check_text
from core.prompts import inputs, shapes
from core.review import labels
from core.store import Store, hold, now_iso, runs, write
from core.store import golden as golden_rows

MAX_EXAMPLES = 50  # accepted / rejected texts kept per item
JSON_FIELDS = ("vars", "accepted", "rejected", "assertions", "tags")
# A conversation's messages, the variant's tools / tool choice / response format, and the
# tool calls expected: JSON, NULL for a text item.
SHAPE_FIELDS = ("messages", "shape", "tool_calls")


@dataclass
class Item:
    prompt: str
    system: str = ""
    vars: dict = field(default_factory=dict)
    reference: str | None = None
    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    assertions: list[dict] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    source_run_id: int | None = None
    source_response_id: int | None = None
    # The template the input was rendered from, and its prompt name and version (templated runs).
    template: str | None = None
    system_template: str | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    messages: list[dict] | None = None
    shape: dict | None = None
    tool_calls: list[dict] | None = None
    added_by: str = ""
    item_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: str | None = None
    updated_at: str | None = None
    notes: list[str] = field(default_factory=list, repr=False)  # how its texts were reconciled; not stored

    def as_row(self) -> dict:
        row = asdict(self)
        del row["notes"]
        for name in JSON_FIELDS:
            row[name] = json.dumps(row[name], ensure_ascii=False)
        for name in SHAPE_FIELDS:
            row[name] = None if row[name] is None else json.dumps(row[name], ensure_ascii=False)
        return row


def normalised(text: str | None) -> str:
    """One text as a golden item compares it: case, spacing and punctuation set aside,
    so "Lima.", " lima" and "LIMA!" are one text."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    return " ".join("".join(" " if unicodedata.category(c)[0] == "P" else c for c in folded).split())


def contradictions(item) -> list[dict]:
    """The texts an item both accepts (as its reference or an accepted answer) and rejects."""
    get = item.get if isinstance(item, dict) else lambda key: getattr(item, key)
    rejected = {normalised(text) for text in get("rejected")}
    found = [{"text": get("reference"), "as": "reference"}] if get("reference") and \
        normalised(get("reference")) in rejected else []
    return found + [{"text": text, "as": "accepted"} for text in get("accepted") if normalised(text) in rejected]


def resolve(accepted: list[str], rejected: list[str], reference: str | None,
            verdicts: dict[str, str] | None = None) -> tuple[list[str], list[str], str | None, list[str]]:
    """(accepted, rejected, reference, what changed) with no text on both sides.

    `verdicts` (normalised text -> "pass"/"fail", from the latest label) decides each
    contradiction; a text no label decides stays rejected: an item that passes a wrong
    answer costs more than one that lacks an example. Repeats of one text are dropped."""
    verdicts = verdicts or {}
    accepted_keys = {normalised(t) for t in accepted} | ({normalised(reference)} if reference else set())
    rejected_keys = {normalised(t) for t in rejected}
    both = accepted_keys & rejected_keys
    notes = []
    for key in sorted(both):
        passed = verdicts.get(key) == "pass"
        text = next(t for t in [*rejected, *accepted, reference or ""] if normalised(t) == key)
        notes.append(f"{text!r} was both accepted and rejected: kept as "
                     + ("accepted (the later label passed it)" if passed else
                        "rejected (the later label failed it)" if key in verdicts else "rejected (no label decides)"))
    keep_accepted = {key for key in both if verdicts.get(key) == "pass"}
    if reference and normalised(reference) in both - keep_accepted:
        notes.append(f"the reference {reference!r} was removed: set a correct answer as the reference")
        reference = None
    return (_distinct(t for t in accepted if normalised(t) not in both - keep_accepted),
            _distinct(t for t in rejected if normalised(t) not in keep_accepted), reference, notes)


def _distinct(texts) -> list[str]:
    out, seen = [], set()
    for text in texts:
        if normalised(text) not in seen:
            seen.add(normalised(text))
            out.append(text)
    return out


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise SpreadError("the golden set needs a name")
    check_text(name, "the golden set name")
    if len(name) > 100 or any(c in name for c in "\n\r\t\x00"):
        raise SpreadError("a golden set name is one line of at most 100 characters")
    return name


def create_set(store: Store, name: str, *, description: str = "", created_by: str = "") -> int:
    name = _check_name(name)
    with store.connection() as db:
        with write(db):
            hold(db, f"golden set {name}")
            if golden_rows.set_named(db, name):
                raise SpreadError(f"a golden set named {name!r} already exists")
            return golden_rows.insert_set(db, name, description, created_by)


def get_set(store: Store, name: str) -> dict:
    check_text(name or "", "the golden set name")
    with store.connection() as db:
        found = golden_rows.set_named(db, name)
    if not found:
        raise SpreadError(f"no golden set named {name!r}: create it with `spread golden create {name}`")
    return found


def list_sets(store: Store) -> list[dict]:
    with store.connection() as db:
        return golden_rows.sets_with_counts(db)


def add_items(store: Store, name: str, items: list[Item], *, who: str = "", action: str = "add",
              version: int | None = None) -> int:
    """Add items in one transaction (one new version); returns the set's new version.

    `version` (used by import into a new set) sets the version outright, so that an
    export re-imported elsewhere names the same version. An item that holds one text both
    accepted and rejected goes in resolved (see `resolve`), and the change says so.
    """
    set_id = get_set(store, name)["id"]
    now = now_iso()
    detail = []
    with store.connection() as db:
        with write(db):
            hold(db, f"golden set {name}")
            for item in items:
                if not item.prompt or not item.prompt.strip():
                    raise SpreadError("a golden item needs an input prompt")
                item.accepted, item.rejected, item.reference, notes = resolve(item.accepted, item.rejected,
                                                                              item.reference)
                detail += [f"{item.item_key[:8]}: {note}" for note in item.notes + notes]
                if golden_rows.item(db, set_id, item.item_key):
                    raise SpreadError(f"item {item.item_key} is already in {name!r}")
                row = item.as_row() | {"set_id": set_id}
                row["created_at"] = row["created_at"] or now
                row["updated_at"] = row["updated_at"] or now
                golden_rows.insert_item(db, row)
            new_version = golden_rows.bump(db, set_id, action, items[0].item_key if len(items) == 1 else None, who, detail)
            if version is not None:
                golden_rows.set_version(db, set_id, version)
                new_version = version
    return new_version


def _input_of(db, response_id: int) -> dict:
    """An answer, checked, with the texts of every answer to the same input of its run."""
    response = golden_rows.answer(db, response_id)
    if response is None:
        raise SpreadError(f"no answer with id {response_id}")
    if response["error_type"]:
        raise SpreadError(f"answer {response_id} is an error row, not an answer")
    # An answer's text, then its tool calls as lines: what a reviewer saw.
    response["texts"] = {r["id"]: shapes.readable(r["text"], shapes.tool_calls_of(r["tool_calls"]))
                         for r in golden_rows.answers_to_input(db, response["run_id"], response["input"])}
    return response


def latest_verdicts(given: list[dict], texts: dict[int, str]) -> tuple[dict[str, str], list[str]]:
    """(normalised text -> the verdict of the latest pass or fail label on any answer with
    that text, by any reviewer; the texts on which labels disagreed, said in words)."""
    latest: dict[str, tuple] = {}
    seen: dict[str, set] = {}
    for row in given:
        if row["verdict"] not in ("pass", "fail") or row["response_id"] not in texts:
            continue
        key = normalised(texts[row["response_id"]])
        stamp = (row["updated_at"] or row["created_at"] or "", row["id"])
        seen.setdefault(key, set()).add(row["verdict"])
        if key not in latest or stamp > latest[key][0]:
            latest[key] = (stamp, row["verdict"], texts[row["response_id"]], row["reviewer"])
    notes = [f"{text!r} was labelled both pass and fail: the later label ({verdict} by {who}) wins"
             for key, (_, verdict, text, who) in latest.items() if len(seen[key]) > 1]
    return {key: value[1] for key, value in latest.items()}, notes


def answer_verdict(store: Store, response_id: int) -> str | None:
    """"pass" or "fail": the latest label on this answer's text (among the answers to the same
    input); None when no one passed or failed it."""
    with store.connection() as db:
        response = _input_of(db, response_id)
    given = labels.labels_for(store, list(response["texts"]))
    return latest_verdicts(given, response["texts"])[0].get(normalised(response["texts"][response_id]))


def labelled_correction(store: Store, response_id: int) -> bool:
    """Whether a label on this answer already gives its correction (a text or the calls it
    should have made): a failed answer can then become an item without a typed reference."""
    return any(row["correction"] or row["correction_calls"] for row in labels.labels_for(store, [response_id])
               if row["response_id"] == response_id)


def item_from_response(store: Store, response_id: int, *, who: str, correction: str | None = None,
                       correction_calls: list[dict] | None = None) -> Item:
    """A golden item from a labelled answer: the input it answered (the prompt as sent, the
    variables, the template and its version), the reference (the correction given here or
    in a label, else this answer), and the answers to the same input reviewers passed and
    failed (the later label wins where they disagree on one text).

    The calls it expects: the expected calls given here or in a label (a corrected
    tool-call answer), else this answer's own calls unless a text correction replaced it;
    the reference then reads them as text when no text correction is given.

    A failed answer is never the reference: without a correction it is refused, with a
    hint to add it to an existing item's rejected answers instead."""
    with store.connection() as db:
        response = _input_of(db, response_id)
        run_id, variant, input_idx = response["run_id"], response["variant"], response["input"]
        system, prompt = runs.rendered_prompts(db, run_id)[(variant, input_idx)]
        source = next(v for v in runs.run_variants(db, run_id) if v["variant"] == variant)
        values = next(i["vars"] for i in runs.run_inputs(db, run_id) if i["input"] == input_idx)
        sent = runs.sent_messages(db, run_id).get((variant, input_idx))
    texts = response["texts"]
    given = labels.labels_for(store, list(texts))
    verdicts, notes = latest_verdicts(given, texts)
    own = [row for row in given if row["response_id"] == response_id]
    if correction is not None:
        check_text(correction, "the correction")
    correction = (correction or "").strip() or next((row["correction"] for row in own if row["correction"]), None)
    if correction_calls:
        correction_calls = shapes.checked_calls(correction_calls, source.get("tools"))
    correction_calls = correction_calls or next((row["correction_calls"] for row in own if row["correction_calls"]),
                                                None)
    if verdicts.get(normalised(texts[response_id])) == "fail" and not correction and not correction_calls:
        raise SpreadError(f"answer {response_id} was failed, and a failed answer is never a reference: give the "
                          "correct answer as the reference (or the calls it should make), or add it to an existing "
                          "item's rejected answers")
    tags = sorted({tag for row in own for tag in row["tags"]})

    def distinct(verdict):
        return _distinct(text for rid, text in sorted(texts.items())
                         if verdicts.get(normalised(text)) == verdict)[:MAX_EXAMPLES]

    reference = correction or (shapes.readable("", correction_calls) if correction_calls else texts[response_id])
    # The reference is what the reviewer says is right: it outranks an older failing label.
    accepted, rejected, reference, resolved = resolve(distinct("pass"), distinct("fail"), reference,
                                                      verdicts | {normalised(reference): "pass"})
    templated = bool(values)
    shape = {k: source[k] for k in ("tools", "tool_choice", "response_format") if k in source} or None
    calls = shapes.tool_calls_of(response["tool_calls"]) or None
    return Item(prompt=prompt, system=system, vars=values, reference=reference,
                accepted=accepted, rejected=rejected, tags=tags, source_run_id=run_id,
                source_response_id=response_id, added_by=who,
                template=source["prompt"] if templated else None,
                system_template=(source["system"] or "") if templated else None,
                prompt_name=source["name"], prompt_version=source["version"], notes=notes + resolved,
                # A conversation or a structured answer keeps what was sent and the calls made.
                messages=sent if "messages" in source else None, shape=shape,
                tool_calls=correction_calls or (calls if not correction else None))


def add_responses(store: Store, name: str, response_ids: list[int], *, who: str = "",
                  correction: str | None = None, correction_calls: list[dict] | None = None) -> int:
    """New items from answers (one new version); `correction`, the right answer, is the
    reference of each, `correction_calls` the calls each should make (a failed answer
    needs one of the two)."""
    if not response_ids:
        raise SpreadError("no answer chosen to add")
    get_set(store, name)  # an unknown set is the first thing to say
    items = [item_from_response(store, rid, who=who, correction=correction, correction_calls=correction_calls) for rid in response_ids]
    return add_items(store, name, items, who=who)


def add_rejected(store: Store, name: str, item_key: str, response_ids: list[int], *, who: str = "") -> int:
    """Add failed answers to an existing item's rejected answers (one new version). A text
    the item accepted moves to rejected (the later label wins); its reference cannot be
    rejected: change the reference first."""
    if not response_ids:
        raise SpreadError("no answer chosen to add")
    with store.connection() as db:
        texts = [_input_of(db, rid)["text"] for rid in response_ids]

    def change(row):
        if row["reference"] and any(normalised(t) == normalised(row["reference"]) for t in texts):
            raise SpreadError(f"{row['reference']!r} is this item's reference: change the reference before "
                              "rejecting it")
        keys = {normalised(t) for t in texts}
        moved = [t for t in row["accepted"] if normalised(t) in keys]
        notes = [f"{t!r} moved from accepted to rejected (a later label failed it)" for t in moved]
        rejected = _distinct([*row["rejected"], *texts])[-MAX_EXAMPLES:]
        return {"accepted": [t for t in row["accepted"] if normalised(t) not in keys], "rejected": rejected}, notes

    return _change_item(store, name, item_key, change, "reject", who)


def matching_items(store: Store, name: str, response_id: int) -> list[dict]:
    """The set's live items with the input this answer answered (the same prompt and system)."""
    with store.connection() as db:
        response = _input_of(db, response_id)
        system, prompt = runs.rendered_prompts(db, response["run_id"])[(response["variant"], response["input"])]
    return [row for row in items(store, name) if row["prompt"] == prompt and (row["system"] or "") == system]


def items(store: Store, name: str, *, include_removed: bool = False) -> list[dict]:
    set_id = get_set(store, name)["id"]
    with store.connection() as db:
        rows = golden_rows.items_of(db, set_id, include_removed)
    return [_decoded(row) for row in rows]


def _decoded(row: dict) -> dict:
    for column in JSON_FIELDS:
        row[column] = json.loads(row[column]) if row[column] else ({} if column == "vars" else [])
    for column in SHAPE_FIELDS:
        row[column] = json.loads(row[column]) if row.get(column) else None
    return row


def _change_item(store: Store, name: str, item_key: str, changes, action: str, who: str) -> int:
    """One change to one item (one new version). `changes` is a dict of columns, or a
    function of the current item (JSON fields decoded) returning (columns, notes)."""
    set_id = get_set(store, name)["id"]
    with store.connection() as db:
        with write(db):
            hold(db, f"golden set {name}")  # PostgreSQL: read the item after the last edit committed
            found = golden_rows.item(db, set_id, item_key)
            if not found:
                raise SpreadError(f"no item {item_key} in {name!r}")
            notes = []
            if callable(changes):
                changes, notes = changes(_decoded(found))
            changes = {k: json.dumps(v, ensure_ascii=False) if k in JSON_FIELDS else v for k, v in changes.items()}
            golden_rows.update_item(db, found["id"], changes)
            return golden_rows.bump(db, set_id, action, item_key, who, notes)


def edit_item(store: Store, name: str, item_key: str, *, reference: str | None = None,
              tags: list[str] | None = None, who: str = "") -> int:
    """Change an item's reference or tags. A new reference the item rejected leaves its
    rejected answers: the reviewer's later word wins."""
    if reference is None and tags is None:
        raise SpreadError("nothing to change")

    def change(row):
        columns, notes = {}, []
        if reference is not None:
            columns["reference"] = reference
            kept = [t for t in row["rejected"] if not reference or normalised(t) != normalised(reference)]
            if len(kept) < len(row["rejected"]):
                columns["rejected"] = kept
                notes.append(f"{reference!r} moved from rejected to the reference")
        if tags is not None:
            columns["tags"] = [t.strip() for t in tags if t.strip()]
        return columns, notes

    return _change_item(store, name, item_key, change, "edit", who)


def check(store: Store, name: str, *, fix: bool = False, who: str = "") -> dict:
    """Items that hold one text both accepted and rejected (made before Spread kept items
    consistent, or edited by hand), each with how it resolves: the latest label on that
    text in the item's source input, else rejected. With `fix`, every one is resolved in
    one new version. Returns {"set", "items": [{item_key, prompt, contradictions,
    resolution}], "fixed", "version"}."""
    set_id = get_set(store, name)["id"]
    found = []
    for row in items(store, name):
        if not contradictions(row):
            continue
        verdicts = _source_verdicts(store, row)
        accepted, rejected, reference, notes = resolve(row["accepted"], row["rejected"], row["reference"], verdicts)
        found.append({"item_key": row["item_key"], "prompt": row["prompt"], "contradictions": contradictions(row),
                      "resolution": notes,
                      "resolved": {"accepted": accepted, "rejected": rejected, "reference": reference}})
    version = get_set(store, name)["version"]
    if fix and found:
        with store.connection() as db:
            with write(db):
                for entry in found:
                    resolved = entry["resolved"]
                    golden_rows.set_texts(db, set_id, entry["item_key"], resolved["accepted"], resolved["rejected"],
                                          resolved["reference"])
                version = golden_rows.bump(db, set_id, "fix", found[0]["item_key"] if len(found) == 1 else None, who,
                                [f"{e['item_key'][:8]}: {note}" for e in found for note in e["resolution"]])
    for entry in found:
        del entry["resolved"]
    return {"set": name, "items": found, "fixed": bool(fix and found), "version": version}


def _source_verdicts(store: Store, row: dict) -> dict[str, str]:
    """The latest verdicts on the texts of an item's source input, if its answer is still there."""
    if row["source_response_id"] is None:
        return {}
    try:
        with store.connection() as db:
            texts = _input_of(db, row["source_response_id"])["texts"]
    except SpreadError:
        return {}
    return latest_verdicts(labels.labels_for(store, list(texts)), texts)[0]


def remove_item(store: Store, name: str, item_key: str, *, who: str = "") -> int:
    return _change_item(store, name, item_key, {"deleted_at": now_iso()}, "remove", who)


def restore_item(store: Store, name: str, item_key: str, *, who: str = "") -> int:
    return _change_item(store, name, item_key, {"deleted_at": None}, "restore", who)


def changes(store: Store, name: str) -> list[dict]:
    set_id = get_set(store, name)["id"]
    with store.connection() as db:
        return golden_rows.changes_of(db, set_id)


def as_inputs(store: Store, name: str) -> list[dict[str, str]]:
    """A golden set's items as inputs: each item's variables, plus its key and reference,
    so that checks can compare an answer with what the set expects."""
    rows = []
    for item in items(store, name):
        row = {k: inputs.as_text(v) for k, v in (item["vars"] or {}).items()}
        row.setdefault("prompt", item["prompt"])
        if item["reference"] is not None:
            row.setdefault("reference", item["reference"])
        if item.get("messages"):  # a conversation: placed by a history turn
            row.setdefault("messages", json.dumps(item["messages"], ensure_ascii=False))
        if item.get("tool_calls"):
            row.setdefault("expected_tool_calls", json.dumps(item["tool_calls"], ensure_ascii=False))
        row.setdefault("item_key", item["item_key"])
        rows.append(row)
    if not rows:
        raise SpreadError(f"the golden set {name!r} has no items", "inputs")
    return inputs.checked(rows, f"golden set {name!r}")
