"""The real embedded model (a few tokens each), through litellm as other providers are."""

import asyncio

import pytest

from core import store

from core.run import llm, local_llm, plan, runner

pytestmark = pytest.mark.local_model

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def test_completion_through_litellm_reports_tokens_and_costs_nothing():
    litellm = llm.get()
    response = litellm.completion(model=local_llm.MODEL_ID, messages=QUESTION, temperature=0,
                                  seed=1, max_tokens=8)
    assert response.choices[0].message.content.strip()
    assert response.usage.prompt_tokens > 0 and 0 < response.usage.completion_tokens <= 8
    assert litellm.completion_cost(completion_response=response) == 0


def test_temperature_zero_with_a_seed_repeats_and_temperature_one_varies():
    async def answers(temperature, seeds):
        outs = await asyncio.gather(*[
            llm.sample(local_llm.MODEL_ID, QUESTION, temperature=temperature, seed=s, max_tokens=16)
            for s in seeds])
        return [o.text for o in outs]

    cold = asyncio.run(answers(0.0, [5, 5, 6]))
    assert len(set(cold)) == 1
    same_seed_hot = asyncio.run(answers(1.0, [11, 11]))
    assert same_seed_hot[0] == same_seed_hot[1]
    hot = asyncio.run(answers(1.5, range(8)))
    assert len(set(hot)) > 1


def test_streaming_reports_time_to_first_token_and_max_tokens_cuts():
    out = asyncio.run(llm.sample(local_llm.MODEL_ID, [{"role": "user", "content": "Tell a long story."}],
                                 temperature=1.0, seed=2, max_tokens=5))
    assert out.ttft_ms is not None and out.ttft_ms > 0
    assert out.completion_tokens == 5 and out.finish_reason == "length"


def test_messages_are_framed_as_question_and_answer():
    text = local_llm.frame([{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "2+2?"}])
    assert text == "Be brief.\n\nQuestion: 2+2?\nAnswer:"


def test_a_small_run_on_the_local_model_is_stored():
    run_id = plan.create(plan.RunSpec(prompt="Name a colour.", models=[local_llm.MODEL_ID],
                                          temperatures=[0.0, 1.0], n=2, max_tokens=6, seed=1))
    summary = asyncio.run(runner.execute(run_id))
    assert summary["responses"] == 4 and summary["errors"] == 0 and summary["cost_usd"] == 0
    with store.connect() as db:
        rows = store.responses(db, run_id)
    assert all(r["cost_usd"] == 0 and r["completion_tokens"] for r in rows)
