"""Golden sets: named, versioned collections of reviewed examples.

An item holds the input (system and user messages, template variables), a reference
answer (a reviewer's correction, else the chosen answer), the accepted answers (texts
reviewers passed) and the rejected ones (texts they failed), assertions, tags, where
it came from and who added it. Every change (add, edit, remove, restore, import) makes
a new version of the set and is logged in `golden_changes`. Removal is soft.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field

from core import store
from core.run import shapes

from core.review import labels
from core.config import SpreadError, check_text

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

    def as_row(self) -> dict:
        row = asdict(self)
        for name in JSON_FIELDS:
            row[name] = json.dumps(row[name], ensure_ascii=False)
        for name in SHAPE_FIELDS:
            row[name] = None if row[name] is None else json.dumps(row[name], ensure_ascii=False)
        return row


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise SpreadError("the golden set needs a name")
    check_text(name, "the golden set name")
    if len(name) > 100 or any(c in name for c in "\n\r\t\x00"):
        raise SpreadError("a golden set name is one line of at most 100 characters")
    return name


def create_set(name: str, *, description: str = "", created_by: str = "", db_path=None) -> int:
    name = _check_name(name)
    with store.connect(db_path) as db:
        with store.write(db):
            if db.execute("select 1 from golden_sets where name = ?", [name]).fetchone():
                raise SpreadError(f"a golden set named {name!r} already exists")
            return db["golden_sets"].insert({"name": name, "description": description, "version": 0,
                                             "created_at": store.now_iso(), "created_by": created_by}).last_pk


def get_set(name: str, *, db_path=None) -> dict:
    check_text(name or "", "the golden set name")
    with store.connect(db_path) as db:
        rows = list(db.query("select * from golden_sets where name = ?", [name]))
    if not rows:
        raise SpreadError(f"no golden set named {name!r}: create it with `spread golden create {name}`")
    return rows[0]


def list_sets(*, db_path=None) -> list[dict]:
    with store.connect(db_path) as db:
        return list(db.query(
            "select golden_sets.*, count(golden_items.id) filter (where golden_items.deleted_at is null) as items "
            "from golden_sets left join golden_items on golden_items.set_id = golden_sets.id "
            "group by golden_sets.id order by golden_sets.name"))


def _bump(db, set_id: int, action: str, item_key: str | None, who: str) -> int:
    db.execute("update golden_sets set version = version + 1 where id = ?", [set_id])
    (version,) = db.execute("select version from golden_sets where id = ?", [set_id]).fetchone()
    db["golden_changes"].insert({"set_id": set_id, "version": version, "action": action, "item_key": item_key,
                                 "changed_by": who, "changed_at": store.now_iso()})
    return version


def add_items(name: str, items: list[Item], *, who: str = "", db_path=None, action: str = "add",
              version: int | None = None) -> int:
    """Add items in one transaction (one new version); returns the set's new version.

    `version` (used by import into a new set) sets the version outright, so that an
    export re-imported elsewhere names the same version.
    """
    set_id = get_set(name, db_path=db_path)["id"]
    now = store.now_iso()
    with store.connect(db_path) as db:
        with store.write(db):
            for item in items:
                if not item.prompt or not item.prompt.strip():
                    raise SpreadError("a golden item needs an input prompt")
                if db.execute("select 1 from golden_items where set_id = ? and item_key = ?",
                              [set_id, item.item_key]).fetchone():
                    raise SpreadError(f"item {item.item_key} is already in {name!r}")
                row = item.as_row() | {"set_id": set_id}
                row["created_at"] = row["created_at"] or now
                row["updated_at"] = row["updated_at"] or now
                db["golden_items"].insert(row)
            new_version = _bump(db, set_id, action, items[0].item_key if len(items) == 1 else None, who)
            if version is not None:
                db.execute("update golden_sets set version = ? where id = ?", [version, set_id])
                new_version = version
    return new_version


def item_from_response(response_id: int, *, who: str, db_path=None) -> Item:
    """A golden item from a labelled answer: the input it answered (the prompt as sent, the
    variables, the template and its version), the reference (the label's correction, else
    this answer), and the answers to the same input reviewers passed and failed."""
    with store.connect(db_path) as db:
        rows = list(db.query("select * from responses where id = ?", [response_id]))
        if not rows:
            raise SpreadError(f"no answer with id {response_id}")
        response = rows[0]
        if response["error_type"]:
            raise SpreadError(f"answer {response_id} is an error row, not an answer")
        run_id, variant, input_idx = response["run_id"], response["variant"], response["input"]
        system, prompt = store.rendered_prompts(db, run_id)[(variant, input_idx)]
        source = next(v for v in store.run_variants(db, run_id) if v["variant"] == variant)
        values = next(i["vars"] for i in store.run_inputs(db, run_id) if i["input"] == input_idx)
        texts = {r["id"]: shapes.readable(r["text"], shapes.tool_calls_of(r["tool_calls"])) for r in db.query(
            "select id, text, tool_calls from responses where run_id = ? and input = ? and error_type is null",
            [run_id, input_idx])}
        sent = store.sent_messages(db, run_id).get((variant, input_idx))
    given = [row for row in labels.labels_for_run(run_id, db_path=db_path) if row["response_id"] in texts]
    verdicts = labels.majority(given)
    own = [row for row in given if row["response_id"] == response_id]
    correction = next((row["correction"] for row in own if row["correction"]), None)
    tags = sorted({tag for row in own for tag in row["tags"]})

    def distinct(verdict):
        out = []
        for rid, v in sorted(verdicts.items()):
            if v == verdict and texts.get(rid) not in out and texts.get(rid) is not None:
                out.append(texts[rid])
        return out[:MAX_EXAMPLES]

    templated = bool(values)
    shape = {k: source[k] for k in ("tools", "tool_choice", "response_format") if k in source} or None
    calls = shapes.tool_calls_of(response["tool_calls"]) or None
    return Item(prompt=prompt, system=system, vars=values, reference=correction or texts[response_id],
                accepted=distinct("pass"), rejected=distinct("fail"), tags=tags, source_run_id=run_id,
                source_response_id=response_id, added_by=who,
                template=source["prompt"] if templated else None,
                system_template=(source["system"] or "") if templated else None,
                prompt_name=source["name"], prompt_version=source["version"],
                # A conversation or a structured answer keeps what was sent and the calls made.
                messages=sent if "messages" in source else None, shape=shape,
                tool_calls=calls if not correction else None)


def add_responses(name: str, response_ids: list[int], *, who: str = "", db_path=None) -> int:
    if not response_ids:
        raise SpreadError("no answer chosen to add")
    get_set(name, db_path=db_path)  # an unknown set is the first thing to say
    items = [item_from_response(rid, who=who, db_path=db_path) for rid in response_ids]
    return add_items(name, items, who=who, db_path=db_path)


def items(name: str, *, include_removed: bool = False, db_path=None) -> list[dict]:
    set_id = get_set(name, db_path=db_path)["id"]
    sql = "select * from golden_items where set_id = ?" + ("" if include_removed else " and deleted_at is null")
    with store.connect(db_path) as db:
        rows = list(db.query(sql + " order by id", [set_id]))
    for row in rows:
        for column in JSON_FIELDS:
            row[column] = json.loads(row[column]) if row[column] else ({} if column == "vars" else [])
        for column in SHAPE_FIELDS:
            row[column] = json.loads(row[column]) if row.get(column) else None
    return rows


def _change_item(name: str, item_key: str, changes: dict, action: str, who: str, db_path=None) -> int:
    set_id = get_set(name, db_path=db_path)["id"]
    with store.connect(db_path) as db:
        with store.write(db):
            found = db.execute("select id from golden_items where set_id = ? and item_key = ?",
                               [set_id, item_key]).fetchone()
            if not found:
                raise SpreadError(f"no item {item_key} in {name!r}")
            db["golden_items"].update(found[0], changes | {"updated_at": store.now_iso()})
            return _bump(db, set_id, action, item_key, who)


def edit_item(name: str, item_key: str, *, reference: str | None = None, tags: list[str] | None = None,
              who: str = "", db_path=None) -> int:
    changes = {}
    if reference is not None:
        changes["reference"] = reference
    if tags is not None:
        changes["tags"] = json.dumps([t.strip() for t in tags if t.strip()], ensure_ascii=False)
    if not changes:
        raise SpreadError("nothing to change")
    return _change_item(name, item_key, changes, "edit", who, db_path)


def remove_item(name: str, item_key: str, *, who: str = "", db_path=None) -> int:
    return _change_item(name, item_key, {"deleted_at": store.now_iso()}, "remove", who, db_path)


def restore_item(name: str, item_key: str, *, who: str = "", db_path=None) -> int:
    return _change_item(name, item_key, {"deleted_at": None}, "restore", who, db_path)


def changes(name: str, *, db_path=None) -> list[dict]:
    set_id = get_set(name, db_path=db_path)["id"]
    with store.connect(db_path) as db:
        return list(db.query("select * from golden_changes where set_id = ? order by id", [set_id]))
