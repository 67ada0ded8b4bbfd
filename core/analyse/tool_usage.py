"""Which tools a group of answers called, and how each argument's value spread.

Per cell: the share of answers that called each tool (an answer calling two tools
counts for both) and of those that called none ("no tool"); per tool and argument, the
values given, most frequent first. A value compares as parsed JSON: 2 and 2.0 are one
value, {"a": 1, "b": 2} and {"b": 2, "a": 1} too.
"""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd

from core.run import shapes

NO_TOOL = "no tool"


def usage(stored: list[str | None]) -> dict:
    """{"tools": [{tool, count, share}], "arguments": [{tool, argument, distinct, values: [{value, count, share}]}]}
    from the answers' stored `tool_calls` (each distinct one read once)."""
    n = len(stored)
    tools: Counter = Counter()
    values: dict[tuple[str, str], Counter] = {}
    for raw, count in Counter(s if isinstance(s, str) else None for s in stored).items():
        calls = shapes.tool_calls_of(raw)
        for name in dict.fromkeys(call.get("name", "") for call in calls) or [NO_TOOL]:
            tools[name] += count
        for call in calls:
            arguments = call.get("arguments")
            if not isinstance(arguments, dict):  # not JSON: the raw text is the one "argument"
                arguments = {"(arguments)": arguments}
            for argument, value in arguments.items():
                values.setdefault((call.get("name", ""), argument), Counter())[_key(value)] += count
    return {
        "tools": [{"tool": name, "count": count, "share": round(count / n, 4)} for name, count in tools.most_common()],
        "arguments": [{"tool": tool, "argument": argument, "distinct": len(counter),
                       "values": _shares(counter)} for (tool, argument), counter in sorted(values.items())],
    }


def _shares(counter: Counter) -> list[dict]:
    total = sum(counter.values())
    return [{"value": json.loads(value), "count": count, "share": round(count / total, 4)}
            for value, count in counter.most_common()]


def _key(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


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
    its values as text ("Paris ×4 (80%) · Lyon ×1 (20%)")."""
    tools = [{"tool": row["tool"], "answers": row["count"], "share": f"{row['share']:.0%}"}
             for row in cell.get("tools", [])]
    arguments = [{"tool": row["tool"], "argument": row["argument"], "distinct values": row["distinct"],
                  "values": " · ".join(f"{_key(v['value'])} ×{v['count']} ({v['share']:.0%})"
                                       for v in row["values"][:8]) + (" · …" if len(row["values"]) > 8 else "")}
                 for row in cell.get("arguments", [])]
    return tools, arguments
