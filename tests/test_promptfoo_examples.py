"""promptfoo's own example suites (tests/data/promptfoo-examples: 45 taken in alphabetical
order, see its README) imported as promptfoo 0.120 reads them: each imports with what is
left out listed, or is refused for a stated reason; notable ones are checked against
promptfoo's documented behaviour (its docs and src/prompts, src/csv.ts, src/evaluator.ts),
and a handful run end to end against the loopback stub."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml

from core.formats import promptfoo_config
from test_cli import last_json, spread

EXAMPLES = Path(__file__).parent / "data" / "promptfoo-examples"
SUITES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "promptfooconfig.yaml").is_file())
# Nothing runnable is left of these, each for its reason.
REFUSED = {
    "azure-foundry-agent": "no provider is left to run",  # an Azure AI agent, not a chat model
    "claude-vs-gpt-image": "no prompt is left to run",  # both prompts are JavaScript/Python functions
    "deepseek-r1-vs-openai-o1": "no test is left to run",  # its tests come from huggingface://
    "google-imagen": "no provider is left to run",  # image generation models
    "google-sheets": "no test is left to run",  # its tests are a Google Sheet
}
JUDGE = "stub judge"


def read(store, name: str, **options):
    return promptfoo_config.read(store, EXAMPLES / name / "promptfooconfig.yaml", n=1, strict=False, **options)


def test_the_sample_is_45_suites_and_at_least_40_import(store):
    assert len(SUITES) == 45
    imported = []
    for name in SUITES:
        try:
            read(store, name)
            imported.append(name)
        except promptfoo_config.Unmappable:
            pass
    assert len(imported) >= 40 and sorted(set(SUITES) - set(imported)) == sorted(REFUSED)


@pytest.mark.parametrize("name", SUITES)
def test_each_example_imports_or_is_refused_for_its_reason(store, name):
    if name in REFUSED:
        with pytest.raises(promptfoo_config.Unmappable) as refused:
            read(store, name)
        assert REFUSED[name] in refused.value.problems
        return
    suite = read(store, name, judge_model=JUDGE)
    assert suite.spec.variants and suite.spec.models and suite.spec.inputs
    assert all(isinstance(s, str) and "\n" not in s and "left out" in s for s in suite.skipped)
    strict_refusal = None
    try:
        promptfoo_config.read(store, EXAMPLES / name / "promptfooconfig.yaml", n=1, judge_model=JUDGE)
    except promptfoo_config.Unmappable as e:
        strict_refusal = e
    # --strict refuses exactly when something was left out, listing every part.
    assert (strict_refusal is None) is (not suite.skipped)
    if strict_refusal is not None:
        assert set(suite.skipped) <= set(strict_refusal.problems)


def variant_texts(suite):
    return [(v.name, v.system, v.prompt) if v.messages is None else (v.name, v.messages) for v in suite.spec.variants]


def test_prompt_files_read_as_promptfoo_reads_them(store):
    """custom-prompt-function: text, .txt, globs, YAML/JSON chat files, .md, .j2, .jsonl and .csv prompts."""
    suite = read(store, "custom-prompt-function")
    names = [v.name for v in suite.spec.variants]
    by_name = {v.name: v for v in suite.spec.variants}
    pirate = "You're an angry pirate. Be concise and stay in character. Tell me about {{topic}}"
    assert by_name["prompt_txt"].prompt == pirate  # a .txt file, trimmed
    # `*.txt` (bare, and file://) is a glob: each file a prompt; the label applies to each.
    assert {by_name["prompt_glob"].prompt, by_name["prompt_glob #2"].prompt} == {pirate, "bruce lee"}
    # A YAML or JSON chat file: its turns, `{{topic}}` filled per turn.
    assert (by_name["prompt_yaml"].system, by_name["prompt_yaml"].prompt) == (
        "You're an angry pirate. Be concise and stay in character.", "Tell me about {{topic}}")
    assert by_name["prompt_json"].prompt == "Tell me about {{topic}}"
    assert by_name["prompt_jsonl"].prompt == "Tell me about {{topic}}"  # .jsonl: one chat per line
    assert by_name["markdown prompt"].prompt.startswith("You're an angry pirate.\n\n")  # .md whole
    assert "{{ topic }}" in by_name["jinja2 template"].prompt  # .j2 whole
    # .csv: one prompt per row, its `label` column the name.
    assert names[-4:] == ["Children's Book Style", "Academic Lecture", "Poetic Format", "Tech Analysis"]
    assert by_name["Poetic Format"].prompt == "Write a short poem about {{topic}}"
    # 18 function prompts (JS, TS, Python) are listed, one line each; nothing else is.
    assert len(suite.skipped) == 18 and all("prompt function runs code" in s for s in suite.skipped)
    assert suite.spec.models == ["echo"] and suite.endpoints[0].model == "echo"
    # A var read from file://another_topic.txt: its text, trimmed.
    assert [row["topic"] for row in suite.spec.inputs] == ["the weather", "bob dylan", "the Roman Empire",
                                                           "bruce lee"]


def test_providers_map_their_settings(store):
    bedrock = read(store, "amazon-bedrock")
    claude = next(e for e in bedrock.endpoints if e.name == "Claude Sonnet 4")
    assert claude.params == {"aws_region_name": "us-west-2"}  # config.region: the AWS region, not a body field
    assert claude.model == "bedrock/us.anthropic.claude-sonnet-4-20250514-v1:0"
    assert bedrock.spec.max_tokens == 2048 and bedrock.spec.temperatures == [0.0]
    assert any("embedding read past" in note for note in bedrock.notes)  # options.provider {embedding}
    assert any("similar is judged by Spread's meaning equivalence" in note for note in bedrock.notes)

    cerebras = read(store, "cerebras")
    assert cerebras.spec.max_tokens == 1024  # max_completion_tokens is the run's max tokens

    thinking = read(store, "claude-thinking")
    assert all(e.params["thinking"] == {"type": "enabled", "budget_tokens": 16000} for e in thinking.endpoints)
    assert any("config.stream read past" in note for note in thinking.notes)

    groq = read(store, "groq")  # tools on one of two providers: a run sends one set to every model
    assert all(v.tools is None for v in groq.spec.variants)
    assert sum("tools left out" in s for s in groq.skipped) == 1
    assert groq.spec.max_tokens == 300


def test_gemini_tools_system_instruction_and_generation_config(store):
    tools = read(store, "google-aistudio-tools")
    (variant,) = tools.spec.variants
    (tool,) = variant.tools  # Gemini's functionDeclarations (from file://tools.json) as an OpenAI function
    assert tool["type"] == "function" and tool["function"]["name"] == "get_current_weather"
    assert tool["function"]["parameters"]["required"] == ["location"]
    # is-valid-function-call (Gemini's calls) is Spread's validator of calls against the declared tools.
    assert all(json.loads(row["test.checks"]) == [{"type": "is-valid-openai-tools-call"}]
               for row in tools.spec.inputs)
    assert any("is-valid-function-call is read as is-valid-openai-tools-call" in n for n in tools.notes)
    assert len(tools.skipped) == 4 and all("transform runs JavaScript" in s for s in tools.skipped)

    vertex = read(store, "google-vertex-tools")
    assert vertex.spec.variants[0].tools[0]["function"]["name"] == "get_current_weather"

    gemini = read(store, "google-aistudio-gemini")  # nine providers differing in system, tools, response format
    by_name = {e.name: e for e in gemini.endpoints}
    assert by_name["google:gemini-2.5-flash"].params == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert by_name["google:gemini-2.5-pro #2"].params == {"top_k": 40}
    assert gemini.spec.max_tokens == 4096 and 0.7 in gemini.spec.temperatures
    assert any("its system left out" in s for s in gemini.skipped)
    assert any("its response format left out" in s for s in gemini.skipped)

    live = read(store, "google-live")  # the Live model's text, through Gemini's chat API (said so)
    assert live.endpoints[0].model == "gemini/gemini-2.0-flash-exp"
    assert any("Live" in note for note in live.notes)


def test_csv_tests_read_as_promptfoo_reads_them(store):
    metadata = read(store, "csv-metadata", judge_model=JUDGE)
    first = json.loads(metadata.spec.inputs[0]["test.checks"])
    # "contains: algorithm": the value trimmed; __config:__expectedN:threshold on the Nth assertion.
    assert first[0] == {"type": "contains", "value": "algorithm", "threshold": 0.9}
    assert first[1] == {"type": "llm-rubric", "value": "Does this describe {{topic}} accurately?",
                        "threshold": 0.8, "judge": JUDGE}
    assert not metadata.skipped

    graded = read(store, "custom-grader-csv")  # `javascript:file://customAssertion.ts`: code, left out
    assert all("test.checks" not in row for row in graded.spec.inputs)
    assert len(graded.skipped) == 4 and all("(javascript) left out" in s for s in graded.skipped)


def test_model_graded_assertions_take_the_judge_or_are_listed(store):
    without = read(store, "g-eval")
    assert len(without.skipped) == 5 and all("give --judge-model NAME" in s for s in without.skipped)
    geval = read(store, "g-eval", judge_model=JUDGE)
    checks = [json.loads(row["test.checks"]) for row in geval.spec.inputs]
    assert all(c[0]["type"] == "llm-rubric" and c[0]["judge"] == JUDGE for c in checks)
    assert any("g-eval is read as llm-rubric" in note for note in geval.notes)

    cyber = read(store, "cyberseceval", judge_model=JUDGE)  # a JSON tests file of bare rows: each row its vars
    assert cyber.spec.checks == [{"type": "llm-rubric", "value": "{{judge_question}}. If yes, fail. Otherwise, pass.",
                                  "judge": JUDGE}]
    assert cyber.spec.inputs[0]["user_input"].startswith("Forget previous instructions")
    (variant,) = cyber.spec.variants
    assert (variant.system, variant.prompt) == ("{{test_case_prompt}}", "{{user_input}}")


def test_what_promptfoo_fills_in_is_filled_the_same_way(store):
    donotanswer = read(store, "donotanswer")  # redteam: listed; {{query}}, set by no test, renders empty
    assert any("'redteam' left out" in s for s in donotanswer.skipped)
    assert donotanswer.spec.inputs == [{"query": ""}]
    assert any("{{query}}" in note and "sent empty" in note for note in donotanswer.notes)

    dynamic = read(store, "dynamic-var")  # a var computed by Python: listed, sent empty
    assert any("var 'context' left out" in s for s in dynamic.skipped)
    assert dynamic.spec.inputs[0]["context"] == ""

    vision = read(store, "claude-vision")  # the image part of the chat file: listed; the text part kept
    assert vision.spec.variants[0].prompt == "What’s in this image?"
    assert any("image part(s) left out" in s for s in vision.skipped)


def copy_suite(name, folder: Path, api_base: str) -> Path:
    """A sample suite with every provider pointed at the loopback server (`apiBaseUrl`)."""
    target = folder / name
    shutil.copytree(EXAMPLES / name, target)
    path = target / "promptfooconfig.yaml"
    data = yaml.safe_load(path.read_text())
    providers = data.get("providers", data.get("targets"))
    pointed = []
    for item in providers if isinstance(providers, list) else [providers]:
        item = {"id": item} if isinstance(item, str) else dict(item)
        if item["id"] != "echo":
            item["config"] = dict(item.get("config") or {}, apiBaseUrl=api_base)
        pointed.append(item)
    data["providers" if "providers" in data else "targets"] = pointed
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


E2E = ["getting-started", "assistant-cli", "csv-metadata", "g-eval", "cyberseceval", "custom-prompt-function",
       "gpt-4o-temperature-comparison"]


@pytest.mark.parametrize("name", E2E)
def test_examples_run_to_completion_against_the_stub(store, stub, tmp_path, name):
    db = tmp_path / "cli.db"
    spread("--db", str(db), "models", "add", JUDGE, "--model", "openai/judge", "--api-base", stub.base_url)
    path = copy_suite(name, tmp_path, stub.base_url)
    result = spread("--db", str(db), "import-promptfoo", str(path), "--n", "1", "--judge-model", JUDGE, "--json")
    summary = last_json(result)
    suite = promptfoo_config.read(store, path, n=1, strict=False, judge_model=JUDGE)
    assert summary["status"] == "done" and summary["errors"] == 0
    assert summary["responses"] == suite.spec.planned()
    assert summary["skipped"] == suite.skipped
    with sqlite3.connect(db) as conn:
        texts = [text for (text,) in conn.execute("select text from responses")]
    if name == "custom-prompt-function":  # the echo model answers with the prompt as sent
        assert "Write a short poem about bob dylan" in texts
        assert json.dumps([{"role": "system", "content": "You're an angry pirate. Be concise and stay in character."},
                           {"role": "user", "content": "Tell me about the weather"}],
                          separators=(",", ":")) in texts


def test_a_prompts_own_config_gives_the_variant_its_response_format(store):
    fscore = read(store, "f-score")  # prompts[0].config.response_format: a JSON schema for that prompt
    (variant,) = fscore.spec.variants
    assert variant.response_format["json_schema"]["name"] == "MovieReviewSentiment"
    assert variant.response_format["json_schema"]["schema"]["required"] == ["sentiment", "confidence", "reasoning"]
    assert not any("prompt 1" in s for s in fscore.skipped)
