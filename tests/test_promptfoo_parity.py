"""Checks give promptfoo's verdicts: each case is (assertion, answer, the verdict promptfoo
0.120 gives by its documented semantics). Then the new types, weights and thresholds,
the refusals, and Nunjucks-style templates."""

import pytest

from core.config import SpreadError
from core.evaluate import checks, jsregex, rates
from core.prompts import templates


def verdict(assertion: dict, answer: str, values: dict | None = None, response: dict | None = None):
    check = checks.validate([checks.from_dict(assertion)], [values] if values else [])[0]
    return checks.deterministic(check, answer, values or {}, response).passed


@pytest.mark.parametrize("assertion,answer,passed", [
    # equals and starts-with strip nothing
    ({"type": "equals", "value": "Paris"}, "Paris", True),
    ({"type": "equals", "value": "Paris"}, " Paris", False),
    ({"type": "equals", "value": "Paris"}, "Paris\n", False),
    ({"type": "equals", "value": "Paris"}, "\tParis", False),
    ({"type": "equals", "value": "Paris"}, "\u00a0Paris", False),
    ({"type": "not-equals", "value": "Paris"}, "Paris\n", True),
    ({"type": "starts-with", "value": "Paris"}, " Paris", False),
    ({"type": "not-starts-with", "value": "Paris"}, " Paris", True),
    # an object or list value is compared with the answer parsed as JSON
    ({"type": "equals", "value": {"a": 1}}, '{"a": 1}', True),
    ({"type": "equals", "value": {"a": 1}}, '{ "a" : 1.0 }', True),
    ({"type": "equals", "value": {"a": 1}}, '{"a": true}', False),
    ({"type": "equals", "value": {"a": 1}}, '{"a": 1, "b": 2}', False),
    ({"type": "equals", "value": {"a": 1}}, "{'a': 1}", False),
    ({"type": "not-equals", "value": {"a": 1}}, "not JSON", True),
    ({"type": "equals", "value": [1, "x"]}, '[1, "x"]', True),
    ({"type": "equals", "value": [1, "x"]}, '["x", 1]', False),
    # numbers and the empty text are values
    ({"type": "equals", "value": 42}, "42", True),
    ({"type": "equals", "value": 42}, "42.0", False),
    ({"type": "equals", "value": 1.0}, "1", True),
    ({"type": "equals", "value": 0.1}, "0.1", True),
    ({"type": "equals", "value": ""}, "", True),
    ({"type": "equals", "value": ""}, " ", False),
    ({"type": "contains", "value": 42}, "The answer is 42.", True),
    ({"type": "icontains", "value": 3.5}, "version 3.5", True),
    # JavaScript regular expressions
    ({"type": "regex", "value": r"^\d+$"}, "123", True),
    ({"type": "regex", "value": r"^\d+$"}, "１２３", False),
    ({"type": "regex", "value": r"^\d+$"}, "٣", False),
    ({"type": "regex", "value": r"^\d+$"}, "123\n", False),
    ({"type": "regex", "value": r"Paris$"}, "Paris\n", False),
    ({"type": "regex", "value": r"^\w+$"}, "Café", False),
    ({"type": "regex", "value": r"^\w+$"}, "Cafe_2", True),
    ({"type": "regex", "value": r"^\s$"}, "\ufeff", True),
    ({"type": "regex", "value": r"^\s$"}, "\u00a0", True),
    ({"type": "regex", "value": r"Paris\Z"}, "Paris", False),  # \Z is the letter Z in JavaScript
    ({"type": "regex", "value": r"Paris\Z"}, "ParisZ", True),
    ({"type": "regex", "value": r"(?<year>\d{4})-\k<year>"}, "1999-1999", True),
    ({"type": "regex", "value": r"(?<year>\d{4})-\k<year>"}, "1999-2000", False),
    ({"type": "regex", "value": r"^.$"}, "😀", False),  # two UTF-16 code units
    ({"type": "regex", "value": r"a{,2}"}, "a{,2}", True),  # not a quantifier in JavaScript
    ({"type": "not-regex", "value": r"^\d+$"}, "１２３", True),
    # strict JSON (RFC 8259), schemas with formats, YAML schemas
    ({"type": "is-json"}, "NaN", False),
    ({"type": "is-json"}, "Infinity", False),
    ({"type": "is-json"}, '{"a": NaN}', False),
    ({"type": "is-json"}, '{"a": 1e400}', True),
    ({"type": "not-is-json"}, '{"a": NaN}', True),
    ({"type": "not-is-json"}, '{"a": 1}', False),
    ({"type": "is-json", "value": {"properties": {"e": {"type": "string", "format": "email"}}}},
     '{"e": "not-an-email"}', False),
    ({"type": "is-json", "value": {"properties": {"e": {"type": "string", "format": "email"}}}},
     '{"e": "ada@example.org"}', True),
    ({"type": "is-json", "value": {"properties": {"e": {"type": "string", "format": "email"}}}},
     '{"e": "ada@localhost"}', False),
    ({"type": "is-json", "value": "type: object\nrequired: [city]\n"}, '{"city": "Paris"}', True),
    ({"type": "is-json", "value": "type: object\nrequired: [city]\n"}, '{"town": "Paris"}', False),
    ({"type": "is-json", "value": {"type": "object"}}, "[1]", False),
])
def test_parity_cases_from_the_issue(assertion, answer, passed):
    assert verdict(assertion, answer) is passed


@pytest.mark.parametrize("assertion,answer,passed", [
    ({"type": "contains-any", "value": ["Paris", "Lyon"]}, "It is Lyon.", True),
    ({"type": "contains-any", "value": ["Paris", "Lyon"]}, "It is Nice.", False),
    ({"type": "contains-any", "value": 'Paris, "Lyon, France"'}, "Lyon, France", True),
    ({"type": "contains-any", "value": 'Paris, "Lyon, France"'}, "Lyon", False),
    ({"type": "not-contains-any", "value": ["Paris", "Lyon"]}, "Nice", True),
    ({"type": "contains-all", "value": ["Paris", "France"]}, "Paris is in France", True),
    ({"type": "contains-all", "value": ["Paris", "France"]}, "Paris is in Texas", False),
    ({"type": "contains-all", "value": []}, "anything", True),
    ({"type": "icontains-any", "value": ["PARIS"]}, "paris", True),
    ({"type": "icontains-all", "value": "paris, FRANCE"}, "Paris, France", True),
    ({"type": "not-icontains-all", "value": "paris, FRANCE"}, "Paris", True),
    ({"type": "contains-json"}, 'Here: {"a": 1} done', True),
    ({"type": "contains-json"}, "Here: {a: 1}", False),
    ({"type": "contains-json"}, 'Here: {"a": NaN}', False),
    ({"type": "contains-json", "value": {"required": ["b"]}}, '{"a": 1} and {"b": 2}', True),
    ({"type": "contains-json", "value": {"required": ["c"]}}, '{"a": 1} and {"b": 2}', False),
    ({"type": "not-contains-json"}, "no JSON here", True),
    ({"type": "levenshtein", "value": "Paris"}, "Parsi", True),  # distance 2 <= 5
    ({"type": "levenshtein", "value": "Paris"}, "Paris, France", False),  # distance 8
    ({"type": "levenshtein", "value": "Paris", "threshold": 1}, "Parsi", False),
    ({"type": "levenshtein", "value": "Paris", "threshold": 0}, "Parsi", True),  # `threshold || 5`
    ({"type": "not-levenshtein", "value": "Paris", "threshold": 1}, "Parsi", True),
    ({"type": "not-max-length", "value": 3}, "1234", True),
])
def test_new_types(assertion, answer, passed):
    assert verdict(assertion, answer) is passed


def test_cost_and_latency_read_the_answer():
    answer = {"cost_usd": 0.002, "latency_ms": 850}
    assert verdict({"type": "cost", "threshold": 0.01}, "x", response=answer) is True
    assert verdict({"type": "cost", "threshold": 0.001}, "x", response=answer) is False
    assert verdict({"type": "not-cost", "threshold": 0.001}, "x", response=answer) is True
    assert verdict({"type": "latency", "threshold": 1000}, "x", response=answer) is True
    assert verdict({"type": "latency", "threshold": 500}, "x", response=answer) is False
    assert verdict({"type": "cost", "threshold": 1}, "x", response={"cost_usd": None}) is None  # unknown price
    only_metric = checks.from_dict({"type": "latency", "metric": "speed"})
    outcome = checks.deterministic(checks.validate([only_metric])[0], "x", {}, answer)
    assert outcome.passed is True and outcome.score == 850
    with pytest.raises(SpreadError, match="needs a threshold"):
        checks.validate([checks.from_dict({"type": "cost"})])


@pytest.mark.parametrize("assertion,message", [
    ({"type": "regex", "value": "(?i)paris"}, "invalid regular expression, as JavaScript reads it (invalid group)"),
    ({"type": "regex", "value": "a*+"}, "nothing to repeat"),
    ({"type": "regex", "value": "(?P<n>a)"}, "invalid group"),
    ({"type": "regex", "value": "(?<=a+)b"}, "not translatable exactly"),
    ({"type": "equals", "value": "x", "transform": "output.trim()"}, "'transform' is not supported"),
    ({"type": "javascript", "value": "output.length < 10"}, "never runs code"),
    ({"type": "python", "value": "len(output) < 10"}, "never runs code"),
    ({"type": "perplexity", "threshold": 5}, "log-probabilities"),
    ({"type": "starts-with", "value": 42}, "needs a value"),
    ({"type": "contains", "value": True}, "needs a value"),
    ({"type": "contains", "value": ""}, "needs a value"),
    ({"type": "contains-any", "value": 'a, "b'}, "unterminated quoted value"),
    ({"type": "is-json", "value": "type: [unclosed"}, "neither JSON nor YAML"),
    ({"type": "equals", "value": "x", "weight": -1}, "weight must be 0 or more"),
    ({"type": "equals", "value": "x", "rubricPrompt": "y"}, "unsupported key 'rubricPrompt'"),
])
def test_what_promptfoo_refuses_or_spread_cannot_run_is_refused_in_one_line(assertion, message):
    with pytest.raises(SpreadError) as error:
        checks.validate([checks.from_dict(assertion)])
    assert message in str(error.value) and "\n" not in str(error.value)


def _results(rows):
    """check_results rows for one answer: (check, passed, score)."""
    return [{"response_id": 1, "check_key": check.key(), "passed": int(passed), "score": score}
            for check, passed, score in rows]


def test_weight_zero_never_fails_and_the_score_is_the_weighted_mean():
    zero = checks.validate([checks.from_dict({"type": "equals", "value": "Paris", "weight": 0})])[0]
    outcome = checks.deterministic(zero, "Lyon", {})
    assert outcome.passed is True and outcome.score == 0.0 and "weight 0" in outcome.reason
    heavy = checks.from_dict({"type": "contains", "value": "Paris", "weight": 3})
    light = checks.from_dict({"type": "contains", "value": "France"})
    results = _results([(heavy, True, 1.0), (light, False, 0.0), (zero, True, 0.0)])
    assert rates.answer_scores(results) == {1: 0.75}
    assert rates.answer_verdicts(results) == {1: False}  # one check failed, no test threshold
    assert rates.answer_verdicts(results, thresholds={1: 0.7}) == {1: True}  # promptfoo: score >= threshold
    assert rates.answer_verdicts(results, thresholds={1: 0.8}) == {1: False}


def test_metrics_are_named_weighted_scores():
    a = checks.from_dict({"type": "contains", "value": "Paris", "metric": "accuracy", "weight": 3})
    b = checks.from_dict({"type": "contains", "value": "France", "metric": "accuracy"})
    assert rates.metric_scores(_results([(a, True, 1.0), (b, False, 0.0)])) == {"accuracy": 0.75}


def test_templates_keep_placeholders_and_take_nunjucks_filters():
    assert templates.render("Capital of {{country}}? {{expected answer}}", {"country": "France",
                                                                          "expected answer": "Paris"}) \
        == "Capital of France? Paris"
    assert templates.render('{"a": {{x}}}', {"x": "1"}) == '{"a": 1}'  # braces of JSON stay text
    assert templates.render("{{score (0-10)}} {{price/kg}}", {"score (0-10)": "7", "price/kg": "3"}) == "7 3"
    values = {"expected": "Paris", "items": "a"}
    assert templates.render("{{ expected | upper }}", values) == "PARIS"
    assert templates.render("{{ expected | lower | trim }}!", {"expected": "  Paris "}) == "paris!"
    assert templates.render("{{ expected | dump }}", values) == '"Paris"'
    assert templates.render("{% if expected %}yes{% endif %}\n", values) == "yes\n"  # the final newline stays
    assert templates.variables("{{ expected | upper }} {{ other }}") == ["expected", "other"]
    assert verdict({"type": "equals", "value": "{{ expected | upper }}"}, "PARIS", {"expected": "Paris"}) is True
    with pytest.raises(SpreadError, match="missing variable"):
        checks.validate([checks.parse("contains:{{ city | upper }}")], [{"expected": "x"}])
    with pytest.raises(SpreadError, match="template error"):
        templates.check_inputs(["{% if x %}unclosed"], [{"x": "1"}])
    with pytest.raises(SpreadError, match="template error"):  # the sandbox: no Python internals
        templates.render("{{ expected.__class__.__mro__[1].__subclasses__() }}", values)


def test_regex_translation_refuses_what_javascript_rejects():
    for pattern in ["(", ")", "[a", "\\", "{3}", "a{3,2}", "(?<n>a)(?<n>b)", "^*", "[z-a]", "(?>a)"]:
        with pytest.raises(jsregex.JsRegexError):
            jsregex.compile(pattern)
    for pattern, text in [("[]", "a"), ("[^]", "\n"), ("[^a\\S]", " "), ("(a)|\\1b", "b"), ("\\101", "A"),
                          ("\\cJ", "\n"), ("[\\d-z]", "-"), ("(?=a)*b", "b")]:
        assert jsregex.search(pattern, text) is (pattern != "[]"), pattern


def test_run_checks_file_gives_promptfoos_verdicts_through_the_cli(stub, tmp_path):
    from test_cli import last_json, spread

    answers = [" Paris", "Paris\n", "Paris", "１２３", "123", "NaN", '{"a": 1}']
    stub.respond = lambda body: body["messages"][-1]["content"].removeprefix("Echo:")
    (tmp_path / "answers.jsonl").write_text("".join(
        __import__("json").dumps({"answer": a}) + "\n" for a in answers))
    (tmp_path / "checks.yaml").write_text(
        "- {type: equals, value: Paris}\n- {type: regex, value: '^\\d+$'}\n- {type: is-json}\n"
        "- {type: contains-any, value: [Paris, Rome]}\n")
    db = str(tmp_path / "cli.db")
    spread("--db", db, "run", "--prompt", "Echo:{{answer}}", "--vars-file", str(tmp_path / "answers.jsonl"),
           "--model", "openai/stub", "--api-base", stub.base_url, "--temperature", "1", "--n", "1",
           "--no-stream", "--checks-file", str(tmp_path / "checks.yaml"), "--json")  # the stub streams word by word
    shown = last_json(spread("--db", db, "show", "1", "--json"))
    verdicts = {}
    for cell in shown["cells"]:
        for answer in cell["answers"]:
            for result in answer["checks"]:
                verdicts[(answer["text"], result["type"])] = result["passed"]
    assert {a: verdicts[(a, "equals")] for a in answers} == {a: a == "Paris" for a in answers}
    assert {a: verdicts[(a, "regex")] for a in answers} == {a: a == "123" for a in answers}
    assert {a: verdicts[(a, "is-json")] for a in answers} == {a: a in ("123", '{"a": 1}') for a in answers}
    assert {a: verdicts[(a, "contains-any")] for a in answers} == {a: "Paris" in a for a in answers}
