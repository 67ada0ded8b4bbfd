"""Tools, tool choice and response format: what a variant asks of the answer, and the
answer's own shape (text, tool calls, a parsed JSON value).

Tools are OpenAI's `tools` list (`{"type": "function", "function": {name, description,
parameters}}`); a tool choice is auto, none, required or a tool's name; a response
format is `json` (any JSON object) or a JSON Schema (sent as OpenAI's `json_schema`
response format, which litellm translates for other providers). Tool calls are data:
Spread stores and compares them, and never executes one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from core import jsonvalue
from core.config import SpreadError

TOOL_CHOICES = ("auto", "none", "required")


def load_file(path: str | Path, what: str):
    """A JSON or YAML file's data, or a one-line SpreadError."""
    path = Path(path)
    try:
        return parse_text(path.read_text(encoding="utf-8"), str(path), what)
    except OSError as e:
        raise SpreadError(f"cannot read {path}: {e.strerror or e}", what) from None
    except UnicodeDecodeError:
        raise SpreadError(f"{path} is not UTF-8 text", what) from None


def parse_text(text: str, where: str, what: str):
    """JSON or YAML text (a file's, or typed into the Playground)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpreadError(f"{where} is neither JSON nor YAML: {' '.join(str(e).split())[:200]}", what) from None


def tools_from_text(text: str) -> list[dict] | None:
    """Tools typed as JSON or YAML (None when blank)."""
    if not (text or "").strip():
        return None
    data = parse_text(text, "the tools", "tools")
    return checked_tools(data["tools"] if isinstance(data, dict) and "tools" in data else data, "the tools")


def response_format_from_text(text: str) -> dict | None:
    """`json`, or a JSON Schema typed as JSON or YAML (None when blank)."""
    text = (text or "").strip()
    if not text:
        return None
    if text.lower() in ("json", "json_object"):
        return {"type": "json_object"}
    return checked_response_format(parse_text(text, "the response format", "response_format"))


def read_tools(path: str | Path) -> list[dict]:
    """An OpenAI tools list from a JSON or YAML file (or {"tools": [...]})."""
    data = load_file(path, "tools")
    if isinstance(data, dict) and "tools" in data:
        data = data["tools"]
    return checked_tools(data, str(path))


def checked_tools(tools, where: str = "tools") -> list[dict]:
    """Tools in OpenAI's shape, each a function with a name and a JSON Schema of parameters.
    A bare function ({name, parameters}) is accepted and wrapped."""
    import jsonschema

    if not isinstance(tools, list) or not tools:
        raise SpreadError(f"{where}: expected a non-empty list of tools", "tools")
    out, names = [], []
    for number, tool in enumerate(tools, start=1):
        what = f"{where}: tool {number}"
        if isinstance(tool, dict) and "function" not in tool and "name" in tool:
            tool = {"type": "function", "function": tool}
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type", "function") != "function":
            raise SpreadError(f'{what}: expected {{"type": "function", "function": {{"name": …}}}}', "tools")
        name = function.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", name):
            raise SpreadError(f"{what}: a function name is 1-64 letters, digits, _ or - (got {name!r})", "tools")
        if name in names:
            raise SpreadError(f"{what}: the function {name!r} is declared twice", "tools")
        names.append(name)
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        try:
            jsonschema.validators.validator_for(parameters).check_schema(parameters)
        except (jsonschema.SchemaError, TypeError, AttributeError) as e:
            raise SpreadError(f"{what} ({name}): its parameters are not a JSON schema "
                              f"({getattr(e, 'message', e)})", "tools") from None
        out.append({"type": "function", "function": dict(function, parameters=parameters)})
    return out


def tool_names(tools: list[dict] | None) -> list[str]:
    return [tool["function"]["name"] for tool in tools or []]


def checked_tool_choice(choice, tools: list[dict] | None):
    """auto, none, required, a declared tool's name, or OpenAI's own object; None: unset."""
    if choice is None or choice == "":
        return None
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
    elif choice in TOOL_CHOICES:
        if not tools:
            raise SpreadError(f"--tool-choice {choice} needs tools (--tools-file)", "tools")
        return choice
    else:
        name = choice
    if name not in tool_names(tools):
        raise SpreadError(f"tool choice {name!r} is not a declared tool (declared: "
                          f"{', '.join(tool_names(tools)) or 'none'})", "tools")
    return {"type": "function", "function": {"name": name}}


def read_response_format(value: str) -> dict:
    """`json`, or a JSON Schema file, as OpenAI's response_format."""
    if value.strip().lower() in ("json", "json_object"):
        return {"type": "json_object"}
    data = load_file(value, "response_format")
    return checked_response_format(data, Path(value).stem)


def checked_response_format(data, name: str = "answer") -> dict:
    """A response format as sent: OpenAI's own shape (its `strict` kept), or a bare JSON
    Schema wrapped as one."""
    import jsonschema

    if isinstance(data, dict) and data.get("type") in ("json_object", "text"):
        return {"type": data["type"]}
    strict = None
    if isinstance(data, dict) and data.get("type") == "json_schema":
        inner = data.get("json_schema") or {}
        schema, name, strict = inner.get("schema"), inner.get("name") or name, inner.get("strict")
        if strict is not None and not isinstance(strict, bool):
            raise SpreadError(f"the response format's strict is true or false (got {strict!r})", "response_format")
    else:
        schema = data
    if not isinstance(schema, dict):
        raise SpreadError("the response format is json or a JSON Schema (an object)", "response_format")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise SpreadError(f"the response format is not a valid JSON Schema ({e.message})", "response_format") from None
    name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "answer"
    wrapped = {"name": name, "schema": schema}
    if strict is not None:  # OpenAI's structured outputs: the provider holds the answer to the schema
        wrapped["strict"] = strict
    return {"type": "json_schema", "json_schema": wrapped}


def schema_of(response_format: dict | None) -> dict | None:
    """The JSON Schema a response format asks for (None for plain JSON or text)."""
    if response_format and response_format.get("type") == "json_schema":
        return response_format["json_schema"]["schema"]
    return None


def wants_json(response_format: dict | None) -> bool:
    return bool(response_format) and response_format.get("type") in ("json_object", "json_schema")


# --- what an answer holds ------------------------------------------------------------------

def parse_arguments(raw) -> tuple[object, str | None]:
    """A tool call's arguments parsed (a JSON string, as providers send them), and the
    problem when they are not JSON: then the raw text is kept as the value."""
    if raw is None or raw == "":
        return {}, None
    if not isinstance(raw, str):
        return raw, None
    try:
        return json.loads(raw), None
    except json.JSONDecodeError as e:
        return raw, f"arguments are not JSON ({e.msg} at character {e.pos})"


def call_record(name, raw_arguments) -> dict:
    """One tool call as stored: {name, arguments} (parsed), with `error` if they are not JSON."""
    arguments, problem = parse_arguments(raw_arguments)
    record = {"name": name or "", "arguments": arguments}
    if problem:
        record["error"] = problem
    return record


def tool_calls_of(stored: str | None) -> list[dict]:
    """A response row's `tool_calls` column as a list (empty without calls)."""
    if not stored or not isinstance(stored, str):
        return []
    try:
        calls = json.loads(stored)
    except json.JSONDecodeError:
        return []
    return calls if isinstance(calls, list) else []


def parse_json_answer(text: str) -> tuple[bool, object]:
    """(is JSON, the value): an answer that should be JSON, parsed once (a ```json fence
    around it is tolerated, as models add one)."""
    body = (text or "").strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, flags=re.S)
    if fenced:
        body = fenced.group(1)
    try:
        return True, jsonvalue.loads(body)
    except (json.JSONDecodeError, ValueError):
        return False, None


def answer_fields(text: str, calls: list[dict] | None, response_format: dict | None) -> dict:
    """The columns a response row gets beside its text: `tool_calls` (JSON) when it has
    any, `json_value` (the parsed answer, as JSON) when the variant asked for JSON."""
    fields = {"tool_calls": json.dumps(calls, ensure_ascii=False) if calls else None, "json_value": None}
    if wants_json(response_format):
        ok, value = parse_json_answer(text)
        if ok:
            fields["json_value"] = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return fields


def expected_calls(calls, what: str = "the expected calls") -> list[dict]:
    """Calls a reviewer says an answer should have made, read: a list of {name, arguments},
    the arguments a JSON object (or the JSON text of one, as typed). One-line SpreadError
    otherwise; whether the tools exist is `checked_calls`' question."""
    if not isinstance(calls, list) or not calls:
        raise SpreadError(f"{what}: expected a non-empty list of calls (a tool name and its arguments)",
                          "correction_calls")
    out = []
    for number, call in enumerate(calls, start=1):
        name = call.get("name") if isinstance(call, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise SpreadError(f"{what}: call {number} has no tool name", "correction_calls")
        arguments = call.get("arguments", {})
        if isinstance(arguments, str):
            arguments, problem = parse_arguments(arguments.strip())
            if problem:
                raise SpreadError(f"{what}: call {number} ({name}): the {problem}", "correction_calls")
        if not isinstance(arguments, dict):
            raise SpreadError(f"{what}: call {number} ({name}): the arguments are a JSON object, "
                              f'like {{"city": "Paris"}}', "correction_calls")
        out.append({"name": name.strip(), "arguments": arguments})
    return out


def checked_calls(calls, tools: list[dict] | None, what: str = "the expected calls") -> list[dict]:
    """`expected_calls`, each naming one of `tools` with arguments valid against that tool's
    parameter schema (the rule `is-valid-openai-tools-call` applies to answers)."""
    import jsonschema

    calls = expected_calls(calls, what)
    declared = {tool["function"]["name"]: tool["function"].get("parameters") or {} for tool in tools or []}
    if not declared:
        raise SpreadError(f"{what}: this answer's wording declares no tools, so it has no call to expect",
                          "correction_calls")
    for number, call in enumerate(calls, start=1):
        if call["name"] not in declared:
            raise SpreadError(f"{what}: call {number} names {call['name']!r}, not one of the run's tools "
                              f"({', '.join(declared)})", "correction_calls")
        schema = declared[call["name"]]
        errors = sorted(jsonschema.validators.validator_for(schema)(schema).iter_errors(call["arguments"]),
                        key=lambda e: list(e.path))
        if errors:
            where = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in errors[0].path)
            raise SpreadError(f"{what}: call {number} ({call['name']}): arguments{where}: {errors[0].message}",
                              "correction_calls")
    return calls


def readable_call(call: dict) -> str:
    """One call as a line of text: name(arguments as compact JSON)."""
    arguments = call.get("arguments")
    shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False, sort_keys=True)
    return f"{call.get('name', '')}({shown})"


def readable(text: str, calls: list[dict]) -> str:
    """An answer as text: its words, then one line per call."""
    lines = [text.strip()] if text and text.strip() else []
    return "\n".join(lines + [readable_call(call) for call in calls])


def answer_data(row: dict) -> dict:
    """A stored answer's data beside its text, for output: `tool_calls` (parsed) when it
    has any, `json` (the parsed value) when it was asked for and parsed."""
    out = {}
    calls = tool_calls_of(row.get("tool_calls"))
    if calls:
        out["tool_calls"] = calls
    if row.get("json_value") is not None:
        out["json"] = json.loads(row["json_value"])
    return out


# --- the part of an answer its meaning is judged by (core.analyse.meaning.extract) ---------

EXTRACT_MODES = {
    "whole": "the whole answer (default)",
    "first-sentence": "the first sentence",
    "final-answer": 'after the last "Answer:", "The answer is" or "Final answer"; else the last number; '
                    "else the whole answer",
    "json:FIELD": "a field of a JSON object in the answer, by dotted path (json:result.city); "
                  "the whole answer if there is none",
    "regex:PATTERN": "the first group (or the whole match) of a regular expression; the whole answer if "
                     "it does not match",
}


def check_extract_mode(mode: str) -> None:
    """Raise ValueError, with a one-line message, for a mode extract() cannot use."""
    if mode in ("whole", "first-sentence", "final-answer"):
        return
    if mode.startswith("json:") and mode[5:].strip():
        return
    if mode.startswith("regex:"):
        try:
            re.compile(mode[6:])
        except re.error as error:
            raise ValueError(f"invalid regular expression {mode[6:]!r}: {error}") from None
        return
    raise ValueError(f"unknown extract mode {mode!r}; choose whole, first-sentence, final-answer, "
                     "json:FIELD or regex:PATTERN")
