"""The real embedded models (a few tokens each), through litellm as other providers are."""

import asyncio
import json

import pytest

from core.store import Store, responses
from core.models import llm, local_llm
from core.run import plan, runner

pytestmark = pytest.mark.local_model

GEMMA = "local/gemma-3-270m"
INSTRUCT = local_llm.DEFAULT_MODEL
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
# A system message, a few-shot turn and the user's turn.
CONVERSATION = [{"role": "system", "content": "Answer with the city name only."},
                {"role": "user", "content": "What is the capital of France?"},
                {"role": "assistant", "content": "Paris"},
                {"role": "user", "content": "What is the capital of Italy?"}]


def test_completion_through_litellm_reports_tokens_and_costs_nothing():
    litellm = llm.get()
    response = litellm.completion(model=GEMMA, messages=QUESTION, temperature=0,
                                  seed=1, max_tokens=8)
    assert response.choices[0].message.content.strip()
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 8
    assert litellm.completion_cost(completion_response=response) == 0


def test_temperature_zero_with_a_seed_repeats_and_temperature_one_varies():
    async def answers(temperature, seeds):
        outs = await asyncio.gather(*[
            llm.sample(GEMMA, QUESTION, temperature=temperature, seed=s, max_tokens=16)
            for s in seeds])
        return [o.text for o in outs]

    cold = asyncio.run(answers(0.0, [5, 5, 6]))
    assert len(set(cold)) == 1
    same_seed_hot = asyncio.run(answers(1.0, [11, 11]))
    assert same_seed_hot[0] == same_seed_hot[1]
    hot = asyncio.run(answers(1.5, range(8)))
    assert len(set(hot)) > 1


@pytest.mark.parametrize("model", [GEMMA, INSTRUCT])
def test_streaming_reports_time_to_first_token_usage_and_max_tokens_cuts(model):
    out = asyncio.run(llm.sample(model, [{"role": "user", "content": "Tell a long story."}],
                                 temperature=1.0, seed=2, max_tokens=5))
    assert out.ttft_ms is not None and out.ttft_ms > 0 and out.text
    assert out.prompt_tokens > 0 and out.completion_tokens == 5 and out.finish_reason == "length"


def test_the_base_model_reads_a_conversation_as_questions_and_answers():
    text = local_llm.frame([{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "2+2?"}])
    assert text == "Be brief.\n\nQuestion: 2+2?\nAnswer:"
    text = local_llm.frame(CONVERSATION + [{"role": "tool", "content": "22 C"}])
    assert text == ("Answer with the city name only.\n\nQuestion: What is the capital of France?\n\nAnswer: Paris\n\n"
                    "Question: What is the capital of Italy?\n\nResult: 22 C\nAnswer:")
    assert local_llm.request(CONVERSATION, {}, GEMMA)["prompt"] == local_llm.frame(CONVERSATION)


def test_the_instruct_model_takes_the_conversation_as_it_is():
    sent = local_llm.request(CONVERSATION, {"temperature": 0}, INSTRUCT)
    assert sent["messages"] == CONVERSATION and "prompt" not in sent and "stop" not in sent
    out = asyncio.run(llm.sample(INSTRUCT, CONVERSATION, temperature=0.0, max_tokens=16, stream=False))
    assert "rome" in out.text.lower()
    assert out.prompt_tokens > 0 and out.completion_tokens > 0


def test_a_json_schema_constrains_the_instruct_model_and_the_base_model_refuses_it():
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
              "additionalProperties": False}
    response_format = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    out = asyncio.run(llm.sample(INSTRUCT, QUESTION, temperature=1.0, seed=3, max_tokens=40,
                                 params={"response_format": response_format}))
    assert list(json.loads(out.text)) == ["city"]
    assert local_llm.supports(INSTRUCT, "response_format") and not local_llm.supports(GEMMA, "response_format")
    assert not local_llm.supports(INSTRUCT, "tools") and not local_llm.supports(GEMMA, "tools")
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    with pytest.raises(Exception, match="takes no tools"):
        asyncio.run(llm.sample(INSTRUCT, QUESTION, temperature=0.0, max_tokens=4, params={"tools": tools}))
    with pytest.raises(Exception, match="takes no response format"):
        asyncio.run(llm.sample(GEMMA, QUESTION, temperature=0.0, max_tokens=4,
                               params={"response_format": {"type": "json_object"}}))


def test_a_small_run_on_both_embedded_models_is_stored(store):
    run_id = plan.create(store, plan.RunSpec(prompt="Name a colour.", models=[INSTRUCT, GEMMA],
                                      temperatures=[0.0, 1.0], n=1, max_tokens=6, seed=1))
    summary = asyncio.run(runner.execute(store, run_id))
    assert summary["responses"] == 4 and summary["errors"] == 0 and summary["cost_usd"] == 0
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
    assert all(r["cost_usd"] == 0 and r["completion_tokens"] and r["text"] for r in rows)
    assert sorted({r["model"] for r in rows}) == sorted([INSTRUCT, GEMMA])


def test_a_messages_file_runs_on_the_embedded_instruct_model_from_the_command_line(tmp_path):
    """The contract: `spread models --json` lists an embedded instruct model, and a run with a
    messages file (system, a few-shot turn, the user's turn) on it succeeds."""
    import subprocess
    import sys

    from conftest import ROOT

    def spread(*args):
        result = subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    listed = spread("models", "--json")
    ids = [m["id"] for m in (listed if isinstance(listed, list) else listed["models"])]
    instruct = next(i for i in ids if i.startswith("local/") and "instruct" in i)
    messages = tmp_path / "chat.json"
    messages.write_text(json.dumps(CONVERSATION[:-1] + [{"role": "user", "content": "What is the capital of {{country}}?"}]))
    inputs = tmp_path / "inputs.csv"
    inputs.write_text("country\nItaly\n")
    db = tmp_path / "cli.db"
    summary = spread("--db", str(db), "run", "--messages-file", str(messages), "--vars-file", str(inputs),
                     "--model", instruct, "--temperature", "0", "--n", "2", "--max-tokens", "8", "--json")
    assert summary["responses"] == 2 and summary["errors"] == 0
    with Store(db).connection() as conn:
        sent = json.loads(conn.execute("select messages from run_prompts").fetchone()[0])
        texts = [r[0] for r in conn.execute("select text from responses")]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[-1]["content"] == "What is the capital of Italy?"
    assert all("Rome" in text for text in texts), texts
