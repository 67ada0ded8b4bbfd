"""Prompt templates: `{{name}}` placeholders filled from one input's variables.

Only `{{name}}` (spaces inside the braces allowed) is a placeholder; every other brace
is text, so JSON, code and LaTeX in a prompt pass through untouched. A variable name
is whatever sits between the braces, trimmed: a CSV column such as "expected answer"
works as `{{expected answer}}`.

A template that uses more than placeholders — a filter (`{{ expected | upper }}`), an
expression, a `{% if %}` or `{% for %}` — is a Jinja2 template, as promptfoo users write
them in Nunjucks: rendered in Jinja2's sandbox (no attribute of Python objects reachable)
with Nunjucks' own filters added (`dump`, `nl2br`) and its habits kept (the final newline
stays, `truncate` cuts where asked).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from core.config import SpreadError

PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s](?:[^{}]*[^{}\s])?)\s*\}\}")
# `{% … %}`, or `{{ … }}` holding a filter, a call or an index (`name(`, `name[`) or a string:
# a column such as "price/kg" or "score (0-10)" stays a plain placeholder.
JINJA = re.compile(r"\{%|\{\{[^{}]*(?:\||\w[(\[]|['\"])[^{}]*\}\}")


def is_jinja(text: str) -> bool:
    return bool(JINJA.search(text or ""))


@lru_cache(maxsize=1)
def _environment():
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
    env.policies["truncate.leeway"] = 0
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False}
    env.filters["dump"] = lambda value, indent=None: json.dumps(
        value, ensure_ascii=False, indent=indent, separators=None if indent else (",", ":"))
    env.filters["nl2br"] = lambda value: str(value).replace("\r\n", "<br />\n").replace("\n", "<br />\n")
    return env


@lru_cache(maxsize=256)
def _compiled(text: str):
    from jinja2 import TemplateSyntaxError

    try:
        return _environment().from_string(text)
    except TemplateSyntaxError as e:
        raise SpreadError(f"template error in {text[:60]!r}: {e.message} (line {e.lineno})", "prompt") from None


def variables(text: str) -> list[str]:
    """The placeholders of a template, in order of first use."""
    if is_jinja(text):
        from jinja2 import meta

        try:
            names = meta.find_undeclared_variables(_environment().parse(text))
        except Exception:  # a syntax error: check_inputs says so; here, the plain placeholders
            return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))
        return sorted(names, key=lambda name: (text.find(name), name))
    return list(dict.fromkeys(PLACEHOLDER.findall(text or "")))


def render(text: str, values: dict[str, str]) -> str:
    """The template with each placeholder replaced by its value (the caller has checked them)."""
    if is_jinja(text):
        from jinja2 import TemplateError

        try:
            return _compiled(text).render(values)
        except TemplateError as e:
            raise SpreadError(f"template error in {text[:60]!r}: {e}", "prompt") from None
    return PLACEHOLDER.sub(lambda match: str(values[match.group(1)]), text or "")


def check_inputs(templates: list[str], inputs: list[dict[str, str]]) -> None:
    """Refuse a plan in which some input lacks a value a template needs: one error naming
    the missing variables and the first input lacking them (inputs count from 1)."""
    for text in templates:
        if is_jinja(text):
            _compiled(text)  # a syntax error is refused before anything runs
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
