"""The Playground's plan as a draft.

Streamlit forgets the value of a widget that is not drawn on the page being shown; the
pages give every widget of the plan and every selection `persist_state="session"`, so
Streamlit itself keeps them for as long as the browser session lasts. The Playground's
plan (the keys named here) is also saved as a draft per reviewer in the database, so a
reload or a server restart finds it again. `from_run` turns any earlier run back into a plan.
"""

from __future__ import annotations

import copy

from core import config
from core.store import Store, drafts, runs

# The Playground's plan: the widget keys (and a few plain values) that make it up.
PLAN_KEYS = (
    "system", "variants", "variant_seq", "inputs_source", "inputs_pasted", "typed_rows",
    "input_columns", "input_columns_text", "file_rows", "file_name", "inputs_golden", "inputs_run", "models", "api_base",
    "turn_seq",
    "temperatures", "n", "max_tokens", "seed", "concurrency", "max_calls", "name", "checks_text", "judge_model",
    "extract", "reword_model", "reword_k",
    "until_settled", "precision", "use_cache", "use_batch",  # cost (docs/cost.md)
    "reviewer",  # on a box without login, the name typed in the sidebar comes back after a reload
)
# One of each per wording, numbered by the wording's key in `variants`: its text, name,
# and, for a conversation or a structured answer, its kind, turns, tools, tool choice and
# response format (pages/playground.py).
VARIANT_PREFIXES = ("prompt_", "variant_name_", "kind_", "turns_", "tools_", "tool_choice_", "response_format_")

# What a fresh Playground shows: a plan that runs as it is on the embedded model.
DEFAULTS = {
    "system": "", "inputs_source": "typed rows", "temperatures": "0, 0.7, 1.0", "n": 5, "max_tokens": 128,
    "seed": "", "concurrency": 8, "name": "", "checks_text": "", "judge_model": "", "extract": "whole",
    "api_base": "", "typed_rows": [], "input_columns": [],
}


def plan_of(state) -> dict:
    """The plan part of a session state, as plain values (the wordings still in use only)."""
    plan = {key: state[key] for key in PLAN_KEYS if key in state}
    for number in plan.get("variants") or []:
        for prefix in VARIANT_PREFIXES:
            if f"{prefix}{number}" in state:
                plan[f"{prefix}{number}"] = state[f"{prefix}{number}"]
    return plan


def wording_copy(state, key: int, new_key: int, turn_seq: int) -> tuple[dict, int]:
    """The fields of a new wording `new_key` that copies wording `key` whole: its kind, text,
    conversation turns (each with a new id from `turn_seq`, call ids kept), tools, tool
    choice and response format; the copy has no name of its own. Returns (fields, the last
    turn id used)."""
    fields = {f"{prefix}{new_key}": copy.deepcopy(state[f"{prefix}{key}"]) for prefix in VARIANT_PREFIXES
              if f"{prefix}{key}" in state and prefix not in ("variant_name_", "turns_")}
    fields[f"variant_name_{new_key}"] = ""
    if state.get(f"turns_{key}"):
        turns = []
        for turn in state[f"turns_{key}"]:
            turn_seq += 1
            turns.append({**copy.deepcopy(turn), "id": turn_seq})
        fields[f"turns_{new_key}"] = turns
    return fields, turn_seq


def load(store: Store, owner: str) -> dict | None:
    """The reviewer's saved plan, or None. Never creates a database just to look."""
    if not store.exists:
        return None
    with store.connection() as db:
        return drafts.get_draft(db, owner)


def save(store: Store, owner: str, plan: dict) -> None:
    with store.connection() as db:
        drafts.save_draft(db, owner, plan)


def from_run(store: Store, run_id: int) -> dict:
    """The Playground plan that samples an earlier run again: its wordings, inputs (read
    from that run), models, temperatures, N, limits, checks and extraction."""
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        if run is None:
            raise config.SpreadError(f"no run with id {run_id}")
        variants = runs.run_variants(db, run_id)
    spec = run["spec"]
    plan: dict = {
        "variants": list(range(len(variants))), "variant_seq": len(variants),
        "system": variants[0]["system"] if variants else "",
        "inputs_source": "an earlier run" if spec.get("n_inputs", 1) > 1 or _has_inputs(store, run_id)
        else "none",
        "inputs_run": run_id,
        "models": list(spec["models"]), "api_base": spec.get("api_base") or "",
        "temperatures": ", ".join(f"{t:g}" for t in spec["temperatures"]), "n": int(spec["n"]),
        "max_tokens": int(spec.get("max_tokens") or DEFAULTS["max_tokens"]),
        "seed": "" if spec.get("seed") is None else str(spec["seed"]),
        "concurrency": int(spec.get("concurrency") or DEFAULTS["concurrency"]),
        "max_calls": int(spec.get("max_calls") or run["planned"]), "name": run["name"] or "",
        "checks_text": "\n".join(_check_line(c) for c in spec.get("checks") or []),
        "judge_model": next((c["judge"] for c in spec.get("checks") or [] if c.get("judge")), ""),
        "extract": spec.get("extract") or "whole",
        "until_settled": bool(spec.get("until_settled")), "precision": float(spec.get("precision") or 0.3),
        "use_cache": bool(spec.get("cache")), "use_batch": bool(spec.get("batch")),
    }
    for k, variant in enumerate(variants):
        plan[f"prompt_{k}"] = variant["prompt"]
        # A wording keeps its own name; the run's letters (A, B…) come back by position.
        unnamed = {run["name"] or "untitled", f"{run['name'] or 'untitled'} · {variant['label']}"}
        plan[f"variant_name_{k}"] = "" if variant["name"] in unnamed else variant["name"]
        plan.update(_shape_of(k, variant, plan))
    return plan


def _shape_of(k: int, variant: dict, plan: dict) -> dict:
    """A wording's conversation (as editor turns), tools, tool choice and response format."""
    import json

    out = {}
    if variant.get("messages"):
        first = plan.get("turn_seq", 0)
        out[f"kind_{k}"] = "conversation"
        out[f"turns_{k}"] = [{"id": first + n + 1, "role": turn["role"],
                              "content": turn.get("from") if turn["role"] == "history" else turn.get("content") or "",
                              **({"tool_call_id": turn["tool_call_id"]} if turn.get("tool_call_id") else {})}
                             for n, turn in enumerate(variant["messages"])]
        plan["turn_seq"] = first + len(variant["messages"])
    if variant.get("tools"):
        out[f"tools_{k}"] = json.dumps(variant["tools"], indent=2)
    choice = variant.get("tool_choice")
    if choice:
        out[f"tool_choice_{k}"] = choice if isinstance(choice, str) else choice["function"]["name"]
    response_format = variant.get("response_format")
    if response_format:
        inner = response_format.get("json_schema") or {}
        shown = response_format if "strict" in inner else inner.get("schema")  # strict lives in OpenAI's shape
        out[f"response_format_{k}"] = json.dumps(shown, indent=2) if shown else "json"
    return out


def _has_inputs(store: Store, run_id: int) -> bool:
    with store.connection() as db:
        return any(row["vars"] for row in runs.run_inputs(db, run_id))


def _check_line(check: dict) -> str:
    value = check.get("value")
    if value is None:
        return check["type"]
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return f"{check['type']}:{value}"
