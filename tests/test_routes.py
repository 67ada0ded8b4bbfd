"""The routes of a call (core/models/llm.py): OpenAI-compatible servers straight over HTTP
without importing litellm, every other provider through litellm; prices read from
litellm's JSON map; and the commands that need neither start without them."""

import asyncio
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from core.models import direct, llm, catalogue


def python(code: str, env_db) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={**__import__("os").environ, "SPREAD_DB": str(env_db), "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_run_on_an_openai_compatible_server_never_imports_litellm(stub, tmp_path):
    result = python(f"""
import asyncio, json, sys
from core.run import plan, runner
from core.store import Store
store = Store()
spec = plan.RunSpec(prompt="What is the capital of France?", models=["openai/stub-a", "hosted_vllm/stub-b"],
                    temperatures=[0.0, 1.0], n=3, api_base={stub.base_url!r})
summary = asyncio.run(runner.execute(store, plan.create(store, spec)))
print(json.dumps({{"responses": summary["responses"], "litellm": "litellm" in sys.modules}}))
""", tmp_path / "s.db")
    assert result == {"responses": 12, "litellm": False}
    bodies = [r["body"] for r in stub.requests if r["path"].endswith("/chat/completions")]
    assert {b["model"] for b in bodies} == {"stub-a", "stub-b"}  # the provider prefix is not sent
    assert all(b["messages"][-1]["content"] == "What is the capital of France?" and "temperature" in b
               for b in bodies)


def test_commands_that_call_no_model_import_neither_litellm_nor_the_engine(tmp_path):
    result = python("""
import json, sys
from core.cli import main
main(["--help"]); main(["runs"])
print(json.dumps({m: m in sys.modules for m in ("litellm", "core.run.runner", "pandas", "aiohttp")}))
""", tmp_path / "s.db")
    assert result == {"litellm": False, "core.run.runner": False, "pandas": False, "aiohttp": False}


@pytest.mark.parametrize("stream", [True, False])
def test_other_providers_still_go_through_litellm(stub, monkeypatch, stream):
    monkeypatch.setattr(llm, "route_of", lambda model, api_base: "litellm")
    reply = asyncio.run(llm.sample("openai/stub-a", [{"role": "user", "content": "Capital of France?"}],
                                   temperature=1.0, api_base=stub.base_url, api_key="no-key", stream=stream))
    assert reply.text and reply.finish_reason and reply.completion_tokens
    assert (reply.ttft_ms is not None) == stream
    stub.inject("429-noretry")
    with pytest.raises(Exception) as raised:
        asyncio.run(llm.sample("openai/stub-a", [{"role": "user", "content": "Hi"}], temperature=1.0,
                               api_base=stub.base_url, api_key="no-key", stream=stream))
    assert type(raised.value).__module__.startswith("litellm")
    assert llm.classify(raised.value)[0] == "rate_limit"


def test_direct_errors_are_typed_like_litellm_ones(stub):
    expected = {"429-noretry": "rate_limit", "500": "server_error", "401": "auth", "404": "not_found",
                "400-context": "context_window"}
    for fault, kind in expected.items():
        stub.inject(fault)
        with pytest.raises(direct.ProviderError) as raised:
            asyncio.run(llm.sample("openai/stub-a", [{"role": "user", "content": "Hi"}], temperature=1.0,
                                   api_base=stub.base_url, api_key="no-key", stream=False))
        assert llm.classify(raised.value)[0] == kind, fault


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "gpt-4o", "mistral/mistral-small-latest",
                                   "gemini/gemini-2.5-flash", "anthropic.claude-opus-4-6-v1"])
def test_prices_read_from_the_json_map_are_litellm_prices(model):
    litellm = llm.get()
    assert model in litellm.model_cost or model.split("/", 1)[-1] in litellm.model_cost
    expected = sum(litellm.cost_per_token(model=model, prompt_tokens=1234, completion_tokens=567))
    assert catalogue.cost_usd(model, 1234, 567) == pytest.approx(expected, rel=1e-9)
    assert catalogue.cost_usd("openai/no-such-model-here", 1234, 567) is None  # unknown stays unknown
