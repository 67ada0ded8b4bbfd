"""Templates and tables of inputs: rendering, and every way a file can be wrong."""

import pytest

from core.config import SpreadError
from core.prompts import inputs, templates
from core.run import plan


def test_placeholders_allow_spaces_and_leave_other_braces_alone():
    text = 'Capital of {{country}}? Use {{ style }}; JSON: {"a": {"b": 1}} and {single} and {{expected answer}}.'
    assert templates.variables(text) == ["country", "style", "expected answer"]
    rendered = templates.render(text, {"country": "Peru", "style": "one word", "expected answer": "Lima"})
    assert rendered == 'Capital of Peru? Use one word; JSON: {"a": {"b": 1}} and {single} and Lima.'
    assert templates.variables("no placeholders, {{ }} nor {{}}") == []


def test_a_value_is_inserted_as_is_even_when_it_looks_like_a_placeholder():
    assert templates.render("{{a}} {{b}}", {"a": "{{b}}", "b": "x"}) == "{{b}} x"


def test_a_missing_variable_names_itself_and_the_first_input_lacking_it():
    with pytest.raises(SpreadError, match=r"missing variable \{\{country\}\}: input 2 has no value for it"):
        templates.check_inputs(["Capital of {{country}}?"], [{"country": "Peru"}, {"city": "Lima"}])
    with pytest.raises(SpreadError, match=r"missing variables \{\{a\}\}, \{\{b\}\}: input 1"):
        templates.check_inputs(["{{a}}", "{{b}}"], [{"c": "1"}])
    with pytest.raises(SpreadError, match="no inputs were given"):
        templates.check_inputs(["{{a}}"], [])
    templates.check_inputs(["{{a}}"], [{"a": ""}])  # an empty value is a value


def test_csv_inputs_keep_unused_columns_and_read_a_bom():
    rows = inputs.parse("\ufeffcountry,expected\nFrance,Paris\n\nPeru,\"Lima, Peru\"\n".encode(), "q.csv")
    assert rows == [{"country": "France", "expected": "Paris"}, {"country": "Peru", "expected": "Lima, Peru"}]


def test_jsonl_and_json_inputs_turn_values_into_text():
    rows = inputs.parse(b'{"n": 3, "ok": true, "tags": ["a"], "none": null}\n\n{"n": 4.5}\n', "q.jsonl")
    assert rows == [{"n": "3", "ok": "true", "tags": '["a"]', "none": ""}, {"n": "4.5"}]
    assert inputs.parse(b'[{"q": "a"}, {"q": "b"}]', "q.json") == [{"q": "a"}, {"q": "b"}]
    assert inputs.parse(b'{"inputs": [{"q": "a"}]}', "q.json") == [{"q": "a"}]


@pytest.mark.parametrize("data,name,message", [
    (b"", "q.csv", "q.csv is empty"),
    (b"  \n", "q.jsonl", "is empty"),
    (b"country,expected\n", "q.csv", "a header but no rows"),
    (b"country,expected\nFrance,Paris\nPeru\n", "q.csv", "line 3: 1 fields, but the header has 2"),
    (b"country,expected\nFrance,Paris,extra\n", "q.csv", "line 2: 3 fields"),
    (b"a,a\n1,2\n", "q.csv", "the column 'a' appears twice"),
    (b"a,\n1,2\n", "q.csv", "every column needs a name"),
    (b"caf\xe9,x\n1,2\n", "q.csv", "not UTF-8 text (byte 3)"),
    (b'{"a": 1}\n{"a": \n', "q.jsonl", "line 2: not valid JSON"),
    (b'{"a": 1}\n[1, 2]\n', "q.jsonl", "line 2: expected an object"),
    (b'{"a": 1}', "q.json", "expected a JSON list of objects"),
    (b'[{"a": 1}, 5]', "q.json", "item 2: expected an object"),
    (b'{"a": "x\\u0000y"}\n', "q.jsonl", "NUL character"),
    (b"a\n1\n", "q.txt", "inputs come from a .csv, .jsonl or .json file"),
])
def test_bad_input_files_get_one_clear_error(data, name, message):
    with pytest.raises(SpreadError) as error:
        inputs.parse(data, name)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_too_many_inputs_are_refused(monkeypatch):
    monkeypatch.setattr(inputs, "MAX_INPUTS", 3)
    with pytest.raises(SpreadError, match="4 inputs, more than the limit of 3"):
        inputs.parse(b"q\n1\n2\n3\n4\n", "q.csv")


def test_var_pairs_and_typed_rows():
    assert inputs.from_pairs(["country=Peru", "style=a=b"]) == {"country": "Peru", "style": "a=b"}
    with pytest.raises(SpreadError, match="NAME=VALUE"):
        inputs.from_pairs(["country"])
    rows = inputs.from_table([{"q": "a", "x": None}, {"q": "", "x": ""}, {"q": 2, "x": "b"}])
    assert rows == [{"q": "a", "x": ""}, {"q": "2", "x": "b"}]


def test_a_plan_renders_every_variant_for_every_input_and_counts_its_calls(store):
    spec = plan.validate(store, plan.RunSpec(
        variants=[plan.Variant("Capital of {{c}}?"), plan.Variant("Name the capital of {{ c }}.", "Be brief.", "terse")],
        inputs=[{"c": "France"}, {"c": "Peru", "expected": "Lima"}], models=["m"], temperatures=[0, 1], n=3,
    ), check_providers=False)
    assert spec.rendered() == {
        (0, 0): ("", "Capital of France?"), (0, 1): ("", "Capital of Peru?"),
        (1, 0): ("Be brief.", "Name the capital of France."), (1, 1): ("Be brief.", "Name the capital of Peru."),
    }
    assert spec.planned() == len(spec.cells()) == 2 * 2 * 1 * 2 * 3
    assert len(set(spec.cells())) == spec.planned()
    assert [v["label"] for v in spec.as_dict()["variants"]] == ["A", "terse"]


def test_a_plan_above_the_cap_is_refused_until_the_cap_is_raised(store):
    spec = plan.RunSpec(prompt="{{q}}", inputs=[{"q": str(i)} for i in range(100)], models=["m"],
                        temperatures=[0, 1], n=10, max_calls=1000)
    with pytest.raises(SpreadError, match="2,000 calls .* above the cap of 1,000"):
        plan.validate(store, spec, check_providers=False)
    spec.max_calls = 2000
    assert plan.validate(store, spec, check_providers=False).planned() == 2000


def test_two_variants_cannot_share_a_label(store):
    with pytest.raises(SpreadError, match="two prompt variants are labelled 'x'"):
        plan.validate(store, plan.RunSpec(variants=[plan.Variant("a", name="x"), plan.Variant("b", name="x")],
                                   models=["m"], temperatures=[1], n=1), check_providers=False)
