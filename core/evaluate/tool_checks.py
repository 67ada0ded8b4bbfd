"""Checks on answers that are data: tool calls and JSON (promptfoo's names where it has them).

- `is-valid-openai-tools-call`: the answer calls at least one tool, and every call names a
  tool the variant declared (or the tools given as the check's value) with arguments that
  are JSON valid against that tool's parameter schema.
- `tool-call-f1`: F1 of the answer's calls against the expected ones. Expected: the
  check's value (tool names, comma-separated or a list, or a list of {name, arguments}:
  then the arguments must be equal too), else the input's `expected_tool_calls` column
  (a JSON list), else a golden item's expected calls. Passes at `threshold` (default 1).
- `is-json` without a value, on a variant with a JSON Schema response format: the same
  check as `is-json` given that schema (`checks.with_run_schema`), so a fenced block reads
  alike either way (not JSON, as promptfoo's `JSON.parse`).
- `json-field`: a value in the answer's JSON, chosen by a selector, `equals` a value or is
  `similar` (same meaning, Spread's rule) to a text:

      {"type": "json-field", "value": {"path": "$.address.city", "equals": "Paris"}}
      json-field:$.address.city=Paris        json-field:$.summary~=The meeting moved

  A selector is names and indexes: `$.items[0].name` (or `items.0.name`). The document
  it reads is the answer's parsed JSON; for an answer that calls tools, it is
  `{"tool_calls": [{name, arguments}, …]}`: `$.tool_calls[0].arguments.city`.
  `equals` compares parsed values by `jsonvalue`'s rule: 1 equals 1.0, true is not 1, 1 is
  not "1", key order never matters (`json-field:$.n=2` means the number, `="2"` the text).
"""

from __future__ import annotations

import json
import re

from core import jsonvalue
from core.config import SpreadError
from core.evaluate.outcome import Outcome
from core.prompts import shapes

TYPES = {
    "is-valid-openai-tools-call": "each tool call names a declared tool and its arguments validate against its schema",
    "tool-call-f1": "F1 of the tool calls against the expected ones (names, or names with arguments) at the threshold "
                    "(default 1)",
    "json-field": "a field of the answer's JSON, by selector ($.a.b[0]), equals a value or is similar to a text",
}
PATH_TOKEN = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def stored_value(value):
    """A check's value in a hashable form: lists of calls and selectors as JSON text."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(list(value) if isinstance(value, tuple) else value, sort_keys=True, ensure_ascii=False)
    return value


def validate(check, what: str) -> None:
    """Raise a one-line SpreadError for a check of these types that cannot be made."""
    if check.type == "json-field":
        field_spec(check.value, what)
    elif check.type == "tool-call-f1" and check.value is not None:
        expected_calls(check.value, what)
    elif check.type == "is-valid-openai-tools-call" and check.value is not None:
        shapes.checked_tools(_json(check.value, what), what)
    if check.threshold is not None and not 0 <= check.threshold <= 1:
        raise SpreadError(f"{what}: the threshold must be in 0..1", "checks")


def _json(value, what: str):
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise SpreadError(f"{what}: the value is not JSON", "checks") from None


def field_spec(value, what: str = "json-field") -> dict:
    """{"path": tokens, "equals": value} or {"path": tokens, "similar": text}."""
    if isinstance(value, str) and value.lstrip().startswith("{"):
        value = _json(value, what)
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([^=~]+?)\s*(~=|=)(.*)", value, flags=re.S)
        if not match:
            raise SpreadError(f"{what}: write json-field:PATH=VALUE or json-field:PATH~=TEXT", "checks")
        path, op, raw = match.groups()
        if op == "=":
            try:
                expected = json.loads(raw)
            except json.JSONDecodeError:
                expected = raw
            value = {"path": path, "equals": expected}
        else:
            value = {"path": path, "similar": raw}
    if not isinstance(value, dict) or not isinstance(value.get("path"), str) or \
            len({"equals", "similar"} & set(value)) != 1:
        raise SpreadError(f'{what}: the value is {{"path": SELECTOR, "equals": VALUE}} or {{"path", "similar"}}',
                          "checks")
    return {**value, "tokens": selector(value["path"], what)}


def selector(path: str, what: str = "json-field") -> list:
    """`$.a.b[0]` -> ["a", "b", 0]."""
    rest = path.strip()
    rest = rest[1:] if rest.startswith("$") else rest
    tokens, position = [], 0
    for match in PATH_TOKEN.finditer(rest):
        if match.start() != position:
            break
        name, index = match.groups()
        tokens.append(int(index) if index is not None else int(name) if name.isdigit() else name)
        position = match.end()
    if position != len(rest):
        raise SpreadError(f"{what}: cannot read the selector {path!r} (use $.name.other[0])", "checks")
    return tokens


def select(document, tokens: list):
    """(found, value) for a selector's tokens in a parsed JSON document."""
    for token in tokens:
        if isinstance(token, int) and isinstance(document, list) and token < len(document):
            document = document[token]
        elif isinstance(document, dict) and str(token) in document:
            document = document[str(token)]
        else:
            return False, None
    return True, document


def expected_calls(value, what: str = "tool-call-f1") -> list[dict]:
    """Expected calls as [{name}] or [{name, arguments}] from a check's value or a column."""
    if isinstance(value, str):
        stripped = value.strip()
        value = _json(stripped, what) if stripped.startswith("[") else [n.strip() for n in stripped.split(",")
                                                                      if n.strip()]
    if not isinstance(value, (list, tuple)):
        raise SpreadError(f"{what}: expected calls are tool names or a list of {{name, arguments}}", "checks")
    out = []
    for item in value:
        if isinstance(item, str):
            out.append({"name": item})
        elif isinstance(item, dict) and isinstance(item.get("name") or (item.get("function") or {}).get("name"), str):
            function = item.get("function") or item
            call = {"name": function["name"]}
            if "arguments" in function:
                call["arguments"] = shapes.parse_arguments(function["arguments"])[0]
            out.append(call)
        else:
            raise SpreadError(f"{what}: an expected call is a tool name or {{name, arguments}} (got {item!r})",
                              "checks")
    return out


# --- outcomes ------------------------------------------------------------------------------

def valid_tools_call(calls: list[dict], tools: list[dict] | None) -> tuple[bool, str]:
    """Every call names a declared tool with arguments valid against its schema."""
    import jsonschema

    if not calls:
        return False, "no tool call"
    declared = {tool["function"]["name"]: tool["function"].get("parameters") or {} for tool in tools or []}
    for number, call in enumerate(calls, start=1):
        name = call.get("name")
        if name not in declared:
            return False, f"call {number} names {name!r}, not a declared tool ({', '.join(declared) or 'none'})"
        if call.get("error"):
            return False, f"call {number} ({name}): {call['error']}"
        errors = sorted(jsonschema.validators.validator_for(declared[name])(declared[name]).iter_errors(
            call.get("arguments")), key=lambda e: list(e.path))
        if errors:
            return False, f"call {number} ({name}): {errors[0].message}"
    return True, ""


def call_f1(calls: list[dict], expected: list[dict]) -> tuple[float, str]:
    """F1 of calls against expected calls compared as sets, as promptfoo's `tool-call-f1`:
    calling a tool twice counts once (two parallel `get_weather` calls against an expected
    `get_weather` score 1.0). With names only, the sets are tool names; an expected call
    with arguments is met by a call of that name with equal arguments (`jsonvalue`), and
    then calls are told apart by their arguments too. Precision: the share of distinct
    calls that meet an expected one; recall: the share of distinct expected calls met."""
    by_arguments = any("arguments" in want for want in expected)
    made = list({_call_key(call, by_arguments): call for call in calls}.values())
    wanted = list({_call_key(want, "arguments" in want): want for want in expected}.values())
    if not made and not wanted:
        return 1.0, ""

    def meets(call, want) -> bool:
        return want["name"] == call.get("name") and ("arguments" not in want or
                                                     jsonvalue.equal(want["arguments"], call.get("arguments")))

    precision = sum(any(meets(call, want) for want in wanted) for call in made) / len(made) if made else 0.0
    left = [want for want in wanted if not any(meets(call, want) for call in made)]
    recall = (len(wanted) - len(left)) / len(wanted) if wanted else 0.0
    f1 = 0.0 if not precision + recall else 2 * precision * recall / (precision + recall)
    missing = ", ".join(shapes.readable_call(c) if "arguments" in c else c["name"] for c in left)
    return f1, f"F1 {f1:.2f}" + (f"; missing {missing}" if missing else "")


def _call_key(call: dict, with_arguments: bool) -> str:
    name = call.get("name") or ""
    return jsonvalue.canonical([name, call.get("arguments")]) if with_arguments else name


def document_of(text: str, calls: list[dict], json_value: str | None):
    """(found, document) the json-field selector reads (see the module docstring)."""
    if calls:
        return True, {"tool_calls": [{"name": c.get("name"), "arguments": c.get("arguments")} for c in calls]}
    if json_value is not None:
        return True, json.loads(json_value)
    return shapes.parse_json_answer(text)


def evaluate(check, answer: dict, values: dict[str, str], variant: dict, similar=None):
    """The Outcome of a check of TYPES on one stored answer. `variant` holds the variant's tools and response format; `similar(text,
    reference)` is the meaning rule, for json-field's `similar`."""
    calls = shapes.tool_calls_of(answer.get("tool_calls"))
    what = check.label()
    if check.type == "is-valid-openai-tools-call":
        tools = shapes.checked_tools(_json(check.value, what), what) if check.value else variant.get("tools")
        passed, reason = valid_tools_call(calls, tools)
        return Outcome(passed, 1.0 if passed else 0.0, reason)
    if check.type == "tool-call-f1":
        source = check.value if check.value is not None else values.get("expected_tool_calls") or \
            values.get("golden.tool_calls")
        if not source:
            return Outcome(None, None, "no expected tool calls to compare with")
        f1, reason = call_f1(calls, expected_calls(source, what))
        threshold = 1.0 if check.threshold is None else check.threshold
        return Outcome(f1 >= threshold, round(f1, 4), "" if f1 >= threshold else reason)
    spec = field_spec(check.value, what)
    ok, document = document_of(answer.get("text") or "", calls, answer.get("json_value"))
    if not ok:
        return Outcome(False, 0.0, "the answer is not JSON")
    found, value = select(document, spec["tokens"])
    if not found:
        return Outcome(False, 0.0, f"no {spec['path']} in the answer")
    if "equals" in spec:
        expected = spec["equals"]
        same = jsonvalue.equal(value, expected)
        return Outcome(same, 1.0 if same else 0.0, "" if same else f"{spec['path']} is {value!r}, not {expected!r}")
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return similar(text, spec["similar"])


def applies(check) -> bool:
    """Whether this module scores the check (is-json against a run's schema is checks.py's
    is-json given that schema: scoring.outcome_of sets it first)."""
    return check.type in TYPES
