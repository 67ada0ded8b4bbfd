"""Model endpoints: the shared catalogue, runs across several servers, checks before a run,
rate limits, and LiteLLM proxy config import and export."""

import asyncio
import json
import shutil
import sqlite3
import time

import pytest

from conftest import ROOT
from core.store import Store, responses, runs
from core.config import SpreadError
from core.formats import litellm_config
from core.models import endpoints, limits
from core.models.endpoints import Endpoint
from core.run import plan, runner
from openai_stub import StubOpenAI


@pytest.fixture
def two_stubs():
    with StubOpenAI() as a, StubOpenAI() as b:
        yield a, b


def rows_of(store, run_id):
    with store.connection() as db:
        return responses.of_run(db, run_id)


def run_count(store) -> int:
    with store.connection() as db:
        return db["runs"].count


# --- two servers in one run -------------------------------------------------------------

def test_two_self_hosted_endpoints_each_get_their_share_with_their_own_settings(store, two_stubs, monkeypatch):
    a, b = two_stubs
    monkeypatch.setenv("TEAM_A_TOKEN", "team-a-secret-value")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient-openai-key")  # must not reach either server
    endpoints.add(store, Endpoint("vllm-a", "openai/served-a", api_base=a.base_url, key_env="TEAM_A_TOKEN",
                           params={"top_k": 40}, price_in=1.0, price_out=2.0))
    endpoints.add(store, Endpoint("ollama-b", "openai/served-b", api_base=b.base_url,
                           params={"reasoning_effort": "low", "response_format": {"type": "json_object"}},
                           max_concurrency=1, timeout_s=30))
    spec = plan.RunSpec(prompt="Capital of France?", models=["vllm-a", "ollama-b"], temperatures=[0.0, 1.0], n=3,
                        seed=5)
    run_id = plan.create(store, spec)
    # The catalogue changes after the run was planned: the run keeps what it was planned with.
    endpoints.update(store, "vllm-a", Endpoint("vllm-a", "openai/other", api_base="http://127.0.0.1:9/v1"))
    summary = asyncio.run(runner.execute(store, run_id))
    assert summary["responses"] == 12 and summary["errors"] == 0

    assert a.count() == 6 and b.count() == 6  # each exactly its share
    for request in a.requests:
        body = request["body"]
        assert body["model"] == "served-a" and body["top_k"] == 40 and "reasoning_effort" not in body
        assert request["headers"]["authorization"] == "Bearer team-a-secret-value"
    for request in b.requests:
        body = request["body"]
        assert body["model"] == "served-b" and body["reasoning_effort"] == "low" and "top_k" not in body
        assert body["response_format"] == {"type": "json_object"}
        assert request["headers"]["authorization"] == "Bearer no-key"  # not the ambient OpenAI key
    rows = rows_of(store, run_id)
    assert {r["model"] for r in rows} == {"vllm-a", "ollama-b"}  # the names the user chose
    for row in rows:
        if row["model"] == "vllm-a":
            expected = (row["prompt_tokens"] * 1.0 + row["completion_tokens"] * 2.0) / 1e6
            assert row["cost_usd"] == pytest.approx(expected) and row["provider_model"] == "served-a-2024-stub"
        else:
            assert row["cost_usd"] is None  # no price anywhere: unknown, never 0

    with store.connection() as db:
        stored = runs.get_run(db, run_id)["spec"]["endpoints"]
    assert stored["vllm-a"]["api_base"] == a.base_url and stored["vllm-a"]["key_env"] == "TEAM_A_TOKEN"
    assert stored["vllm-a"]["params"] == {"top_k": 40} and stored["vllm-a"]["price_in"] == 1.0
    assert stored["ollama-b"]["max_concurrency"] == 1 and stored["ollama-b"]["source"] == "catalogue"
    assert "team-a-secret-value" not in json.dumps(stored)


def test_a_bare_id_beside_an_endpoint_keeps_the_runs_api_base(store, two_stubs):
    a, b = two_stubs
    endpoints.add(store, Endpoint("team", "openai/served-a", api_base=a.base_url))
    run_id = plan.create(store, plan.RunSpec(prompt="Q?", models=["team", "openai/stub-b"], temperatures=[1.0], n=2,
                                      api_base=b.base_url))
    asyncio.run(runner.execute(store, run_id))
    assert a.count() == 2 and b.count() == 2
    assert {r["body"]["model"] for r in b.requests} == {"stub-b"}
    with store.connection() as db:
        stored = runs.get_run(db, run_id)["spec"]["endpoints"]
    assert stored["openai/stub-b"] == Endpoint("openai/stub-b", "openai/stub-b", api_base=b.base_url).settings()


def test_an_endpoint_caps_its_own_calls_in_flight(store, stub):
    stub.latency_s = 0.1
    endpoints.add(store, Endpoint("narrow", "openai/served", api_base=stub.base_url, max_concurrency=2))
    run_id = plan.create(store, plan.RunSpec(prompt="Q?", models=["narrow"], temperatures=[1.0], n=8, concurrency=8,
                                      stream=False))
    in_flight, peak = [0], [0]
    original = stub._answer

    def counting(body):
        in_flight[0] += 1
        peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.05)
        in_flight[0] -= 1
        return original(body)

    stub._answer = counting
    asyncio.run(runner.execute(store, run_id))
    assert stub.count() == 8 and peak[0] <= 2


# --- checks before a run ----------------------------------------------------------------

def test_a_cloud_endpoint_without_its_key_beside_a_self_hosted_one_is_refused_and_nothing_is_written(store, stub):
    endpoints.add(store, Endpoint("claude", "anthropic/claude-3-5-haiku-20241022"))
    endpoints.add(store, Endpoint("local-vllm", "openai/served", api_base=stub.base_url))
    spec = plan.RunSpec(prompt="Q?", models=["local-vllm", "claude"], temperatures=[1.0], n=3)
    with pytest.raises(SpreadError, match="endpoint 'claude': missing key for anthropic/") as caught:
        plan.create(store, spec)
    assert caught.value.field == "models"
    assert run_count(store) == 0 and stub.count() == 0


@pytest.mark.parametrize("endpoint,message", [
    (Endpoint("gone", "openai/x", api_base="http://127.0.0.1:9/v1"), "endpoint 'gone': api_base http://127.0.0.1:9/v1 "
                                                                      "is unreachable"),
    (Endpoint("keyed", "openai/x", api_base="STUB", key_env="TEAM_MISSING_KEY"),
     "endpoint 'keyed': its key variable TEAM_MISSING_KEY is not set"),
    (Endpoint("reads", "openai/x", api_base="STUB", params={"extra_headers": {"X-Api-Key": "os.environ/NOPE"}}),
     "endpoint 'reads': the parameters read NOPE"),
])
def test_each_endpoint_is_checked_before_a_run_and_the_reason_names_it(store, stub, endpoint, message):
    if endpoint.api_base == "STUB":
        endpoint.api_base = stub.base_url
    endpoints.add(store, endpoint)
    with pytest.raises(SpreadError, match=message):
        plan.create(store, plan.RunSpec(prompt="Q?", models=[endpoint.name], temperatures=[1.0], n=1))
    assert run_count(store) == 0


def test_an_api_base_no_longer_hides_a_cloud_models_missing_key(store, stub):
    """The newcomer's run: two cloud ids and a local --api-base. Anthropic's key is still
    needed (an API base exempts only OpenAI-compatible servers), so nothing is written."""
    spec = plan.RunSpec(prompt="Q?", models=["openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022"],
                        temperatures=[1.0], n=3, api_base=stub.base_url)
    with pytest.raises(SpreadError, match="missing key for anthropic/claude-3-5-haiku-20241022"):
        plan.create(store, spec)
    assert run_count(store) == 0 and stub.count() == 0


def test_a_key_in_the_secrets_file_counts_and_is_sent(store, stub, spread_home):
    (spread_home / "secrets.toml").write_text('TEAM_VAULT_KEY = "from-the-secrets-file"\n')
    endpoints.add(store, Endpoint("vault", "openai/served", api_base=stub.base_url, key_env="TEAM_VAULT_KEY"))
    assert endpoints.readiness(endpoints.get(store, "vault"))["key"] == "set"
    run_id = plan.create(store, plan.RunSpec(prompt="Q?", models=["vault"], temperatures=[1.0], n=1))
    asyncio.run(runner.execute(store, run_id))
    assert stub.requests[0]["headers"]["authorization"] == "Bearer from-the-secrets-file"


# --- the catalogue ------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint,message", [
    (Endpoint("", "openai/x"), "needs a name"),
    (Endpoint("local/gemma-3-270m", "openai/x"), "embedded model"),
    (Endpoint("a", ""), "needs a litellm model id"),
    (Endpoint("a", "nosuch/model"), "unknown model id"),
    (Endpoint("a", "openai/x", api_base="ftp://x"), "not an http"),
    (Endpoint("a", "openai/x", key_env="sk-proj-abc123"), "never the key itself"),
    (Endpoint("a", "openai/x", params={"temperature": 0.2}), "set by the run"),
    (Endpoint("a", "openai/x", params={"api_key": "sk-1"}), "set by the run"),
    (Endpoint("a", "openai/x", params={"extra_headers": {"Authorization": "Bearer sk-1"}}), "looks like a credential"),
    (Endpoint("a", "openai/x", price_in=0.1), "both prices"),
    (Endpoint("a", "openai/x", price_in=-1, price_out=1), "at least 0"),
    (Endpoint("a", "openai/x", rpm=0), "above 0"),
    (Endpoint("a", "openai/x", max_concurrency=1.5), "whole number"),
    (Endpoint("a", "openai/x", timeout_s="soon"), "must be a number"),
])
def test_bad_endpoints_are_refused_with_one_line(store, endpoint, message):
    with pytest.raises(SpreadError, match=message) as caught:
        endpoints.add(store, endpoint)
    assert "sk-" not in str(caught.value)  # a key typed in the wrong place is never echoed
    assert endpoints.list_endpoints(store) == []


def test_add_edit_rename_duplicate_remove_and_resolve(store):
    endpoints.add(store, Endpoint("team", "openai/served", api_base="http://gpu-1:8000/v1", rpm=60))
    with pytest.raises(SpreadError, match="already exists"):
        endpoints.add(store, Endpoint("team", "openai/other"))
    endpoints.update(store, "team", Endpoint("team-llama", "openai/served", api_base="http://gpu-2:8000/v1"))
    assert endpoints.names(store) == ["team-llama"] and endpoints.get(store, "team-llama").api_base == "http://gpu-2:8000/v1"
    assert endpoints.duplicate(store, "team-llama").name == "team-llama copy"
    assert endpoints.duplicate(store, "team-llama").name == "team-llama copy 2"
    endpoints.remove(store, "team-llama copy")
    assert endpoints.names(store) == ["team-llama", "team-llama copy 2"]
    assert endpoints.resolve(store, "team-llama").source == "catalogue"
    bare = endpoints.resolve(store, "openai/gpt-4o-mini", "http://x/v1")
    assert (bare.source, bare.model, bare.api_base) == ("id", "openai/gpt-4o-mini", "http://x/v1")
    assert endpoints.resolve(store, "local/gemma-3-270m", "http://x/v1").api_base is None
    with pytest.raises(SpreadError, match="no endpoint named"):
        endpoints.remove(store, "nope")


def test_a_catalogue_price_overrides_the_settings_file_and_litellms_map(spread_home):
    (spread_home / "settings.toml").write_text(
        '[prices."openai/gpt-4o-mini"]\ninput_per_mtok = 9\noutput_per_mtok = 9\n')
    priced = Endpoint("mini", "openai/gpt-4o-mini", price_in=0.5, price_out=1.5, source="catalogue")
    assert priced.cost_usd(1_000_000, 1_000_000) == pytest.approx(2.0)
    assert Endpoint("mini", "openai/gpt-4o-mini").cost_usd(1_000_000, 0) == pytest.approx(9.0)
    assert Endpoint("self", "openai/my-own-llama").cost_usd(10, 10) is None
    assert Endpoint("free", "openai/my-own-llama", price_in=0, price_out=0).cost_usd(10, 10) == 0.0


def test_a_run_made_before_the_catalogue_migrates_and_still_reads_as_bare_ids(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(ROOT / "tests" / "data" / "schema5.db", path)
    with Store(path).connection() as db:
        assert "m009_endpoints" in [r[0] for r in db.execute("select name from _sqlite_migrations")]
        assert db["endpoints"].count == 0
        stored = runs.get_run(db, 2)["spec"]
    spec = plan.RunSpec.from_dict(stored)
    old = spec.endpoint("openai/stub-a")
    assert (old.source, old.model, old.api_base) == ("id", "openai/stub-a", stored["api_base"])
    endpoints.add(Store(path), Endpoint("team", "openai/served"))
    assert endpoints.names(Store(path)) == ["team"]


# --- rate limits ------------------------------------------------------------------------

def test_the_token_bucket_spaces_calls_on_a_fake_clock():
    now = [100.0]
    bucket = limits.TokenBucket(rate=6, period_s=60, clock=lambda: now[0])
    assert bucket.try_take() and not bucket.try_take()
    assert bucket.wait_s() == pytest.approx(10.0)
    now[0] += 9.99
    assert not bucket.try_take()
    now[0] += 0.01
    assert bucket.try_take()
    now[0] += 300  # idle: the bucket holds one token, not a burst
    assert bucket.try_take() and not bucket.try_take()


def max_in_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times))


def test_a_requests_per_minute_limit_holds_on_the_server_without_slowing_the_other_endpoint(store, two_stubs, monkeypatch):
    """At most R calls in any window, counted where they arrive: the stub. The window is
    shortened to 4 s (limits.PERIOD_S) so that the test takes seconds; a 429 retry counts too."""
    a, b = two_stubs
    window, rate = 4.0, 8
    monkeypatch.setattr(limits, "PERIOD_S", window)
    endpoints.add(store, Endpoint("limited", "openai/served", api_base=a.base_url, rpm=rate))
    endpoints.add(store, Endpoint("free", "openai/served", api_base=b.base_url))
    a.inject("429")  # the first call is refused once and retried: the retry waits its turn too
    run_id = plan.create(store, plan.RunSpec(prompt="Q?", models=["limited", "free"], temperatures=[1.0], n=9,
                                      concurrency=4, backoff_base_s=0.01, backoff_max_s=0.02))
    started = time.time()
    summary = asyncio.run(runner.execute(store, run_id))
    assert summary["responses"] == 18 and summary["errors"] == 0
    arrivals = [r["t"] for r in a.requests]
    assert len(arrivals) == 10
    observed = max_in_window(arrivals, window)
    gaps = [round(y - x, 3) for x, y in zip(arrivals, arrivals[1:])]
    tightest = min(y - x for x, y in zip(arrivals, arrivals[rate:]))
    print(f"rate limit {rate} per {window:g} s: at most {observed} calls in any window; {rate + 1} calls spanned "
          f"at least {tightest:.3f} s; gaps {gaps}")
    assert observed <= rate
    # Not slower than the limit asks: 10 calls, 0.5 s apart (plus the margin).
    interval = (window + limits.margin_s(window)) / rate
    assert 9 * interval - 0.05 <= arrivals[-1] - arrivals[0] < 9 * interval + 1.0
    # The unlimited endpoint beside it was not held back.
    assert max(r["t"] for r in b.requests) < started + 3


# --- LiteLLM proxy config ---------------------------------------------------------------

GOOD = """
model_list:
  - model_name: team-llama
    litellm_params:
      model: openai/meta-llama/Llama-3.1-8B-Instruct
      api_base: http://gpu-1:8000/v1
      api_key: os.environ/TEAM_VLLM_KEY
      rpm: 60
      timeout: 300
      max_parallel_requests: 8
      input_cost_per_token: 0.0000002
      output_cost_per_token: 0.0000006
      top_k: 40
  - model_name: mini
    litellm_params:
      model: openai/gpt-4o-mini
      temperature: 0.2
litellm_settings:
  drop_params: true
"""

BAD = GOOD.replace("litellm_settings:\n  drop_params: true\n", "") + """
  - model_name: leaky
    litellm_params:
      model: openai/x
      api_key: sk-THIS-IS-A-REAL-LOOKING-KEY
  - model_name: nomodel
    litellm_params: {}
  - model_name: team-llama
    litellm_params:
      model: openai/again
  - model_name: typo
    litellm_params:
      model: nosuchprovider/x
  - model_name: slow
    litellm_params:
      model: openai/x
      rpm: lots
  - model_name: "*"
    litellm_params:
      model: openai/*
  - just a string
"""


def test_a_litellm_proxy_config_imports_with_a_preview_and_exports_back(store):
    preview = litellm_config.preview(store, GOOD)
    assert [e.name for e in preview.endpoints] == ["team-llama", "mini"]
    assert any("temperature ignored" in n for n in preview.notes)
    assert any("litellm_settings" in n for n in preview.notes)
    assert endpoints.names(store) == []  # a preview adds nothing
    litellm_config.apply(store, preview)
    llama = endpoints.get(store, "team-llama")
    assert (llama.model, llama.api_base, llama.key_env, llama.rpm, llama.timeout_s, llama.max_concurrency) == (
        "openai/meta-llama/Llama-3.1-8B-Instruct", "http://gpu-1:8000/v1", "TEAM_VLLM_KEY", 60, 300, 8)
    assert (llama.price_in, llama.price_out, llama.params) == (0.2, 0.6, {"top_k": 40})
    exported = litellm_config.export(endpoints.list_endpoints(store))
    assert "os.environ/TEAM_VLLM_KEY" in exported
    again = litellm_config.preview(store, exported, replace=True)
    assert [e.settings() for e in again.endpoints] == [e.settings() for e in endpoints.list_endpoints(store)]
    with pytest.raises(SpreadError, match="already exists"):
        litellm_config.preview(store, GOOD)


def test_a_config_with_bad_entries_imports_nothing_and_names_each_one(store):
    with pytest.raises(SpreadError) as caught:
        litellm_config.preview(store, BAD)
    message = str(caught.value)
    # Every problem of every entry at once, none "and N more"; a second team-llama is a model group.
    assert message.startswith("6 problems in 6 entries, nothing imported")
    assert "entry 3 ('leaky'): credential written in the file: api_key" in message
    assert "entry 4 ('nomodel'): no litellm_params.model" in message
    assert "entry 5" not in message
    assert "entry 6 ('typo')" in message and "unknown model id" in message
    assert "entry 7 ('slow')" in message and "entry 8 ('*'): wildcard" in message and "entry 9: not a mapping" in message
    assert "more" not in message
    assert caught.value.problems[0].startswith("entry 3 ('leaky')") and len(caught.value.problems) == 6
    assert "sk-THIS-IS" not in message
    assert endpoints.names(store) == []
    for text, error in [("model_list: [", "not valid YAML"), ("general_settings: {}", "no model_list"),
                        ("model_list: []", "empty")]:
        with pytest.raises(SpreadError, match=error):
            litellm_config.preview(store, text)


def test_an_import_is_one_transaction(store, monkeypatch):
    preview = litellm_config.preview(store, GOOD)
    endpoints.add(store, Endpoint("mini", "openai/gpt-4o-mini"))  # someone adds one of its names meanwhile
    with pytest.raises(SpreadError, match="already exists"):
        litellm_config.apply(store, preview)
    assert endpoints.names(store) == ["mini"]  # team-llama, written first, was rolled back
