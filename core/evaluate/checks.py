"""Automatic checks on answers: deterministic ones, by meaning, and an LLM judge.

Names follow promptfoo's assertion types where one exists (`contains`, `icontains`,
`regex`, `is-json`, `similar`, `llm-rubric`, `not-…`), so people moving over recognise
them and exported sets keep working. A value may use the input's variables:
`contains:{{expected}}`.

`similar` uses Spread's own meaning equivalence — the very rule that forms the meaning
clusters (`meaning.cluster_vectors` on the pair) — so "Lyon" is never similar to
"Paris", and an answer that is as close to a rejected answer as to every accepted
one fails.

Every check is validated before a run starts (an invalid regex or schema is a one-line
error naming the check), and every result is stored with its answer in `check_results`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from core.config import SpreadError
from core.evaluate import tool_checks
from core.run import templates

TYPES = {
    "equals": "the answer is the value (white space around it ignored)",
    "contains": "the answer contains the value",
    "icontains": "the answer contains the value, ignoring case",
    "not-contains": "the answer does not contain the value",
    "not-icontains": "the answer does not contain the value, ignoring case",
    "starts-with": "the answer starts with the value",
    "regex": "the regular expression matches somewhere in the answer",
    "not-regex": "the regular expression matches nowhere in the answer",
    "is-json": "the answer is JSON (and, with a value, valid against that JSON schema)",
    "json-schema": "the answer is JSON valid against the schema given as the value",
    "max-length": "the answer has at most this many characters",
    "similar": "same meaning as a reference (the value, else the golden item's reference and accepted answers), "
               "and not closer to a rejected answer",
    "not-similar": "not the same meaning as the value",
    "llm-rubric": "a judge model says the answer meets the rubric (off unless asked for; its calls are counted)",
}
TYPES.update(tool_checks.TYPES)  # tool calls and JSON fields (core/evaluate/tool_checks.py)
MAX_CHECKS = 50


@dataclass(frozen=True)
class Check:
    type: str
    value: object = None
    threshold: float | None = None  # similar: the similarity needed (default: the clusters' threshold)
    judge: str | None = None  # llm-rubric: the judge's litellm model id
    samples: int = 1  # llm-rubric: how many times the judge is asked (its self-consistency)

    def key(self) -> str:
        """The check as canonical JSON: how its results are found again."""
        return json.dumps(self.as_dict(), sort_keys=True, ensure_ascii=False)

    def label(self) -> str:
        value = self.value if isinstance(self.value, str) else json.dumps(self.value, ensure_ascii=False)
        return self.type if self.value is None else f"{self.type}:{value}"

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None and not (k == "samples" and v == 1)}


@dataclass
class Outcome:
    passed: bool | None  # None: the check could not be made (a judge's call failed)
    score: float | None = None
    reason: str = ""
    judge_calls: int = 0
    judge_cost_usd: float | None = 0.0


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


def from_dict(data) -> Check:
    """One check in promptfoo's `assert` shape: {type, value, threshold}; `provider` names a judge."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise SpreadError(f"a check needs a type, one of {', '.join(TYPES)} (got {data!r})", "checks")
    kind = data["type"].strip()
    if kind not in TYPES:
        raise SpreadError(f"unknown check type {kind!r}: use one of {', '.join(TYPES)}", "checks")
    judge = data.get("judge") or data.get("provider")
    samples = data.get("samples", 1)
    threshold = data.get("threshold")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))):
        raise SpreadError(f"{kind}: threshold must be a number", "checks")
    if not isinstance(samples, int) or isinstance(samples, bool) or not 1 <= samples <= 10:
        raise SpreadError(f"{kind}: judge samples must be a whole number in 1..10", "checks")
    value = data.get("value")
    if kind in tool_checks.TYPES:
        value = tool_checks.stored_value(value)
    elif isinstance(value, list):
        value = tuple(value)  # frozen: a check is hashable
    elif isinstance(value, dict):
        value = json.dumps(value, sort_keys=True)  # a JSON schema, kept as its text
    return Check(kind, value, float(threshold) if threshold is not None else None,
                 judge if isinstance(judge, str) else None, samples)


def read_file(path: str | Path) -> list[Check]:
    """A YAML (or JSON) list of checks in promptfoo's `assert` shape, or a mapping with an `assert` list."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise SpreadError(f"cannot read {path}: {e.strerror or e}", "checks") from None
    except UnicodeDecodeError:
        raise SpreadError(f"{path} is not UTF-8 text", "checks") from None
    except yaml.YAMLError as e:
        raise SpreadError(f"{path} is not valid YAML: {' '.join(str(e).split())}", "checks") from None
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
        value = check.value
        if check.type in ("equals", "contains", "icontains", "not-contains", "not-icontains", "starts-with",
                          "regex", "not-regex") and (not isinstance(value, str) or value == ""):
            raise SpreadError(f"{what} needs a value: {check.type}:TEXT", "checks")
        if check.type in ("regex", "not-regex"):
            _compile(value, what)
        if check.type in ("json-schema", "is-json") and value is not None:
            _schema(value, what)
        if check.type == "json-schema" and value is None:
            raise SpreadError(f"{what} needs a JSON schema as its value", "checks")
        if check.type == "max-length" and (value is None or not str(value).strip().isdigit()):
            raise SpreadError(f"{what} needs a whole number of characters: max-length:200", "checks")
        if check.type == "not-similar" and not value:
            raise SpreadError(f"{what} needs a value to stay away from", "checks")
        if check.type in ("similar", "not-similar") and check.threshold is not None and not 0 < check.threshold <= 1:
            raise SpreadError(f"{what}: the similarity threshold must be in (0, 1]", "checks")
        if check.type in tool_checks.TYPES:
            tool_checks.validate(check, what)
        if check.type == "llm-rubric":
            if not isinstance(value, str) or not value.strip():
                raise SpreadError(f"{what} needs a rubric: llm-rubric:'Answers with the city only'", "checks")
            check = Check(check.type, value, check.threshold, check.judge or judge,
                          judge_samples or check.samples)
            if not check.judge:
                raise SpreadError(f"{what} needs a judge model (--judge-model ID): it is off unless asked for",
                                  "checks")
        for text in _texts(value):
            templates.check_inputs([text], inputs or [])
        out.append(check)
    return list(dict.fromkeys(out))


def _texts(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def _compile(pattern, what: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise SpreadError(f"{what}: invalid regular expression ({e})", "checks") from None


def _schema(value, what: str) -> dict:
    import jsonschema

    schema = value
    if isinstance(value, str):
        try:
            schema = json.loads(value)
        except json.JSONDecodeError as e:
            raise SpreadError(f"{what}: the schema is not JSON ({e.msg})", "checks") from None
    if not isinstance(schema, dict):
        raise SpreadError(f"{what}: a JSON schema is an object", "checks")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        raise SpreadError(f"{what}: invalid JSON schema ({e.message})", "checks") from None
    return schema


# --- deterministic checks ---------------------------------------------------------------

def render(value, values: dict[str, str]):
    """A check's value with the input's variables filled in."""
    if isinstance(value, str):
        return templates.render(value, values)
    if isinstance(value, (list, tuple)):
        return [render(v, values) for v in value]
    return value


def deterministic(check: Check, text: str, values: dict[str, str]) -> Outcome:
    """A check that needs no model: its outcome from the answer's text alone."""
    value = render(check.value, values)
    text = text or ""
    kind = check.type
    if kind == "equals":
        return _outcome(text.strip() == value.strip(), f"expected exactly {value!r}")
    if kind in ("contains", "not-contains"):
        found = value in text
        return _outcome(found == (kind == "contains"), f"{'lacks' if not found else 'contains'} {value!r}")
    if kind in ("icontains", "not-icontains"):
        found = value.lower() in text.lower()
        return _outcome(found == (kind == "icontains"), f"{'lacks' if not found else 'contains'} {value!r}")
    if kind == "starts-with":
        return _outcome(text.lstrip().startswith(value), f"does not start with {value!r}")
    if kind in ("regex", "not-regex"):
        found = re.search(value, text) is not None
        return _outcome(found == (kind == "regex"), f"{'no' if not found else 'a'} match for /{value}/")
    if kind in ("is-json", "json-schema"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as e:
            return Outcome(False, 0.0, f"not JSON ({e.msg} at character {e.pos})")
        if value is None:
            return Outcome(True, 1.0, "")
        import jsonschema

        errors = sorted(jsonschema.validators.validator_for(_schema(value, kind))(_schema(value, kind))
                        .iter_errors(parsed), key=lambda e: list(e.path))
        return _outcome(not errors, f"schema: {errors[0].message}" if errors else "")
    if kind == "max-length":
        limit = int(str(value).strip())
        return _outcome(len(text) <= limit, f"{len(text)} characters, more than {limit}")
    raise ValueError(f"{kind} is not a deterministic check")


def _outcome(passed: bool, reason_if_failed: str) -> Outcome:
    return Outcome(bool(passed), 1.0 if passed else 0.0, "" if passed else reason_if_failed)


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
