"""JSON values compared and written one way, wherever Spread compares or prints them.

Equality: a number is a number however it is spelled (2, 2.0 and 2e0 are one value),
true and false are not numbers (true is not 1), a string is never a number (1 is not
"1"), and key order never matters. This is Node's `util.isDeepStrictEqual` on parsed
JSON, as promptfoo compares values, so -0 stays apart from 0. Meaning clusters, tool-call
arguments, the argument spread and the checks all use `canonical`/`equal`.

Reading (`loads`) and output: JSON has no NaN or Infinity; `dumps` writes them as null, so what Spread prints
is always JSON a strict reader accepts (and `allow_nan=False` catches any that slip by).
"""

from __future__ import annotations

import json
import math


def _normal(value):
    """The value with every number in one spelling: an integral float becomes an int
    (except -0.0), so that 2 and 2.0 give the same text; bools are left as bools."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and not (value == 0 and math.copysign(1, value) < 0):
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def canonical(value) -> str:
    """One text per JSON value: equal values (see the module docstring), equal texts."""
    return json.dumps(_normal(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def equal(a, b) -> bool:
    """Whether two parsed JSON values are the same value (the rule above)."""
    return canonical(a) == canonical(b)


def finite(value):
    """The value with NaN and ±Infinity (at any depth) replaced by None (numpy's scalars
    read as Python's first)."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def loads(text: str):
    """`JSON.parse`: RFC 8259 JSON only, so NaN and Infinity are not JSON. Raises ValueError."""
    return json.loads(text, parse_constant=_not_json)


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


def dumps(value, **options) -> str:
    """Strict JSON text of a value: NaN and Infinity written as null, anything else
    `json.dumps` would refuse still refused (`default` may be given)."""
    return json.dumps(finite(value), allow_nan=False, **options)
