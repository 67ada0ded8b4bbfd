"""`spread import-promptfoo`: a promptfoo suite (chat prompt files, CSV tests, defaultTest,
weights, a threshold) mapped to a run and sampled against the loopback stub; a suite with
parts that cannot map is refused with the whole list, and nothing is written."""

import json
import sqlite3

import pytest

from core.store import Store
from core.evaluate import checks, rates, scoring
from core.formats import promptfoo_config
from core.models import endpoints
from test_cli import last_json, spread

PLANTED_KEY = "sk-planted-never-shown-0123456789"


def write_suite(folder, api_base, *, extra_provider=None, extra_test=None,
                prompts=("Capital of {{country}}? One word.", "file://chat.json")):
    (folder / "chat.json").write_text(json.dumps([
        {"role": "system", "content": "Answer with the city only."},
        {"role": "user", "content": "What is the capital of {{country}}?"}]))
    (folder / "tests.csv").write_text(
        "country,__expected1,__expected2\n"
        "France,contains:Paris,not-icontains:lyon\n"
        "Spain,Madrid,\n")
    providers = [{"id": "openai:chat:stub-a", "label": "stub a", "config": {"apiBaseUrl": api_base,
                                                                            "temperature": 0.7, "top_k": 20}}]
    if extra_provider:
        providers.append(extra_provider)
    tests = ["file://tests.csv", {
        "vars": {"country": "Italy"}, "threshold": 0.5,
        "assert": [{"type": "contains", "value": "Rome", "weight": 3},
                   {"type": "equals", "value": "{{ country | upper }}", "weight": 0, "metric": "exact"}]}]
    if extra_test:
        tests.append(extra_test)
    config = {
        "description": "capitals suite",
        "prompts": list(prompts),
        "providers": providers,
        "defaultTest": {"vars": {"style": "terse"}, "assert": [{"type": "max-length", "value": 200}]},
        "tests": tests,
    }
    import yaml

    path = folder / "promptfooconfig.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_a_suite_maps_to_variants_endpoints_inputs_and_checks(store, tmp_path):
    suite = promptfoo_config.read(store, write_suite(tmp_path, "http://127.0.0.1:9/v1"), n=3)
    spec = suite.spec
    assert [(v.prompt, v.system, v.name) for v in spec.variants] == [
        ("Capital of {{country}}? One word.", "", ""),
        ("What is the capital of {{country}}?", "Answer with the city only.", "chat")]
    (endpoint,) = suite.endpoints
    assert (endpoint.name, endpoint.model, endpoint.api_base, endpoint.params) == (
        "stub a", "openai/stub-a", "http://127.0.0.1:9/v1", {"top_k": 20})
    assert spec.models == ["stub a"] and spec.temperatures == [0.7] and spec.n == 3
    assert spec.checks == [{"type": "max-length", "value": 200}]  # defaultTest's, on every test
    assert [row["country"] for row in spec.inputs] == ["France", "Spain", "Italy"]
    assert all(row["style"] == "terse" for row in spec.inputs)  # defaultTest's vars
    france, spain, italy = (json.loads(row["test.checks"]) for row in spec.inputs)
    assert france == [{"type": "contains", "value": "Paris"}, {"type": "not-icontains", "value": "lyon"}]
    assert spain == [{"type": "equals", "value": "Madrid"}]  # a bare CSV value is an exact answer
    assert italy[0] == {"type": "contains", "value": "Rome", "weight": 3.0}
    assert italy[1]["weight"] == 0.0 and italy[1]["metric"] == "exact"
    assert spec.inputs[2]["test.threshold"] == "0.5" and "test.threshold" not in spec.inputs[0]
    assert spec.planned() == 2 * 3 * 1 * 1 * 3
    assert not (tmp_path / "spread.db").exists()  # reading writes nothing


def test_parts_that_cannot_map_are_all_listed_and_nothing_is_written(store, tmp_path):
    (tmp_path / "long.yaml").write_text("- {role: system, content: s}\n- {role: user, content: a}\n"
                                        "- {role: assistant, content: b}\n- {role: user, content: c}\n")
    path = write_suite(
        tmp_path, "http://127.0.0.1:9/v1",
        extra_provider={"id": "http://example.test/api", "config": {"apiKey": PLANTED_KEY}},
        extra_test={"vars": {"country": "Peru"}, "assert": [
            {"type": "javascript", "value": "output.length < 9"},
            {"type": "equals", "value": "Lima", "transform": "output.trim()"}]})
    text = path.read_text().replace("- file://chat.json", "- file://chat.json\n- file://long.yaml")
    text = text.replace("apiBaseUrl:", "apiKey: " + PLANTED_KEY + "\n    apiBaseUrl:")
    path.write_text(text)
    with pytest.raises(promptfoo_config.Unmappable) as refused:
        promptfoo_config.read(store, path)
    problems = refused.value.problems
    joined = "\n".join(problems)
    assert PLANTED_KEY not in joined and PLANTED_KEY not in str(refused.value)
    expected = ["config.apiKey is written in the file", "not a model provider Spread can call",
                "never runs code", "transform runs JavaScript"]
    for part in expected:
        assert part in joined, part
    assert all("\n" not in problem for problem in problems)
    assert not (tmp_path / "spread.db").exists() and endpoints.list_endpoints(store) == []

    result = spread("--db", str(tmp_path / "cli.db"), "import-promptfoo", str(path), "--strict", "--json",
                    check=False)
    assert result.returncode == 2
    out = last_json(result)
    assert out["written"] is False and len(out["unmappable"]) == len(problems)
    assert PLANTED_KEY not in result.stdout + result.stderr
    assert not (tmp_path / "cli.db").exists()
    plain = spread("--db", str(tmp_path / "cli.db"), "import-promptfoo", str(path), "--strict", check=False)
    assert plain.returncode == 2 and "nothing was written" in plain.stderr
    assert all(f"  - {problem}" in plain.stderr for problem in problems)
    # Without --strict the unmappable parts would be left out, but a key written in the file still refuses.
    lenient = last_json(spread("--db", str(tmp_path / "cli.db"), "import-promptfoo", str(path), "--json",
                               check=False))
    assert lenient["written"] is False and len(lenient["unmappable"]) == 1
    assert "config.apiKey is written in the file" in lenient["unmappable"][0]
    assert not (tmp_path / "cli.db").exists()


def test_import_promptfoo_runs_the_suite_through_the_stub(stub, tmp_path):
    db = tmp_path / "cli.db"
    path = write_suite(tmp_path, stub.base_url)
    dry = last_json(spread("--db", str(db), "import-promptfoo", str(path), "--n", "2", "--dry-run", "--json"))
    assert dry["planned"] == 2 * 3 * 2 and dry["endpoints"] == ["stub a"] and dry["dry_run"] is True
    assert not db.exists()

    summary = last_json(spread("--db", str(db), "import-promptfoo", str(path), "--n", "2", "--json"))
    assert summary["run_id"] == 1 and summary["responses"] == 12 and summary["errors"] == 0
    assert 0 <= summary["pass_rate"] <= 1
    # The endpoint is in the catalogue, its parameters kept, no key anywhere.
    listed = last_json(spread("--db", str(db), "models", "list", "--json"))
    assert any(e["name"] == "stub a" and e["params"] == {"top_k": 20} for e in listed)

    # Every answer's verdict is promptfoo's: each test's own asserts, defaultTest's, weights, threshold.
    results = scoring.stored_results(Store(db), 1)
    with sqlite3.connect(db) as conn:
        texts = dict(conn.execute("select id, text from responses"))
        inputs = dict(conn.execute("select id, input from responses"))
    by_answer = {}
    for row in results:
        by_answer.setdefault(row["response_id"], {})[json.loads(row["check_key"])["type"]] = row
    for rid, rows in by_answer.items():
        text, test = texts[rid], inputs[rid]
        assert bool(rows["max-length"]["passed"]) is (len(text) <= 200)
        if test == 0:
            assert bool(rows["contains"]["passed"]) is ("Paris" in text)
            assert bool(rows["not-icontains"]["passed"]) is ("lyon" not in text.lower())
        elif test == 1:
            assert bool(rows["equals"]["passed"]) is (text == "Madrid")
        else:
            assert rows["equals"]["passed"] == 1  # weight 0: never fails
    verdicts = scoring.verdicts(Store(db), 1, results)
    scores = rates.answer_scores(results)
    for rid, passed in verdicts.items():
        if inputs[rid] == 2:  # threshold 0.5: (3·contains + 1·max-length) / 4 of weight
            assert passed is (scores[rid] >= 0.5)
    assert summary["pass_rate"] == pytest.approx(sum(verdicts.values()) / len(verdicts), abs=1e-4)
    assert checks.from_dict({"type": "max-length", "value": 200}).key() in {r["check_key"] for r in results}


def test_the_playground_fills_its_plan_from_a_promptfoo_config(store, stub, tmp_path):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_input(key="promptfoo_path").input(str(write_suite(tmp_path, stub.base_url, extra_provider={
        "id": "python:provider.py"})))
    at.button(key="import_promptfoo").click().run()
    assert not at.exception
    assert "Not imported" in at.error[0].value and "not a model provider" in at.error[0].value
    assert endpoints.list_endpoints(store) == []

    at.text_input(key="promptfoo_path").input(str(write_suite(tmp_path, stub.base_url, prompts=["file://chat.json"])))
    at.button(key="import_promptfoo").click().run()
    assert not at.exception and not at.error
    assert at.text_area(key="system").value == "Answer with the city only."
    assert at.text_area(key="prompt_0").value == "What is the capital of {{country}}?"
    assert at.multiselect(key="models").value == ["stub a"]
    assert at.text_input(key="temperatures").value == "0.7"
    assert at.radio(key="inputs_source").value == "pasted text"
    rows = [json.loads(line) for line in at.text_area(key="inputs_pasted").value.splitlines()]
    assert [row["country"] for row in rows] == ["France", "Spain", "Italy"]
    italy = json.loads(rows[2]["test.checks"])  # defaultTest's check travels with every test
    assert italy[0] == {"type": "max-length", "value": 200} and italy[1]["weight"] == 3.0
    assert rows[2]["test.threshold"] == "0.5"
    assert [e.name for e in endpoints.list_endpoints(store)] == ["stub a"]


def test_jsonl_tests_list_vars_and_a_prompt_file_of_several_prompts(store, tmp_path):
    (tmp_path / "prompts.txt").write_text("Capital of {{country}}?\n---\nName the capital of {{country}}.\n")
    (tmp_path / "tests.jsonl").write_text(
        '{"vars": {"country": "France"}, "assert": [{"type": "icontains-any", "value": ["paris"]}]}\n'
        '{"country": "Peru"}\n')
    (tmp_path / "promptfooconfig.yaml").write_text(
        "prompts: file://prompts.txt\n"
        "providers: [{id: 'ollama:chat:llama3', config: {apiBaseUrl: 'http://127.0.0.1:9', seed: 4}}]\n"
        "tests:\n  - file://tests.jsonl\n  - vars: {country: [Chile, Spain]}\n")
    suite = promptfoo_config.read(store, tmp_path / "promptfooconfig.yaml", n=1)
    assert [v.name for v in suite.spec.variants] == ["prompts 1", "prompts 2"]
    assert suite.spec.variants[1].prompt == "Name the capital of {{country}}."
    assert [e.model for e in suite.endpoints] == ["ollama_chat/llama3"] and suite.spec.seed == 4
    assert [row["country"] for row in suite.spec.inputs] == ["France", "Peru", "Chile", "Spain"]
    assert json.loads(suite.spec.inputs[0]["test.checks"]) == [{"type": "icontains-any", "value": ["paris"]}]
    assert "test.checks" not in suite.spec.inputs[1]


def write_config(folder, config: dict, **files):
    import yaml

    for name, text in files.items():
        (folder / name.replace("__", ".")).write_text(text)
    path = folder / "promptfooconfig.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


PROVIDER = {"id": "openai:chat:stub", "config": {"apiBaseUrl": "http://127.0.0.1:9/v1"}}


@pytest.mark.parametrize("prompts", [["prompts.txt"], {"prompts.txt": "mine"}])
def test_a_bare_prompt_path_is_read_as_the_file(store, tmp_path, prompts):
    # promptfoo's maybeFilePath: a prompt ending in a file extension names a file.
    path = write_config(tmp_path, {"prompts": prompts, "providers": [PROVIDER], "tests": [{"vars": {"x": "1"}}]},
                        prompts__txt="First {{x}}\n---\nSecond {{x}}\n")
    suite = promptfoo_config.read(store, path)
    assert [v.prompt for v in suite.spec.variants] == ["First {{x}}", "Second {{x}}"]
    label = "mine" if isinstance(prompts, dict) else "prompts"
    assert [v.name for v in suite.spec.variants] == [f"{label} 1", f"{label} 2"]


def test_a_csv_prompt_file_is_one_prompt_per_row(store, tmp_path):
    path = write_config(tmp_path, {"prompts": ["file://prompts.csv"], "providers": [PROVIDER],
                                   "tests": [{"vars": {"x": "1"}}]},
                        prompts__csv='prompt,label\n"Say {{x}}, twice",twice\nSay {{x}},\n')
    suite = promptfoo_config.read(store, path)
    assert [(v.name, v.prompt) for v in suite.spec.variants] == [("twice", "Say {{x}}, twice"),
                                                                 ("prompts 2", "Say {{x}}")]


def test_csv_expected_cells_are_read_as_promptfoo_reads_them(store, tmp_path):
    cells = ["contains: algorithm ", "rouge-n:the reference", "is-xml", "factuality:Paris is the capital",
             "file://check.js", "icontains-any: red , blue", " plain value "]
    header = "topic," + ",".join(f"__expected{k}" for k in range(1, len(cells) + 1))
    path = write_config(tmp_path, {"prompts": ["About {{topic}}"], "providers": [PROVIDER],
                                   "tests": "file://tests.csv"},
                        tests__csv=header + "\nml," + ",".join(f'"{c}"' for c in cells) + "\n")
    with pytest.raises(promptfoo_config.Unmappable) as refused:  # strict: the unknown types refuse it
        promptfoo_config.read(store, path)
    joined = "\n".join(refused.value.problems)
    for part in ("(rouge-n) left out", "(is-xml) left out", "(javascript) left out", "give --judge-model"):
        assert part in joined, part

    suite = promptfoo_config.read(store, path, strict=False)
    (row,) = suite.spec.inputs
    assert json.loads(row["test.checks"]) == [
        {"type": "contains", "value": "algorithm"},  # trimmed, as promptfoo trims the cell and the value
        {"type": "icontains-any", "value": ["red", "blue"]},
        {"type": "equals", "value": "plain value"}]
    assert len(suite.skipped) == 4 and not any("equals" in s for s in suite.skipped)

    judged = promptfoo_config.read(store, path, strict=False, judge_model="my judge")
    factuality = json.loads(judged.spec.inputs[0]["test.checks"])[1]
    assert factuality["type"] == "llm-rubric" and factuality["judge"] == "my judge"
    assert "Paris is the capital" in factuality["value"]
    assert any("factuality is read as llm-rubric" in note for note in judged.notes)


def test_list_vars_of_other_than_text_are_passed_whole(store, tmp_path):
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    path = write_config(tmp_path, {"prompts": ["{{city}} {{numbers}} {{history}}"], "providers": [PROVIDER],
                                   "tests": [{"vars": {"city": ["Paris", "Rome"], "numbers": [1, 2.5, 3],
                                                       "history": history}}]})
    suite = promptfoo_config.read(store, path)
    assert [row["city"] for row in suite.spec.inputs] == ["Paris", "Rome"]  # text items: one test each
    assert all(json.loads(row["numbers"]) == [1, 2.5, 3] for row in suite.spec.inputs)
    assert all(json.loads(row["history"]) == history for row in suite.spec.inputs)


def test_provider_tools_schema_tokens_region_and_reasoning_map(store, tmp_path):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": schema}}]
    provider = {"id": "openai:chat:stub", "config": {
        "apiBaseUrl": "http://127.0.0.1:9/v1", "max_completion_tokens": 77, "reasoning_effort": "low",
        "response_format": "file://schema.json", "tools": "file://tools.json", "tool_choice": "get_weather"}}
    bedrock = {"id": "bedrock:anthropic.claude-x", "config": {"region": "eu-west-1", "tools": tools,
                                                              "response_format": "file://schema.json",
                                                              "tool_choice": "get_weather",
                                                              "thinking": {"type": "enabled", "budget_tokens": 64}}}
    path = write_config(tmp_path, {"prompts": ["Weather?"], "providers": [provider, bedrock]},
                        schema__json=json.dumps({"type": "json_schema", "json_schema": {
                            "name": "weather", "schema": schema}}),
                        tools__json=json.dumps(tools))
    suite = promptfoo_config.read(store, path)
    (variant,) = suite.spec.variants
    assert variant.response_format == {"type": "json_schema", "json_schema": {"name": "weather", "schema": schema}}
    assert variant.tools == tools and variant.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert suite.spec.max_tokens == 77  # max_completion_tokens: the run's max tokens
    stub, claude = suite.endpoints
    assert stub.params == {"reasoning_effort": "low"}
    assert claude.params == {"aws_region_name": "eu-west-1", "thinking": {"type": "enabled", "budget_tokens": 64}}


def test_the_graders_text_provider_judges_and_the_judge_model_overrides(store, tmp_path):
    grader = {"id": "openai:chat:grader", "config": {"apiBaseUrl": "http://127.0.0.1:9/v1"}}
    config = {"prompts": ["Capital of France?"], "providers": [PROVIDER],
              "defaultTest": {"options": {"provider": {"text": grader, "embedding": "openai:embedding:e"}},
                              "assert": [{"type": "llm-rubric", "value": "names Paris"}]}}
    path = write_config(tmp_path, config)
    suite = promptfoo_config.read(store, path)
    assert suite.spec.checks == [{"type": "llm-rubric", "value": "names Paris", "judge": "openai:chat:grader"}]
    assert "openai:chat:grader" in [e.name for e in suite.endpoints]  # the grader joins the catalogue
    assert any("embedding read past" in note for note in suite.notes)
    assert promptfoo_config.read(store, path, judge_model="other").spec.checks[0]["judge"] == "other"

    del config["defaultTest"]["options"]
    path = write_config(tmp_path, config)
    with pytest.raises(promptfoo_config.Unmappable) as refused:
        promptfoo_config.read(store, path)
    assert "no grader is named" in refused.value.problems[0]
    assert promptfoo_config.read(store, path, strict=False).spec.checks == []


def test_scenarios_assertion_templates_and_message_prompts(store, tmp_path):
    config = {
        "prompts": [{"id": "chat", "label": "chat", "raw": [{"role": "system", "content": "Be brief."},
                                                            {"role": "user", "content": "Translate {{text}}"}]},
                    "- role: user\n  content: 'Say {{text}} in {{language}}'"],
        "providers": [PROVIDER],
        "assertionTemplates": {"short": {"type": "max-length", "value": 50}},
        "scenarios": [{"config": [{"vars": {"language": "French"}}, {"vars": {"language": "German"}}],
                       "tests": [{"vars": {"text": "hello"}, "assert": [{"$ref": "#/assertionTemplates/short"}]},
                                 {"vars": {"text": "bye"}}]}],
    }
    suite = promptfoo_config.read(store, write_config(tmp_path, config))
    chat, said = suite.spec.variants
    assert (chat.name, chat.system, chat.prompt) == ("chat", "Be brief.", "Translate {{text}}")
    assert said.prompt == "Say {{text}} in {{language}}"  # a YAML chat string: its user turn
    assert [(r["language"], r["text"]) for r in suite.spec.inputs] == [
        ("French", "hello"), ("French", "bye"), ("German", "hello"), ("German", "bye")]
    assert json.loads(suite.spec.inputs[0]["test.checks"]) == [{"type": "max-length", "value": 50}]


def test_the_cli_lists_what_it_left_out(tmp_path):
    path = write_config(tmp_path, {"prompts": ["Hi {{name}}"], "providers": [PROVIDER, "http://example.test/api"],
                                   "redteam": {"plugins": ["x"]},
                                   "tests": [{"vars": {"name": "Bo"}, "assert": [
                                       {"type": "javascript", "value": "output.length < 9"},
                                       {"type": "contains", "value": "Bo"}]}]})
    plain = spread("--db", str(tmp_path / "cli.db"), "import-promptfoo", str(path), "--dry-run")
    assert "left out of" in plain.stdout and "(javascript) left out" in plain.stdout
    assert "'redteam' left out" in plain.stdout and "not a model provider Spread can call" in plain.stdout
    out = last_json(spread("--db", str(tmp_path / "cli.db"), "import-promptfoo", str(path), "--dry-run", "--json"))
    assert len(out["skipped"]) == 3 and out["checks"] == 1
    assert not (tmp_path / "cli.db").exists()


def test_the_echo_model_answers_with_the_prompt():
    import asyncio

    from core.models import llm, catalogue

    one = asyncio.run(llm.sample(llm.ECHO_MODEL, [{"role": "user", "content": "Hi Bo"}], temperature=0.5))
    assert one.text == "Hi Bo" and one.finish_reason == "stop"
    turns = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert json.loads(asyncio.run(llm.sample(llm.ECHO_MODEL, turns, temperature=0)).text) == turns
    assert catalogue.cost_usd(llm.ECHO_MODEL, 0, 0) == 0.0
    catalogue.check_model(llm.ECHO_MODEL)  # no key, no server


def test_assertion_values_and_providers_read_from_files(store, tmp_path):
    path = write_config(tmp_path, {
        "prompts": ["Capital of {{country}}?"], "providers": ["file://providers.yaml"],
        "tests": [{"vars": {"country": "France"}, "assert": [
            {"type": "contains", "value": "file://expected.txt"},
            {"type": "contains-all", "value": "file://words.yaml"},
            {"type": "equals", "value": "file://check.py:get_assert"}]}]},
        providers__yaml="- id: openai:chat:stub\n  label: from file\n  config: {apiBaseUrl: 'http://127.0.0.1:9/v1'}\n",
        expected__txt="  Paris\n", words__yaml="[Paris, France]\n")
    suite = promptfoo_config.read(store, path, strict=False)
    assert [e.name for e in suite.endpoints] == ["from file"]
    assert json.loads(suite.spec.inputs[0]["test.checks"]) == [
        {"type": "contains", "value": "Paris"}, {"type": "contains-all", "value": ["Paris", "France"]}]
    assert suite.skipped == ["test 1 assert 3 (equals) left out: its value is computed by check.py:get_assert; "
                             "Spread never runs code"]


def test_a_graders_endpoint_from_the_suite_judges_through_the_stub(stub, tmp_path):
    stub.answers = ['{"pass": true, "score": 1, "reason": "names Paris"}']
    grader = {"id": "openai:chat:grader", "label": "suite grader", "config": {"apiBaseUrl": stub.base_url}}
    path = write_config(tmp_path, {
        "prompts": ["Capital of France?"],
        "providers": [{"id": "openai:chat:stub", "config": {"apiBaseUrl": stub.base_url}}],
        "defaultTest": {"options": {"provider": grader}, "assert": [{"type": "llm-rubric", "value": "names Paris"}]}})
    db = tmp_path / "cli.db"
    summary = last_json(spread("--db", str(db), "import-promptfoo", str(path), "--n", "2", "--json"))
    assert summary["errors"] == 0 and summary["skipped"] == [] and summary["pass_rate"] == 1.0
    listed = last_json(spread("--db", str(db), "models", "list", "--json"))
    assert {"suite grader", "openai:chat:stub"} <= {e["name"] for e in listed}


CHAT_TEMPLATE = """[
  {"role": "system", "content": {{ system_message | dump }}},
  {% for message in previous_messages %}
    {% for role, content in message %}
      {"role": "{{ role }}", "content": {{ content | dump }}},
    {% endfor %}
  {% endfor %}
  {"role": "user", "content": {{ question | dump }}}
]"""


def test_a_nunjucks_chat_file_is_rendered_per_test_as_promptfoo_does(store, tmp_path):
    """promptfoo's openai-chat-history shape: a JSON chat file that is JSON only once its
    loops are rendered; each test gets the conversation promptfoo would send."""
    path = write_config(tmp_path, {
        "prompts": ["file://prompt.json"], "providers": ["echo"],
        "defaultTest": {"vars": {"system_message": "file://system.txt", "previous_messages": [
            {"user": "Who founded Facebook?"}, {"assistant": "Mark Zuckerberg"}]}},
        "tests": [{"vars": {"question": "Did he found others?"}}, {"vars": {"question": 'Say "hi"'}}]},
        prompt__json=CHAT_TEMPLATE, system__txt="You are terse.\n")
    suite = promptfoo_config.read(store, path)
    (variant,) = suite.spec.variants
    assert variant.messages == [{"role": "history", "from": "prompt messages"}]
    sent = [json.loads(row["prompt messages"]) for row in suite.spec.inputs]
    assert sent[0] == [{"role": "system", "content": "You are terse."},
                       {"role": "user", "content": "Who founded Facebook?"},
                       {"role": "assistant", "content": "Mark Zuckerberg"},
                       {"role": "user", "content": "Did he found others?"}]
    assert sent[1][-1] == {"role": "user", "content": 'Say "hi"'}

    db = tmp_path / "cli.db"
    summary = last_json(spread("--db", str(db), "import-promptfoo", str(path), "--n", "1", "--json"))
    assert summary["errors"] == 0 and summary["responses"] == 2
    with sqlite3.connect(db) as conn:
        answers = {json.loads(text)[-1]["content"] for (text,) in conn.execute("select text from responses")}
    assert answers == {"Did he found others?", 'Say "hi"'}  # the echo model: the messages as sent


def test_a_judge_that_cannot_be_called_is_refused_before_anything_is_written(stub, tmp_path):
    path = write_config(tmp_path, {
        "prompts": ["Capital of France?"],
        "providers": [{"id": "openai:chat:stub", "config": {"apiBaseUrl": stub.base_url}}],
        "tests": [{"assert": [{"type": "llm-rubric", "value": "names Paris"}]}]})
    db = tmp_path / "cli.db"
    result = spread("--db", str(db), "import-promptfoo", str(path), "--judge-model", "nowhere/judge-x", check=False)
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "the judge 'nowhere/judge-x'" in line
    assert not db.exists() or sqlite3.connect(db).execute("select count(*) from runs").fetchone()[0] == 0


@pytest.mark.parametrize("pid, model", [
    ("replicate:meta/llama-2-7b-chat", "replicate/meta/llama-2-7b-chat"),
    ("replicate:cjwbw/gemma-7b-it:2790a695e5dc", "replicate/cjwbw/gemma-7b-it:2790a695e5dc"),
    ("databricks:databricks-meta-llama-3-3-70b-instruct", "databricks/databricks-meta-llama-3-3-70b-instruct"),
    ("openai:responses:gpt-5", "openai/gpt-5"),
])
def test_more_provider_ids_map_to_litellm(store, tmp_path, pid, model):
    suite = promptfoo_config.read(store, write_config(tmp_path, {"prompts": ["Hi"], "providers": [pid]}), strict=False)
    assert [e.model for e in suite.endpoints] == [model] and not suite.skipped
