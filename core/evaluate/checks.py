"""Automatic checks on answers: deterministic ones, by meaning, and an LLM judge.

Names and verdicts follow promptfoo's assertion types (0.120): the same answer and the
same value give the same verdict. `equals` and `starts-with` compare exactly (no white
space stripped); an object or list value of `equals` is compared with the answer parsed
as JSON; numbers are values (`equals: 42`); regular expressions are JavaScript's
(`jsregex`); JSON is strict (RFC 8259: no NaN) and a schema's `format` is checked; JSON
values compare by `jsonvalue`'s one rule (2 is 2.0, true is not 1, 1 is not "1").
Every deterministic type has its `not-` form. A value may use the input's variables,
as a `{{name}}` placeholder or a Jinja2 template with Nunjucks' filters (`templates`).

`weight`, `metric` and `threshold` mean what they mean in promptfoo: an answer's score
is the weighted mean of its checks' scores; a check of weight 0 never fails it; with a
test threshold the answer passes when that score reaches it (`rates.answer_verdicts`).
What promptfoo runs as code (`javascript`, `python`, a `transform`) is refused before
the run: Spread never runs code from a check.

`similar` uses Spread's own meaning equivalence — the very rule that forms the meaning
clusters (`meaning.cluster_vectors` on the pair) — so "Lyon" is never similar to
"Paris", and an answer that is as close to a rejected answer as to every accepted
one fails.

Every check is validated before a run starts (an invalid regex or schema is a one-line
error naming the check), and every result is stored with its answer in `check_results`.
The deterministic types are a table (`DETERMINISTIC`: base type → function), so a new
type is one function and one line.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from core import jsonvalue
from core.config import SpreadError, read_yaml
from core.evaluate import jsregex, tool_checks
from core.evaluate.outcome import Outcome
from core.prompts import shapes, templates

# The types a person names; every deterministic one also has a `not-` form.
TYPES = {
    "equals": "the answer is exactly the value (no white space stripped; an object or list value: the answer "
              "parsed as JSON equals it)",
    "contains": "the answer contains the value",
    "icontains": "the answer contains the value, ignoring case",
    "contains-any": "the answer contains at least one of the values (a list, or comma-separated text)",
    "contains-all": "the answer contains every one of the values",
    "icontains-any": "contains-any, ignoring case",
    "icontains-all": "contains-all, ignoring case",
    "starts-with": "the answer starts with the value (no white space stripped)",
    "regex": "the JavaScript regular expression matches somewhere in the answer",
    "is-json": "the whole answer is strict JSON, as promptfoo reads it (a ```json fence around it is not JSON), and, "
               "with a value, or else the run's JSON Schema response format, valid against that schema (formats "
               "included)",
    "contains-json": "the answer contains a JSON object (valid against the schema, if one is given)",
    "json-schema": "the answer is JSON valid against the schema given as the value",
    "levenshtein": "the edit distance to the value is at most the threshold (default 5)",
    "max-length": "the answer has at most this many characters",
    "cost": "the answer cost at most the threshold in US dollars",
    "latency": "the answer took at most the threshold in milliseconds",
    "not-…": "the opposite of any type above",
    "similar": "same meaning as a reference (the value, else the golden item's reference and accepted answers), "
               "and not closer to a rejected answer",
    "not-similar": "not the same meaning as the value",
    "llm-rubric": "a judge model says the answer meets the rubric (off unless asked for; its calls are counted)",
}
TYPES.update(tool_checks.TYPES)  # tool calls and JSON fields (core/evaluate/tool_checks.py)
# promptfoo types Spread refuses, and why (one line each).
REFUSED = {
    "javascript": "runs JavaScript code; Spread never runs code from a check (there is no sandbox)",
    "python": "runs Python code; Spread never runs code from a check (there is no sandbox)",
    "ruby": "runs Ruby code; Spread never runs code from a check (there is no sandbox)",
    "webhook": "calls a web service with every answer; Spread sends answers nowhere",
    "perplexity": "needs the tokens' log-probabilities, which Spread does not record",
    "perplexity-score": "needs the tokens' log-probabilities, which Spread does not record",
}
KEYS = {"type", "value", "threshold", "weight", "metric", "judge", "provider", "samples"}
# An input's own checks (JSON) and the score its answers need: a promptfoo test's `assert`
# and `threshold`, as `spread import-promptfoo` writes them and scoring reads them.
TEST_CHECKS, TEST_THRESHOLD = "test.checks", "test.threshold"
MAX_CHECKS = 50
DEFAULT_LEVENSHTEIN = 5


@dataclass(frozen=True)
class Check:
    type: str
    value: object = None
    threshold: float | None = None  # similar: the similarity needed; levenshtein, cost, latency: the limit
    judge: str | None = None  # llm-rubric: the judge's litellm model id
    samples: int = 1  # llm-rubric: how many times the judge is asked (its self-consistency)
    weight: float | None = None  # its share of the answer's score (default 1; 0: never fails an answer)
    metric: str | None = None  # a named score it adds to

    def __hash__(self) -> int:  # values may be JSON objects: the canonical key identifies a check
        return hash(self.key())

    def key(self) -> str:
        """The check as canonical JSON: how its results are found again."""
        return json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False)

    def label(self) -> str:
        value = self.value if isinstance(self.value, str) else json.dumps(self.value, ensure_ascii=False)
        return self.type if self.value is None else f"{self.type}:{value}"

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and not (k == "samples" and v == 1)}

    @property
    def inverse(self) -> bool:
        return self.type.startswith("not-") and self.type[4:] in DETERMINISTIC

    @property
    def base(self) -> str:
        return self.type[4:] if self.inverse else self.type


@dataclass
class References:
    """What `similar` compares with when the check names no value (a golden item)."""

    accepted: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


# --- reading and validating checks ------------------------------------------------------

def parse(text: str) -> Check:
    """`TYPE[:VALUE]`, as on the command line: `contains:{{expected}}`, `max-length:200`."""
    kind, sep, value = (text or "").strip().partition(":")
    return from_dict({"type": kind.strip(), "value": value if sep else None})


def known(kind: str) -> bool:
    return kind in TYPES and kind != "not-…" or (kind.startswith("not-") and kind[4:] in DETERMINISTIC)


def from_dict(data) -> Check:
    """One check in promptfoo's `assert` shape: {type, value, threshold, weight, metric}; `provider` names a judge."""
    names = ", ".join(t for t in TYPES)
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise SpreadError(f"a check needs a type, one of {names} (got {data!r})", "checks")
    kind = data["type"].strip()
    base = kind[4:] if kind.startswith("not-") else kind
    if kind in REFUSED or base in REFUSED:
        raise SpreadError(f"check type {kind!r} is not supported: it {REFUSED.get(kind) or REFUSED[base]}", "checks")
    if not known(kind):
        raise SpreadError(f"unknown check type {kind!r}: use one of {names}", "checks")
    if "transform" in data or "contextTransform" in data:
        raise SpreadError(f"{kind}: 'transform' is not supported: it runs JavaScript on the answer, and Spread never "
                          "runs code from a check; remove it, or check the whole answer", "checks")
    extra = sorted(set(data) - KEYS)
    if extra:
        raise SpreadError(f"{kind}: unsupported key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))} "
                          f"(a check takes {', '.join(sorted(KEYS))})", "checks")
    judge = data.get("judge") or data.get("provider")
    samples = data.get("samples", 1)
    threshold, weight, metric = data.get("threshold"), data.get("weight"), data.get("metric")
    for name, number in (("threshold", threshold), ("weight", weight)):
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                                   or not math.isfinite(number)):
            raise SpreadError(f"{kind}: {name} must be a number", "checks")
    if weight is not None and weight < 0:
        raise SpreadError(f"{kind}: weight must be 0 or more", "checks")
    if metric is not None and (not isinstance(metric, str) or not metric.strip()):
        raise SpreadError(f"{kind}: metric must be a name", "checks")
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 10:
        raise SpreadError(f"{kind}: judge samples must be a whole number in 1..10", "checks")
    value = data.get("value")
    if kind in tool_checks.TYPES:
        value = tool_checks.stored_value(value)
    elif isinstance(value, list):
        value = tuple(value)  # frozen: a check's value never changes
    elif isinstance(value, dict) and base in ("is-json", "json-schema", "contains-json"):
        value = json.dumps(value, sort_keys=True)  # a JSON schema, kept as its text (stable keys)
    return Check(kind, value, float(threshold) if threshold is not None else None,
                 judge if isinstance(judge, str) else None, samples,
                 None if weight is None or weight == 1 else float(weight), metric)


def read_file(path: str | Path) -> list[Check]:
    """A YAML (or JSON) list of checks in promptfoo's `assert` shape, or a mapping with an `assert` list."""
    data = read_yaml(path, "checks")
    if isinstance(data, dict) and isinstance(data.get("assert"), list):
        data = data["assert"]
    if not isinstance(data, list):
        raise SpreadError(f"{path}: expected a list of checks (type, value, threshold)", "checks")
    checks = []
    for number, item in enumerate(data, start=1):
        try:
            checks.append(from_dict(item))
        except SpreadError as e:
            raise SpreadError(f"{path} check {number}: {e}", "checks") from None
    return checks


def validate(checks: list[Check], inputs: list[dict[str, str]] | None = None, *,
             judge: str | None = None, judge_samples: int | None = None) -> list[Check]:
    """Refuse what cannot be checked, before a run starts; fill in the judge defaults."""
    if len(checks) > MAX_CHECKS:
        raise SpreadError(f"at most {MAX_CHECKS} checks", "checks")
    out = []
    for check in checks:
        what = f"check {check.label()!r}"
        for text in _texts(check.value):
            templates.check_inputs([text], inputs or [])
        if check.base in DETERMINISTIC:
            for values in _renderings(check, inputs):
                _check_value(check, render(check.value, values), what)
        if check.type == "not-similar" and not check.value:
            raise SpreadError(f"{what} needs a value to stay away from", "checks")
        if check.type in ("similar", "not-similar") and check.threshold is not None and not 0 < check.threshold <= 1:
            raise SpreadError(f"{what}: the similarity threshold must be in (0, 1]", "checks")
        if check.type in tool_checks.TYPES:
            tool_checks.validate(check, what)
        if check.type == "llm-rubric":
            if not isinstance(check.value, str) or not check.value.strip():
                raise SpreadError(f"{what} needs a rubric: llm-rubric:'Answers with the city only'", "checks")
            check = Check(check.type, check.value, check.threshold, check.judge or judge,
                          judge_samples or check.samples, check.weight, check.metric)
            if not check.judge:
                raise SpreadError(f"{what} needs a judge model (--judge-model ID): it is off unless asked for",
                                  "checks")
        out.append(check)
    return list(dict.fromkeys(out))


def _renderings(check: Check, inputs) -> list[dict[str, str]]:
    """The variables a value is checked with: none needed, else every input's."""
    if not any(templates.variables(text) or templates.is_jinja(text) for text in _texts(check.value)):
        return [{}]
    return list(inputs or [{}])


def _check_value(check: Check, value, what: str) -> None:
    """Refuse a value promptfoo would refuse (its `invariant`s), before the run."""
    kind = check.base
    if kind == "equals" and value is None:
        raise SpreadError(f"{what} needs a value: equals:TEXT (a number, a JSON object or list, or \"\")", "checks")
    if kind in ("contains", "icontains") and not (
            (isinstance(value, str) and value != "") or _is_number(value)):
        raise SpreadError(f"{what} needs a value: {check.type}:TEXT (text or a number)", "checks")
    if kind in ("starts-with", "regex", "levenshtein") and not (isinstance(value, str) and value != ""):
        raise SpreadError(f"{what} needs a value: {check.type}:TEXT", "checks")
    if kind == "regex":
        try:
            jsregex.compile(value)
        except jsregex.JsRegexError as e:
            raise SpreadError(f"{what}: invalid regular expression, as JavaScript reads it ({e})", "checks") from None
    if kind in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        if value is None or value == "" or not isinstance(value, (str, list, tuple)):
            raise SpreadError(f"{what} needs a list of values (or comma-separated text)", "checks")
        if isinstance(value, str):
            _comma_separated(value, what)
    if kind in ("is-json", "json-schema", "contains-json") and value not in (None, ""):
        _schema(value, what)
    if kind == "json-schema" and value in (None, ""):
        raise SpreadError(f"{what} needs a JSON schema as its value", "checks")
    if kind == "max-length" and (value is None or not str(value).strip().isdigit()):
        raise SpreadError(f"{what} needs a whole number of characters: max-length:200", "checks")
    if kind in ("cost", "latency") and check.threshold is None and (check.inverse or not check.metric):
        raise SpreadError(f"{what} needs a threshold ({'US dollars' if kind == 'cost' else 'milliseconds'}) "
                          f"{'' if check.inverse else 'or a metric to record it under'}".strip(), "checks")


def _texts(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not (
        isinstance(value, float) and math.isnan(value))


def _schema(value, what: str):
    """A JSON schema from an object, or from its JSON or YAML text, checked; formats are checked too."""
    import jsonschema
    import yaml

    schema = value
    if isinstance(value, str):
        try:
            schema = yaml.safe_load(value)  # JSON is YAML: promptfoo reads either
        except yaml.YAMLError as e:
            raise SpreadError(f"{what}: the schema is neither JSON nor YAML ({' '.join(str(e).split())})",
                              "checks") from None
    if not isinstance(schema, (dict, bool)):
        raise SpreadError(f"{what}: a JSON schema is an object", "checks")
    try:
        jsonschema.validators.validator_for(schema if isinstance(schema, dict) else {}).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise SpreadError(f"{what}: invalid JSON schema ({e.message})", "checks") from None
    return schema


@lru_cache(maxsize=128)
def _validator(value):
    import jsonschema

    schema = _schema(value, "schema")
    cls = jsonschema.validators.validator_for(schema if isinstance(schema, dict) else {})
    return cls(schema, format_checker=_format_checker())


@lru_cache(maxsize=1)
def _format_checker():
    """jsonschema's format checks, with `email` as strict as promptfoo's (ajv-formats): a
    local part of the usual characters, then a domain of dotted labels."""
    import re

    import jsonschema

    checker = jsonschema.FormatChecker()
    local = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    label = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    email = re.compile(rf"{local}@(?:{label}\.)+{label}", re.IGNORECASE | re.ASCII)
    checker.checks("email")(lambda instance: not isinstance(instance, str) or bool(email.fullmatch(instance)))
    return checker


# --- deterministic checks ---------------------------------------------------------------

def render(value, values: dict[str, str]):
    """A check's value with the input's variables filled in (text, and the text items of a list)."""
    if isinstance(value, str):
        return templates.render(value, values)
    if isinstance(value, (list, tuple)):
        return [render(v, values) for v in value]
    return value


def js_string(value) -> str:
    """`String(value)` in JavaScript: how promptfoo turns a number value into text (1.0 is "1")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    sign, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digits))
    k, n = len(digits), exponent + len(digits)  # ECMAScript Number::toString's k and n
    out = (digits + "0" * (n - k) if k <= n <= 21 else digits[:n] + "." + digits[n:] if 0 < n <= 21
           else "0." + "0" * -n + digits if -6 < n <= 0
           else f"{digits[0]}{'.' + digits[1:] if k > 1 else ''}e{'+' if n - 1 > 0 else '-'}{abs(n - 1)}")
    return ("-" if value < 0 else "") + out


strict_json = jsonvalue.loads  # `JSON.parse`: NaN and Infinity are not JSON


def _comma_separated(text: str, what: str = "check") -> list[str]:
    """promptfoo's reading of `contains-any: a, "b, c"`: fields split at commas, trimmed,
    a double-quoted field keeps its commas (`\\"` or `""` for a quote)."""
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and (text[i] in jsregex.WHITE_SPACE_CHARS or text[i] == ","):
            i += 1
        if i >= n:
            break
        if text[i] != '"':
            end = text.find(",", i)
            end = n if end < 0 else end
            out.append(text[i:end].strip(jsregex.WHITE_SPACE_CHARS))
            i = end
            continue
        i, field_text, closed = i + 1, "", False
        while i < n:
            if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\':
                field_text, i = field_text + text[i + 1], i + 2
            elif text[i] == '"' and text[i + 1:i + 2] == '"':
                field_text, i = field_text + '"', i + 2
            elif text[i] == '"':
                i, closed = i + 1, True
                break
            else:
                field_text, i = field_text + text[i], i + 1
        if not closed:
            raise SpreadError(f"{what}: unterminated quoted value", "checks")
        while i < n and text[i] in jsregex.WHITE_SPACE_CHARS:
            i += 1
        if i < n and text[i] != ",":
            raise SpreadError(f"{what}: expected a comma after a quoted value", "checks")
        out.append(field_text)
    return out


def _items(value) -> list[str]:
    items = _comma_separated(value) if isinstance(value, str) else list(value)
    return [js_string(v) for v in items]


def _equals(check, value, text, answer):
    if isinstance(value, (dict, list, tuple)):  # compared as a value with the answer parsed as JSON
        try:
            return jsonvalue.equal(value, strict_json(text)), f"the answer as JSON is not {json.dumps(value)}"
        except ValueError:
            return False, "the answer is not JSON"
    expected = js_string(value)
    return text == expected, f"is not exactly {expected!r}"


def _contains(fold: bool):
    def contains(check, value, text, answer):
        needle = js_string(value)
        found = (needle.lower() in text.lower()) if fold else needle in text
        return found, f"{'contains' if found else 'lacks'} {needle!r}"
    return contains


def _contains_many(fold: bool, every: bool):
    def contains_many(check, value, text, answer):
        items = _items(value)
        haystack = text.lower() if fold else text
        present = [item for item in items if (item.lower() if fold else item) in haystack]
        missing = [item for item in items if item not in present]
        found = not missing if every else bool(present)
        shown = ", ".join(map(repr, missing if every else items))
        return found, (f"lacks {shown}" if every and missing else f"contains {', '.join(map(repr, present))}"
                       if present else f"lacks every one of {shown}")
    return contains_many


def _starts_with(check, value, text, answer):
    return text.startswith(value), f"{'starts' if text.startswith(value) else 'does not start'} with {value!r}"


def _regex(check, value, text, answer):
    found = jsregex.search(value, text)
    return found, f"{'no' if not found else 'a'} match for /{value}/"


def with_run_schema(check: Check, response_format: dict | None) -> Check:
    """`is-json` without a value on a variant that asked for a JSON Schema checks against
    that schema: the same check as `is-json` given the schema, so both read an answer
    alike (strict JSON as promptfoo's `JSON.parse`; a ```json fence around it is not JSON)."""
    if check.type == "is-json" and check.value in (None, ""):
        schema = shapes.schema_of(response_format)
        if schema is not None:
            return replace(check, value=json.dumps(schema, sort_keys=True))
    return check


def _is_json(check, value, text, answer):
    try:
        parsed = strict_json(text)
    except ValueError as e:
        return False, f"not JSON ({e})"
    if value in (None, ""):
        return True, "is JSON"
    errors = sorted(_validator(value).iter_errors(parsed), key=lambda e: list(e.path))
    return not errors, f"schema: {errors[0].message}" if errors else "is JSON valid against the schema"


def json_objects(text: str) -> list[dict]:
    """The JSON objects inside a text, left to right (each `{` where a strict JSON object starts)."""
    decoder = json.JSONDecoder(parse_constant=lambda name: (_ for _ in ()).throw(ValueError(name)))
    found, i = [], text.find("{")
    while i >= 0:
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            end = i + 1
        else:
            found.append(value)
        i = text.find("{", end)
    return found


def _contains_json(check, value, text, answer):
    objects = json_objects(text)
    if not objects:
        return False, "contains no JSON object"
    if value in (None, ""):
        return True, "contains a JSON object"
    validator, message = _validator(value), ""
    for candidate in objects:
        errors = sorted(validator.iter_errors(candidate), key=lambda e: list(e.path))
        if not errors:
            return True, "contains a JSON object valid against the schema"
        message = errors[0].message
    return False, f"schema: {message}"


def levenshtein_within(a: str, b: str, limit: int) -> int | None:
    """The edit distance between a and b if it is at most `limit`, else None (a band of the table only)."""
    if abs(len(a) - len(b)) > limit:
        return None
    over = limit + 1
    previous = [j if j <= limit else over for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        current = [over] * (len(b) + 1)
        current[0] = i if i <= limit else over
        for j in range(max(1, i - limit), min(len(b), i + limit) + 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]), over)
        previous = current
    return previous[-1] if previous[-1] <= limit else None


def _levenshtein(check, value, text, answer):
    limit = int(check.threshold or DEFAULT_LEVENSHTEIN)  # promptfoo: `threshold || 5`
    distance = levenshtein_within(jsregex.code_units(text), jsregex.code_units(value), limit)
    return distance is not None, (f"edit distance {distance}, at most {limit}" if distance is not None
                                  else f"edit distance more than {limit}")


def _max_length(check, value, text, answer):
    limit = int(str(value).strip())
    return len(text) <= limit, f"{len(text)} characters, {'more than' if len(text) > limit else 'at most'} {limit}"


def _measured(column: str, unit: str):
    def measured(check, value, text, answer):
        amount = (answer or {}).get(column)
        if amount is None:
            return Outcome(None, None, f"{column.split('_')[0]} unknown for this answer")
        if check.threshold is None:  # recorded under its metric only (promptfoo: the score is the amount)
            return Outcome(True, float(amount), "")
        within = amount <= check.threshold
        return within, f"{amount:g} {unit}, {'at most' if within else 'more than'} {check.threshold:g} {unit}"
    return measured


Handler = Callable[[Check, object, str, dict], "tuple[bool, str] | Outcome"]
# Base type -> how it is decided: (found, what was found) in the positive sense, or an Outcome.
DETERMINISTIC: dict[str, Handler] = {
    "equals": _equals,
    "contains": _contains(False),
    "icontains": _contains(True),
    "contains-any": _contains_many(False, False),
    "contains-all": _contains_many(False, True),
    "icontains-any": _contains_many(True, False),
    "icontains-all": _contains_many(True, True),
    "starts-with": _starts_with,
    "regex": _regex,
    "is-json": _is_json,
    "json-schema": _is_json,
    "contains-json": _contains_json,
    "levenshtein": _levenshtein,
    "max-length": _max_length,
    "cost": _measured("cost_usd", "USD"),
    "latency": _measured("latency_ms", "ms"),
}


def deterministic(check: Check, text: str, values: dict[str, str], answer: dict | None = None) -> Outcome:
    """A check that needs no model: its outcome from the answer (its text; its cost and latency)."""
    if check.base not in DETERMINISTIC:
        raise ValueError(f"{check.type} is not a deterministic check")
    decided = DETERMINISTIC[check.base](check, render(check.value, values), text or "", answer or {})
    if isinstance(decided, Outcome):
        return weighed(check, decided)
    found, finding = decided
    passed = bool(found) != check.inverse
    return weighed(check, Outcome(passed, 1.0 if passed else 0.0, "" if passed else finding))


def weighed(check: Check, outcome: Outcome) -> Outcome:
    """promptfoo's rule for weight 0: the check is scored and shown, but never fails the answer."""
    if check.weight == 0 and outcome.passed is False:
        return Outcome(True, outcome.score, f"weight 0, not counted: {outcome.reason}", outcome.judge_calls,
                       outcome.judge_cost_usd)
    return outcome


# --- checks by meaning ------------------------------------------------------------------

class Equivalence:
    """Spread's meaning equivalence for pairs of texts, with every text embedded once."""

    def __init__(self, method: str, threshold: float, embedder):
        self.method, self.threshold, self.embedder = method, threshold, embedder
        self._vectors: dict[str, np.ndarray] = {}

    def prepare(self, texts: list[str]) -> None:
        """Embed, once, the texts not seen yet (model embeddings only: lexical ones depend
        on the texts fitted together, so `compare` embeds each pair on its own)."""
        if self.method != "minilm":
            return
        missing = list(dict.fromkeys(t for t in texts if _norm(t) not in self._vectors))
        if missing:
            for text, vector in zip(missing, self.embedder(missing, self.method)):
                self._vectors[_norm(text)] = vector

    def compare(self, a: str, b: str, context: str, threshold: float | None = None) -> tuple[bool, float]:
        """(same meaning, cosine similarity): the clusters' own rule applied to the pair."""
        from core.analyse import meaning

        if _norm(a) == _norm(b):
            return True, 1.0
        if self.method == "minilm":
            self.prepare([a, b])
            pair = np.stack([self._vectors[_norm(a)], self._vectors[_norm(b)]])
        else:
            pair = self.embedder([a, b], self.method)
        similarity = float(np.dot(pair[0], pair[1]))
        labels = meaning.cluster_vectors(pair, threshold or self.threshold,
                                         None if self.method == "exact" else [a, b], context)
        return bool(labels[0] == labels[1]), similarity


def _norm(text: str) -> str:
    from core.analyse import embed

    return embed.normalise(text)


def similar(check: Check, text: str, values: dict[str, str], references: References, context: str,
            equivalence: Equivalence) -> Outcome:
    """`similar` / `not-similar` by meaning."""
    value = render(check.value, values)
    if check.type == "not-similar":
        others = value if isinstance(value, list) else [value]
        for other in others:
            same, similarity = equivalence.compare(text, other, context, check.threshold)
            if same:
                return Outcome(False, similarity, f"same meaning as {other!r} ({similarity:.2f})")
        return Outcome(True, 1.0, "")
    accepted = (value if isinstance(value, list) else [value]) if value else list(references.accepted)
    accepted = [a for a in accepted if a and a.strip()]
    if not accepted:
        return Outcome(None, None, "no reference to compare with")
    best, best_similarity = None, -1.0
    for reference in accepted:
        same, similarity = equivalence.compare(text, reference, context, check.threshold)
        if same and similarity > best_similarity:
            best, best_similarity = reference, similarity
    if best is None:
        return Outcome(False, 0.0, f"no accepted answer means the same (e.g. {accepted[0]!r})")
    for rejected in references.rejected:
        same, similarity = equivalence.compare(text, rejected, context, check.threshold)
        if same and similarity >= best_similarity:
            return Outcome(False, 0.0, f"as close to the rejected {rejected!r} ({similarity:.2f}) as to "
                                       f"{best!r} ({best_similarity:.2f})")
    return Outcome(True, best_similarity, f"same meaning as {best!r}")


def similar_calls(calls: list[dict], expected: list[dict]) -> Outcome:
    """`similar` when the reference is tool calls (a corrected tool-call answer): the answer's
    calls mean the same as the expected ones by the rule that forms meaning clusters
    (`meaning.canonical`: the same functions with equal parsed arguments, their key order
    aside). An answer that calls no tool cannot be compared by meaning with calls: no
    verdict, so the pass rate says it left the answer out (`tool-call-f1` fails it instead)."""
    from core.analyse import meaning
    from core.prompts import shapes

    if not calls:
        return Outcome(None, None, "the reference is tool calls and the answer calls none (tool-call-f1 fails it)")
    if any("arguments" not in call for call in expected):  # names only: the arguments are not compared
        calls = [{"name": call.get("name")} for call in calls]
        expected = [{"name": call["name"]} for call in expected]
    same = meaning.canonical(calls, None) == meaning.canonical(expected, None)
    wanted = "; ".join(shapes.readable_call(c) if "arguments" in c else c["name"] for c in expected)
    return Outcome(same, 1.0 if same else 0.0, "" if same else f"calls other than the expected {wanted}")

