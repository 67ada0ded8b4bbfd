"""Answers that are data (tool calls, JSON): how they are compared, spread, checked and printed."""

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from core import jsonvalue
from core.store import Store, responses
from core.analyse import meaning, tool_usage
from core.evaluate import checks, scoring, tool_checks
from core.prompts import shapes
from core.run import plan, runner
from test_cli import ROOT, spread as cli
from test_prompt_shapes import WEATHER, call, outcome, run_spec


def strict(text: str):
    """A JSON reader that refuses NaN and Infinity, as every strict one does."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


# --- tool-call-f1: promptfoo's sets -----------------------------------------------------------

def test_tool_call_f1_compares_sets_as_promptfoo():
    twice = [shapes.call_record("get_weather", '{"city": "Paris"}'),
             shapes.call_record("get_weather", '{"city": "Lyon"}')]
    result = outcome({"type": "tool-call-f1", "value": "get_weather"}, twice)
    assert result.score == 1.0 and result.passed is True  # promptfoo: {get_weather} vs {get_weather}
    with_search = twice + [shapes.call_record("search", '{"q": "x"}')]
    assert outcome({"type": "tool-call-f1", "value": "get_weather"}, with_search).score == pytest.approx(0.6667, abs=1e-4)
    assert outcome({"type": "tool-call-f1", "value": "get_weather, get_weather"}, twice).score == 1.0
    # With arguments, a call is told apart by them: one of the two distinct calls is expected.
    paris = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    assert outcome({"type": "tool-call-f1", "value": paris}, twice).score == pytest.approx(0.6667, abs=1e-4)
    assert outcome({"type": "tool-call-f1", "value": paris}, twice[:1] * 2).score == 1.0  # the same call twice


# --- the argument spread shows what calls leave out ------------------------------------------------

def test_omitted_arguments_appear_in_the_argument_spread():
    answers = [json.dumps([{"name": "get_weather", "arguments": arguments}]) for arguments in
               ({"city": "Paris", "unit": "celsius"}, {"city": "Paris", "unit": "celsius"},
                {"city": "Paris"}, {"city": "Lyon"})]
    found = tool_usage.usage(answers)
    unit = next(a for a in found["arguments"] if a["argument"] == "unit")
    assert unit["values"] == [{"value": "celsius", "count": 2, "share": 0.5},
                              {"omitted": True, "count": 2, "share": 0.5}]
    assert unit["distinct"] == 1
    _, rows = tool_usage.tables({"arguments": found["arguments"]})
    assert next(r for r in rows if r["argument"] == "unit")["values"] == '"celsius" ×2 (50%) · (omitted) ×2 (50%)'
    city = next(r for r in rows if r["argument"] == "city")
    assert "(omitted)" not in city["values"]


# --- strict structured outputs -----------------------------------------------------------------

def test_strict_is_kept_in_a_json_schema_response_format_and_sent(store, stub):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    given = {"type": "json_schema", "json_schema": {"name": "capital", "schema": schema, "strict": True}}
    assert shapes.checked_response_format(given) == given
    assert shapes.response_format_from_text(json.dumps(given)) == given
    with pytest.raises(Exception, match="strict is true or false"):
        shapes.checked_response_format({"type": "json_schema", "json_schema": {"schema": schema, "strict": "yes"}})
    stub.respond = lambda body: '{"city": "Paris"}'
    run_id = plan.create(store, run_spec(stub, variants=[plan.Variant("Capital?", response_format=given)], n=1))
    asyncio.run(runner.execute(store, run_id))
    assert stub.requests[0]["body"]["response_format"]["json_schema"]["strict"] is True


# --- one rule for JSON values -------------------------------------------------------------------

def test_json_values_compare_by_one_rule_everywhere():
    assert jsonvalue.equal(2, 2.0) and jsonvalue.equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not jsonvalue.equal(True, 1) and not jsonvalue.equal(1, "1") and not jsonvalue.equal(0, -0.0)
    # meaning clusters: answers that are data
    assert meaning.canonical([{"name": "f", "arguments": {"n": 2}}], None) == \
        meaning.canonical([{"name": "f", "arguments": {"n": 2.0}}], None)
    assert meaning.canonical([{"name": "f", "arguments": {"on": True}}], None) != \
        meaning.canonical([{"name": "f", "arguments": {"on": 1}}], None)
    assert meaning.canonical(None, "2") == meaning.canonical(None, "2.0") != meaning.canonical(None, '"2"')
    assert meaning.extract('{"n": 2.0}', "json:n") == meaning.extract('{"n": 2}', "json:n")
    # the argument spread
    spread = tool_usage.usage([json.dumps([{"name": "f", "arguments": {"n": n}}]) for n in (2, 2.0, True, 1, 1.0)])
    assert [(v["value"], v["count"]) for v in spread["arguments"][0]["values"]] == [(2, 2), (1, 2), (True, 1)]
    # tool-call arguments in tool-call-f1
    two = [shapes.call_record("get_weather", '{"city": "Paris", "days": 2.0}')]
    assert outcome({"type": "tool-call-f1", "value": [
        {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]}, two).score == 1.0
    assert outcome({"type": "tool-call-f1", "value": [
        {"name": "get_weather", "arguments": {"city": "Paris", "days": True}}]},
        [shapes.call_record("get_weather", '{"city": "Paris", "days": 1}')]).score == 0.0
    # json-field
    answer = '{"ok": 1, "n": 2.0, "id": 1}'
    assert outcome({"type": "json-field", "value": "$.ok=true"}, text=answer).passed is False
    assert outcome({"type": "json-field", "value": "$.n=2"}, text=answer).passed is True
    assert outcome({"type": "json-field", "value": {"path": "$.id", "equals": "1"}}, text=answer).passed is False
    assert outcome({"type": "json-field", "value": '$.id="1"'}, text=answer).passed is False
    # equals with a JSON value, and schemas (jsonschema's equality agrees with the rule)
    assert checks.deterministic(checks.from_dict({"type": "equals", "value": {"a": 2}}), '{"a": 2.0}', {}).passed
    assert not checks.deterministic(checks.from_dict({"type": "equals", "value": [True]}), "[1]", {}).passed
    assert not checks.deterministic(checks.from_dict({"type": "is-json", "value": {"const": True}}), "1", {}).passed
    assert checks.deterministic(checks.from_dict({"type": "is-json", "value": {"const": 2}}), "2.0", {}).passed


# --- is-json: one reading of fences -------------------------------------------------------------

def test_is_json_reads_a_fenced_block_alike_with_the_runs_schema_or_an_explicit_one(store, stub):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    answers = {1: '{"city": "Paris"}', 2: '```json\n{"city": "Paris"}\n```', 3: '{"town": "Paris"}'}
    stub.respond = lambda body: answers[body["seed"]]
    variant = plan.Variant("Capital?", response_format=shapes.checked_response_format(schema))
    run_id = plan.create(store, run_spec(stub, variants=[variant], n=3,
                                  checks=[{"type": "is-json"}, {"type": "is-json", "value": schema}]))
    asyncio.run(runner.execute(store, run_id))
    results = scoring.score_run_sync(store, run_id)
    with store.connection() as db:
        order = {r["id"]: r["sample_idx"] for r in responses.of_run(db, run_id)}
    by_check = {}
    for r in results:
        by_check.setdefault(r["check_key"], {})[order[r["response_id"]]] = r["passed"]
    run_schema, explicit = (by_check[k] for k in sorted(by_check, key=len))
    assert run_schema == explicit == {0: 1, 1: 0, 2: 0}  # promptfoo's JSON.parse: a fence is not JSON


# --- --json is always JSON ---------------------------------------------------------------------------

def test_print_json_writes_nan_and_infinity_as_null():
    code = ("import numpy as np; from core.cli.common import print_json; "
            "print_json({'a': float('nan'), 'b': [np.float32('inf'), np.float64('-inf')], 'c': np.int64(3)})")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert strict(out) == {"a": None, "b": [None, None], "c": 3}
    with pytest.raises(TypeError):
        jsonvalue.dumps({"a": object()})


def test_a_nan_answer_never_makes_show_json_invalid(stub, tmp_path):
    db = str(tmp_path / "nan.db")
    stub.respond = lambda body: ["NaN", '{"x": NaN}', '{"x": Infinity}', '{"x": 1}'][body["seed"] % 4]
    cli("--db", db, "run", "--prompt", "A number?", "--response-format", "json", "--model", "openai/stub-a",
        "--temperature", "1", "--n", "4", "--seed", "0", "--api-base", stub.base_url, "--json")
    shown = strict(cli("--db", db, "show", "1", "--json").stdout.strip().splitlines()[-1])
    answers = shown["cells"][0]["answers"]
    assert [a.get("json") for a in sorted(answers, key=lambda a: a["sample_idx"])] == [None, None, None, {"x": 1}]
