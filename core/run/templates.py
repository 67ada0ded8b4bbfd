"""Prompt templates: `{{name}}` placeholders filled from one input's variables.

Only `{{name}}` (spaces inside the braces allowed) is a placeholder; every other brace
is text, so JSON, code and LaTeX in a prompt pass through untouched. A variable name
is whatever sits between the braces, trimmed: a CSV column such as "expected answer"
works as `{{expected answer}}`.
"""

from __future__ import annotations

import re

from core.config import SpreadError

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s](?:[^{}]*[^{}\s])?)\s*\}\}")


def variables(text: str) -> list[str]:
    """The placeholders of a template, in order of first use."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def render(text: str, values: dict[str, str]) -> str:
    """The template with each placeholder replaced by its value (the caller has checked them)."""
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text or "")


def check_inputs(templates: list[str], inputs: list[dict[str, str]]) -> None:
    """Refuse a plan in which some input lacks a value a template needs: one error naming
    the missing variables and the first input lacking them (inputs count from 1)."""
    needed = list(dict.fromkeys(name for text in templates for name in variables(text)))
    if not needed:
        return
    if not inputs:
        shown = ", ".join("{{" + name + "}}" for name in needed)
        raise SpreadError(f"the prompt uses {shown} but no inputs were given: add a table of inputs "
                          "(a CSV, JSONL or JSON file, or rows typed in) or --var NAME=VALUE", "inputs")
    for number, values in enumerate(inputs, start=1):
        missing = [name for name in needed if values.get(name) is None]
        if missing:
            shown = ", ".join("{{" + name + "}}" for name in missing)
            noun = "variable" if len(missing) == 1 else "variables"
            raise SpreadError(f"missing {noun} {shown}: input {number} has no value for "
                              f"{'it' if len(missing) == 1 else 'them'}", "inputs")
