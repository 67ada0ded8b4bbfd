"""Which tools a group of answers called, and how each argument's value spread (and,
for the pages, which tools a wording offered: `offered_text`).

Per cell: the share of answers that called each tool (an answer calling two tools
counts for both) and of those that called none ("no tool"); per tool and argument, the
values given, most frequent first, and how many calls left it out ("(omitted)"). A value
compares as parsed JSON by `jsonvalue`'s rule: 2 and 2.0 are one value, {"a": 1, "b": 2}
and {"b": 2, "a": 1} too, true and 1 are two.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from core import jsonvalue
from core.prompts import shapes

NO_TOOL = "no tool"
RAW = "(arguments)"  # the one "argument" of a call whose arguments are not a JSON object
OMITTED = "\x00omitted"  # never a canonical JSON text


def usage(stored: list[str | None]) -> dict:
    """{"tools": [{tool, count, share}], "arguments": [{tool, argument, distinct, values: [{value, count, share}]}]}
    from the answers' stored `tool_calls` (each distinct one read once). A call that leaves
    an argument out counts as `{"omitted": true, count, share}` among that argument's
    values (shares are of the tool's calls), so a value given by half the calls reads 50%."""
    n = len(stored)
    tools: Counter = Counter()
    calls_of: Counter = Counter()  # per tool, its calls whose arguments are an object
    values: dict[tuple[str, str], Counter] = {}
    for raw, count in Counter(s if isinstance(s, str) else None for s in stored).items():
        calls = shapes.tool_calls_of(raw)
        for name in dict.fromkeys(call.get("name", "") for call in calls) or [NO_TOOL]:
            tools[name] += count
        for call in calls:
            arguments = call.get("arguments")
            if isinstance(arguments, dict):
                calls_of[call.get("name", "")] += count
            else:  # not JSON: the raw text is the one "argument"
                arguments = {RAW: arguments}
            for argument, value in arguments.items():
                values.setdefault((call.get("name", ""), argument), Counter())[_key(value)] += count
    for (tool, argument), counter in values.items():
        omitted = calls_of[tool] - sum(counter.values()) if argument != RAW else 0
        if omitted > 0:
            counter[OMITTED] = omitted
    return {
        "tools": [{"tool": name, "count": count, "share": round(count / n, 4)} for name, count in tools.most_common()],
        "arguments": [{"tool": tool, "argument": argument, "distinct": len(counter.keys() - {OMITTED}),
                       "values": _shares(counter)} for (tool, argument), counter in sorted(values.items())],
    }


def _shares(counter: Counter) -> list[dict]:
    total = sum(counter.values())
    return [({"omitted": True} if value == OMITTED else {"value": json.loads(value)}) |
            {"count": count, "share": round(count / total, 4)} for value, count in counter.most_common()]


def _key(value) -> str:
    return jsonvalue.canonical(value)


def add_to_cells(cells: list[dict], answers: pd.DataFrame, axes: list[str]) -> None:
    """Each cell gets `tools` and `arguments` (usage()) from its answers' stored calls."""
    grouped = {key: list(group["tool_calls"]) for key, group in answers.groupby(axes, sort=False)}
    for cell in cells:
        key = tuple(cell[axis] for axis in axes)
        found = grouped.get(key)
        if found:
            cell.update(usage(found))


def tables(cell: dict) -> tuple[list[dict], list[dict]]:
    """A cell's tool usage as two plain tables for a page: tools chosen, and per argument
    its values as text ("Paris ×3 (60%) · Lyon ×1 (20%) · (omitted) ×1 (20%)")."""
    tools = [{"tool": row["tool"], "answers": row["count"], "share": f"{row['share']:.0%}"}
             for row in cell.get("tools", [])]
    arguments = [{"tool": row["tool"], "argument": row["argument"], "distinct values": row["distinct"],
                  "values": " · ".join(f"{_shown(v)} ×{v['count']} ({v['share']:.0%})"
                                       for v in row["values"][:8]) + (" · …" if len(row["values"]) > 8 else "")}
                 for row in cell.get("arguments", [])]
    return tools, arguments


def _shown(value: dict) -> str:
    return "(omitted)" if value.get("omitted") else json.dumps(value["value"], ensure_ascii=False)


def offered_text(tools: list[dict] | None, tool_choice=None) -> str:
    """The tools a wording offered, as plain text: one line per tool with its parameters
    (`name: type`, `?` when optional, an enum's values) and description, then the tool choice."""
    lines = []
    for tool in tools or []:
        function = tool.get("function") or {}
        parameters = function.get("parameters") or {}
        required = set(parameters.get("required") or [])
        shown = [f"{name}{'' if name in required else '?'}: {_type_text(schema)}"
                 for name, schema in (parameters.get("properties") or {}).items()]
        line = f"{function.get('name', '')}({', '.join(shown)})"
        if function.get("description"):
            line += f" — {' '.join(str(function['description']).split())}"
        lines.append(line)
    if lines and tool_choice:
        name = tool_choice if isinstance(tool_choice, str) else (tool_choice.get("function") or {}).get("name")
        lines.append(f"tool choice: {name}")
    return "\n".join(lines)


def _type_text(schema) -> str:
    if not isinstance(schema, dict):
        return "any"
    if "enum" in schema:
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"{_type_text(schema['items'])}[]"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)
