"""Golden sets out and in.

Formats out: jsonl (native and lossless: one item per line), csv, openai (chat
fine-tuning JSONL, the reference as the assistant turn), promptfoo (test cases YAML,
assertions from the accepted and rejected answers; a conversation in `vars.messages`, the
tools and response format in the test's `options`) and parquet (loads with Hugging
Face `datasets`). Formats in: jsonl and csv, checked line by line; a file with a bad
line imports nothing unless the caller asks to skip bad lines.

Every export names the set and the version it came from, and no exported item holds
one text both accepted and rejected: an item stored that way before Spread kept items
consistent goes out resolved (see `golden.resolve`; `spread golden check --fix` fixes it
in the set).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from core.config import SpreadError
from core.review import golden
from core.store import Store
from core.store import golden as golden_rows

FORMATS = ("jsonl", "csv", "openai", "promptfoo", "parquet")
CSV_COLUMNS = ["set", "set_version", "item_key", "system", "prompt", "vars", "reference", "accepted", "rejected",
               "assertions", "tags", "source_run_id", "source_response_id", "added_by", "created_at", "updated_at",
               "template", "system_template", "prompt_name", "prompt_version"]
# promptfoo's embedding similarity: above this an answer counts as "the same" as an example.
SIMILAR_THRESHOLD = 0.8


def records(store: Store, name: str) -> list[dict]:
    """The set's live items as plain records, in a stable order."""
    version = golden.get_set(store, name)["version"]
    return _records(store, name, version)


def _records(store: Store, name: str, version: int) -> list[dict]:
    return [_record(name, version, row) for row in golden.items(store, name)]


def _record(name: str, version: int, row: dict) -> dict:
    accepted, rejected, reference, _ = golden.resolve(row["accepted"], row["rejected"], row["reference"])
    return {
        "set": name, "set_version": version, "item_key": row["item_key"],
        "input": _input(row),
        "reference": reference, "accepted": accepted, "rejected": rejected,
        "assertions": row["assertions"], "tags": row["tags"],
        **({"tool_calls": row["tool_calls"]} if row.get("tool_calls") else {}),
        "source": {"run_id": row["source_run_id"], "response_id": row["source_response_id"],
                   **{key: row[key] for key in ("prompt_name", "prompt_version") if row.get(key) is not None}},
        "added_by": row["added_by"], "created_at": row["created_at"], "updated_at": row["updated_at"],
    }


def _input(row: dict) -> dict:
    """The item's input: the prompt as sent, its variables, and the template when it had one."""
    out = {"system": row["system"] or "", "prompt": row["prompt"], "vars": row["vars"]}
    if row.get("template") is not None:
        out["template"], out["system_template"] = row["template"], row.get("system_template") or ""
    if row.get("messages"):  # a conversation, as sent
        out["messages"] = row["messages"]
    out.update(row.get("shape") or {})  # tools, tool_choice, response_format
    return out


def render(store: Store, name: str, fmt: str) -> tuple[bytes, int, int]:
    """(file contents, items, set version): one read of the set for all three."""
    if fmt not in FORMATS:
        raise SpreadError(f"unknown format {fmt!r}: choose one of {', '.join(FORMATS)}")
    version = golden.get_set(store, name)["version"]
    rows = _records(store, name, version)
    writer = {"jsonl": to_jsonl, "csv": to_csv, "openai": to_openai, "promptfoo": to_promptfoo,
              "parquet": to_parquet}[fmt]
    return writer(rows, name, version), len(rows), version


def export(store: Store, name: str, fmt: str) -> bytes:
    return render(store, name, fmt)[0]


def export_to(store: Store, name: str, fmt: str, out: str | Path) -> tuple[int, int]:
    """Write an export file whole (a temporary file renamed into place); returns (items, version)."""
    out = Path(out)
    data, count, version = render(store, name, fmt)
    if out.is_dir():
        raise SpreadError(f"{out} is a folder; give a file name")
    partial = out.with_name(out.name + ".partial")
    try:
        partial.write_bytes(data)
        partial.replace(out)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise SpreadError(f"cannot write {out}: {e.strerror or e}") from None
    return count, version


def to_jsonl(rows, name, version) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows).encode()


def to_csv(rows, name, version) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({
            "set": r["set"], "set_version": r["set_version"], "item_key": r["item_key"],
            "system": r["input"]["system"], "prompt": r["input"]["prompt"],
            "vars": json.dumps(r["input"]["vars"], ensure_ascii=False),
            "reference": r["reference"] or "",
            **{k: json.dumps(r[k], ensure_ascii=False) for k in ("accepted", "rejected", "assertions", "tags")},
            "source_run_id": r["source"]["run_id"] or "", "source_response_id": r["source"]["response_id"] or "",
            "added_by": r["added_by"], "created_at": r["created_at"], "updated_at": r["updated_at"],
            "template": r["input"].get("template", ""), "system_template": r["input"].get("system_template", ""),
            "prompt_name": r["source"].get("prompt_name", ""), "prompt_version": r["source"].get("prompt_version", ""),
        })
    return buffer.getvalue().encode()


def to_openai(rows, name, version) -> bytes:
    lines = []
    for r in rows:
        if not r["reference"] and not r.get("tool_calls"):
            continue  # a fine-tuning example needs the assistant turn
        messages = [{"role": "system", "content": r["input"]["system"]}] if r["input"]["system"] else []
        messages = r["input"].get("messages") or messages + [{"role": "user", "content": r["input"]["prompt"]}]
        example = {"messages": messages + [_assistant_turn(r)]}
        if r["input"].get("tools"):
            example["tools"] = r["input"]["tools"]
        lines.append(json.dumps(example, ensure_ascii=False) + "\n")
    return "".join(lines).encode()


def _assistant_turn(r: dict) -> dict:
    """The expected answer as an assistant message: its tool calls, else the reference text."""
    if not r.get("tool_calls"):
        return {"role": "assistant", "content": r["reference"]}
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": f"call_{k}", "type": "function", "function": {"name": c["name"], "arguments": json.dumps(
            c["arguments"], ensure_ascii=False) if not isinstance(c["arguments"], str) else c["arguments"]}}
        for k, c in enumerate(r["tool_calls"])]}


def _promptfoo_vars(r: dict) -> dict:
    """A test's vars: `prompt` and `system` as sent, the input's own variables, and for a
    conversation its whole `messages` as sent (few-shot turns included), promptfoo's chat
    convention: a prompt of `{{ messages | dump }}` sends them as they are."""
    out = {"prompt": r["input"]["prompt"], "system": r["input"]["system"], **r["input"]["vars"]}
    if r["input"].get("messages"):
        out["messages"] = r["input"]["messages"]
    return out


def _promptfoo_options(r: dict) -> dict:
    """A test's `options`: the tools, tool choice and response format the item was asked
    with. promptfoo merges a test's options over the prompt's config, which its OpenAI
    provider reads over its own, so these reach the provider for this test alone."""
    return {key: r["input"][key] for key in ("tools", "tool_choice", "response_format") if r["input"].get(key)}


def to_promptfoo(rows, name, version) -> bytes:
    import yaml

    tests = []
    for r in rows:
        asserts = list(r["assertions"])
        if r.get("tool_calls"):
            asserts += _expected_call_asserts(r["tool_calls"])
        elif r["accepted"] or r["reference"]:
            examples = r["accepted"] or [r["reference"]]
            asserts.append({"type": "similar", "value": examples, "threshold": SIMILAR_THRESHOLD})
        for rejected in r["rejected"] if not r.get("tool_calls") else ():
            asserts.append({"type": "not-similar", "value": rejected, "threshold": SIMILAR_THRESHOLD})
        tests.append({
            "description": f"{name} v{version} · {r['item_key'][:8]}",
            "vars": _promptfoo_vars(r),
            "assert": asserts,
            "metadata": {"golden_set": name, "set_version": version, "item_key": r["item_key"], "tags": r["tags"],
                         **({"expected_tool_calls": r["tool_calls"]} if r.get("tool_calls") else {})},
        })
        options = _promptfoo_options(r)
        if options:
            tests[-1]["options"] = options
    header = f"# promptfoo tests from Spread golden set {name!r}, version {version}\n"
    if any(r["input"].get("messages") for r in rows):
        header += "# a test whose vars hold `messages` is a conversation: the prompt '{{ messages | dump }}' sends it\n"
    return (header + yaml.safe_dump(tests, sort_keys=False, allow_unicode=True)).encode()


def _expected_call_asserts(calls: list[dict]) -> list[dict]:
    """An item's expected calls as promptfoo checks them: `tool-call-f1` on the tools expected
    (promptfoo compares tool names, so the calls with their arguments travel in the test's
    metadata; `is-valid-openai-tools-call` is left out: it needs the tools in the provider's
    config, which a test file does not set)."""
    return [{"type": "tool-call-f1", "value": list(dict.fromkeys(c["name"] for c in calls)), "threshold": 1}]


def to_parquet(rows, name, version) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "item_key": [r["item_key"] for r in rows],
        "system": [r["input"]["system"] for r in rows],
        "prompt": [r["input"]["prompt"] for r in rows],
        "vars": [json.dumps(r["input"]["vars"], ensure_ascii=False) for r in rows],
        "reference": [r["reference"] for r in rows],
        "accepted": pa.array([r["accepted"] for r in rows], type=pa.list_(pa.string())),
        "rejected": pa.array([r["rejected"] for r in rows], type=pa.list_(pa.string())),
        "tags": pa.array([r["tags"] for r in rows], type=pa.list_(pa.string())),
        "source_run_id": pa.array([r["source"]["run_id"] for r in rows], type=pa.int64()),
        "source_response_id": pa.array([r["source"]["response_id"] for r in rows], type=pa.int64()),
        "template": [r["input"].get("template") for r in rows],
        "prompt_name": [r["source"].get("prompt_name") for r in rows],
        "prompt_version": pa.array([r["source"].get("prompt_version") for r in rows], type=pa.int64()),
    }).replace_schema_metadata({"golden_set": name, "set_version": str(version)})
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


# --- import ---------------------------------------------------------------------------

def _record_to_item(record, where: str) -> golden.Item:
    """One record (a JSONL object, or a CSV row turned into one) as an Item; errors name `where`."""
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    source = record.get("input")
    if not isinstance(source, dict) or not isinstance(source.get("prompt"), str) or not source["prompt"].strip():
        raise ValueError(f"{where}: missing input.prompt (the user message)")
    system = source.get("system") or ""
    variables = source.get("vars") or {}
    if not isinstance(system, str) or not isinstance(variables, dict):
        raise ValueError(f"{where}: input.system must be text and input.vars an object")
    lists = {}
    for key in ("accepted", "rejected", "tags"):
        value = record.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}: {key} must be a list of texts")
        lists[key] = value
    assertions = record.get("assertions") or []
    if not isinstance(assertions, list) or not all(isinstance(a, dict) for a in assertions):
        raise ValueError(f"{where}: assertions must be a list of objects")
    reference = record.get("reference")
    if reference is not None and not isinstance(reference, str):
        raise ValueError(f"{where}: reference must be text")
    origin = record.get("source") or {}
    for key in ("run_id", "response_id", "prompt_version"):
        if origin.get(key) is not None and (not isinstance(origin[key], int) or isinstance(origin[key], bool)):
            raise ValueError(f"{where}: source.{key} must be a whole number")
    for key, value in (("input.template", source.get("template")), ("input.system_template", source.get("system_template")),
                       ("source.prompt_name", origin.get("prompt_name"))):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: {key} must be text")
    item = golden.Item(prompt=source["prompt"], system=system, vars=variables, reference=reference,
                       assertions=assertions, source_run_id=origin.get("run_id"),
                       source_response_id=origin.get("response_id"), added_by=str(record.get("added_by") or ""),
                       created_at=record.get("created_at"), updated_at=record.get("updated_at"),
                       template=source.get("template"),
                       system_template=source.get("system_template") if source.get("template") is not None else None,
                       prompt_name=origin.get("prompt_name"), prompt_version=origin.get("prompt_version"), **lists)
    _read_shape(item, record, source, where)
    if record.get("item_key"):
        item.item_key = str(record["item_key"])
    return item


def _read_shape(item: golden.Item, record: dict, source: dict, where: str) -> None:
    """A conversation item's messages, tools / tool choice / response format, expected calls."""
    from core.config import SpreadError
    from core.prompts import conversation, shapes

    try:
        if source.get("messages") is not None:
            item.messages = conversation.checked(source["messages"], f"{where}: input.messages")
        shape = {key: source[key] for key in ("tools", "tool_choice", "response_format") if source.get(key)}
        if "tools" in shape:
            shape["tools"] = shapes.checked_tools(shape["tools"], f"{where}: input.tools")
        item.shape = shape or None
        calls = record.get("tool_calls")
        if calls is not None:
            if not isinstance(calls, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str)
                                                      for c in calls):
                raise ValueError(f"{where}: tool_calls must be a list of {{name, arguments}}")
            item.tool_calls = [{"name": c["name"], "arguments": c.get("arguments", {})} for c in calls]
    except SpreadError as e:
        raise ValueError(str(e)) from None


def parse(data: bytes, fmt: str) -> tuple[list[golden.Item], list[str], int | None]:
    """(items, errors, set_version named in the file). Never raises for a bad line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [], [f"the file is not UTF-8 text (byte {e.start})"], None
    items, errors, versions = [], [], set()
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"line {number}: not valid JSON ({e.msg})")
                continue
            try:
                items.append(_record_to_item(record, f"line {number}"))
                if isinstance(record.get("set_version"), int):
                    versions.add(record["set_version"])
            except ValueError as e:
                errors.append(str(e))
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = {"prompt"} - set(reader.fieldnames or [])
        if missing:
            return [], ["line 1: the CSV header has no 'prompt' column"], None
        for row in reader:
            where = f"line {reader.line_num}"
            try:
                record = {
                    "item_key": row.get("item_key") or None,
                    "input": {"system": row.get("system") or "", "prompt": row.get("prompt") or "",
                              "vars": json.loads(row["vars"]) if row.get("vars") else {},
                              **({"template": row["template"], "system_template": row.get("system_template") or ""}
                                 if row.get("template") else {})},
                    "reference": row.get("reference") or None,
                    **{k: json.loads(row[k]) if row.get(k) else [] for k in ("accepted", "rejected", "assertions", "tags")},
                    "source": {k: int(row[c]) if row.get(c) else None
                               for k, c in (("run_id", "source_run_id"), ("response_id", "source_response_id"),
                                            ("prompt_version", "prompt_version"))}
                              | ({"prompt_name": row["prompt_name"]} if row.get("prompt_name") else {}),
                    "added_by": row.get("added_by") or "", "created_at": row.get("created_at") or None,
                    "updated_at": row.get("updated_at") or None,
                }
                items.append(_record_to_item(record, where))
                if (row.get("set_version") or "").isdigit():
                    versions.add(int(row["set_version"]))
            except (ValueError, json.JSONDecodeError) as e:
                errors.append(str(e) if str(e).startswith("line ") else f"{where}: {e}")
    else:
        return [], [f"cannot import {fmt!r}: import takes jsonl or csv"], None
    keys = [item.item_key for item in items]
    if len(set(keys)) != len(keys):
        errors.append("the file holds the same item_key twice")
    return items, errors, versions.pop() if len(versions) == 1 else None


def import_file(store: Store, name: str, path: str | Path, *, skip_bad: bool = False, who: str = "") -> dict:
    """Import a JSONL or CSV file into a set (created when missing), all or nothing.

    A bad line makes the whole import fail with its line number, unless skip_bad. A new
    set takes the version its file names, so export → import → export is identical.
    """
    path = Path(path)
    fmt = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}.get(path.suffix.lower())
    if fmt is None:
        raise SpreadError(f"{path.name}: import takes a .jsonl or .csv file")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpreadError(f"cannot read {path}: {e.strerror or e}") from None
    return import_bytes(store, name, data, fmt, skip_bad=skip_bad, who=who)


def import_bytes(store: Store, name: str, data: bytes, fmt: str, *, skip_bad: bool = False, who: str = "") -> dict:
    items, errors, file_version = parse(data, fmt)
    if errors and not skip_bad:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SpreadError(f"nothing imported: {errors[0]}{more}; fix the file or skip bad lines")
    if not items:
        raise SpreadError("nothing to import: the file has no valid items")
    created = False
    try:
        current = golden.get_set(store, name)
    except SpreadError:
        golden.create_set(store, name, created_by=who)
        current, created = golden.get_set(store, name), True
    version = file_version if created and file_version and not errors else None
    try:
        new_version = golden.add_items(store, name, items, who=who, action="import", version=version)
    except SpreadError:
        if created:  # leave nothing half-made: a set created for a failed import goes too
            _drop_empty_set(store, current["id"])
        raise
    return {"set": name, "imported": len(items), "skipped": len(errors), "errors": errors, "version": new_version}


def _drop_empty_set(store: Store, set_id: int) -> None:
    with store.transaction() as db:
        golden_rows.drop_if_empty(db, set_id)
