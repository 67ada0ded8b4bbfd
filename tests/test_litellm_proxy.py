"""LiteLLM proxy configs as teams run them (Azure, Bedrock, model groups, keyless vLLM,
model_info, embedding entries), credentials that must never be stored, litellm's Router
over two loopback servers, and a team's own embedding and chat models for meaning."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from core import config
from core.store import Store, responses
from core.analyse import embed, second_opinion, spread
from core.config import SpreadError
from core.formats import litellm_config
from core.models import endpoints
from core.models.endpoints import Endpoint
from core.run import plan, runner
from openai_stub import StubOpenAI

PRODUCTION = """
model_list:
  - model_name: azure-gpt-4o                       # Azure: api_version unquoted, base from a variable
    litellm_params:
      model: azure/gpt-4o-prod
      api_base: os.environ/AZURE_API_BASE
      api_key: os.environ/AZURE_API_KEY
      api_version: 2024-08-01
      tpm: 450000
    model_info: {base_model: azure/gpt-4o, max_input_tokens: 128000, input_cost_per_token: 0.0000025,
                 output_cost_per_token: 0.00001}
  - model_name: claude                             # Bedrock with its own variables
    litellm_params:
      model: bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0
      aws_access_key_id: os.environ/CUSTOM_AWS_ACCESS_KEY_ID
      aws_secret_access_key: os.environ/CUSTOM_AWS_SECRET_ACCESS_KEY
      aws_region_name: os.environ/CUSTOM_AWS_REGION_NAME
  - model_name: gpt-4o                             # one model in three regions: a model group
    litellm_params: {model: azure/gpt-4o, api_base: os.environ/AZURE_EU_BASE, api_key: os.environ/AZURE_EU_KEY,
                     api_version: "2024-08-01", rpm: 600, tpm: 100000}
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o, api_base: os.environ/AZURE_US_BASE, api_key: os.environ/AZURE_US_KEY,
                     api_version: "2024-08-01", rpm: 900, tpm: 150000}
  - model_name: gpt-4o
    litellm_params: {model: azure/gpt-4o, api_base: os.environ/AZURE_JP_BASE, api_key: os.environ/AZURE_JP_KEY,
                     api_version: "2024-08-01", rpm: 300, tpm: 50000}
    model_info: {id: tokyo}
  - model_name: team-llama                         # a keyless vLLM server
    litellm_params: {model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct, api_base: "http://127.0.0.1:9/v1"}
  - model_name: team-embed                         # an embedding entry
    litellm_params: {model: openai/bge-m3, api_base: "http://127.0.0.1:9/v1"}
    model_info: {mode: embedding}
  - model_name: pictures                           # not a chat or embedding model
    litellm_params: {model: dall-e-3}
    model_info: {mode: image_generation}
router_settings:
  routing_strategy: simple-shuffle
  cooldown_time: 30
  allowed_fails: 2
  redis_password: os.environ/REDIS_PASSWORD
"""

PLANTED_AD_TOKEN = "eyJ0eXAiOiJKV1Q-planted-azure-ad-token-5c1a"
PLANTED_AWS_SECRET = "wJalrXUtnFEMI-planted-aws-secret-9f3e"
LEAKY = f"""
model_list:
  - model_name: azure-ad
    litellm_params:
      model: azure/gpt-4o
      api_base: https://team.openai.azure.com
      azure_ad_token: {PLANTED_AD_TOKEN}
  - model_name: bedrock
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
      aws_secret_access_key: {PLANTED_AWS_SECRET}
"""


def test_a_production_proxy_config_imports_as_it_is(store):
    preview = litellm_config.preview(store, PRODUCTION)
    assert [e.name for e in preview.endpoints] == ["azure-gpt-4o", "claude", "gpt-4o", "team-llama", "team-embed"]
    assert preview.skipped == ["entry 8 ('pictures'): mode image_generation skipped (Spread uses chat and "
                               "embedding endpoints)"]
    assert any("api_version: YAML read the unquoted 2024-08-01 as a date" in n for n in preview.notes)
    assert any("redis_password" in n for n in preview.notes)  # ignored, and never kept
    litellm_config.apply(store, preview)

    azure = endpoints.get(store, "azure-gpt-4o")
    assert (azure.api_base, azure.key_env, azure.params, azure.tpm) == (
        "os.environ/AZURE_API_BASE", "AZURE_API_KEY", {"api_version": "2024-08-01"}, 450000)
    assert azure.info == {"base_model": "azure/gpt-4o", "max_input_tokens": 128000,
                          "input_cost_per_token": 0.0000025, "output_cost_per_token": 0.00001}
    assert (azure.price_in, azure.price_out) == (2.5, 10.0)

    group = endpoints.get(store, "gpt-4o")
    assert [d["name"] for d in group.deployments] == ["azure/gpt-4o @ AZURE_EU_BASE", "azure/gpt-4o @ AZURE_US_BASE",
                                                      "tokyo"]
    assert [(d["rpm"], d["tpm"], d["key_env"]) for d in group.deployments] == [
        (600, 100000, "AZURE_EU_KEY"), (900, 150000, "AZURE_US_KEY"), (300, 50000, "AZURE_JP_KEY")]
    assert (group.rpm, group.tpm) == (1800, 300000)
    assert group.router == {"routing_strategy": "simple-shuffle", "cooldown_time": 30, "allowed_fails": 2}
    assert endpoints.get(store, "team-embed").mode == "embedding" and endpoints.get(store, "team-llama").mode == "chat"

    # Nothing but variable names: the database holds no value of any of them.
    exported = litellm_config.export(endpoints.list_endpoints(store))
    again = litellm_config.preview(store, exported, replace=True)
    assert [e.settings() for e in again.endpoints] == [e.settings() for e in endpoints.list_endpoints(store)]


def test_readiness_checks_the_variables_an_entry_names(store, monkeypatch):
    litellm_config.apply(store, litellm_config.preview(store, PRODUCTION))
    for name in [n for n in os.environ if n.startswith(("AWS_", "AZURE_", "CUSTOM_AWS_"))]:
        monkeypatch.delenv(name)
    claude = endpoints.readiness(endpoints.get(store, "claude"), probe=False)
    assert claude["key"] == "missing"
    assert "CUSTOM_AWS_ACCESS_KEY_ID, CUSTOM_AWS_SECRET_ACCESS_KEY" in claude["problem"]
    assert "AWS_ACCESS_KEY_ID," not in claude["problem"].replace("CUSTOM_AWS_ACCESS_KEY_ID,", "")
    monkeypatch.setenv("CUSTOM_AWS_ACCESS_KEY_ID", "AKIA-test")
    monkeypatch.setenv("CUSTOM_AWS_SECRET_ACCESS_KEY", "secret-test")
    assert endpoints.readiness(endpoints.get(store, "claude"), probe=False)["problem"] == (
        "the parameters read CUSTOM_AWS_REGION_NAME, which is not set")
    monkeypatch.setenv("CUSTOM_AWS_REGION_NAME", "eu-west-1")
    assert endpoints.readiness(endpoints.get(store, "claude"), probe=False)["ready"]

    azure = endpoints.readiness(endpoints.get(store, "azure-gpt-4o"), probe=False)
    assert azure["problem"] == "its api_base reads AZURE_API_BASE, which is not set"
    monkeypatch.setenv("AZURE_API_BASE", "https://team.openai.azure.com")
    monkeypatch.setenv("AZURE_API_KEY", "azure-test-key")
    assert endpoints.readiness(endpoints.get(store, "azure-gpt-4o"), probe=False)["ready"]
    call = endpoints.how_to_call(endpoints.get(store, "azure-gpt-4o"))
    assert (call.api_base, call.api_key, call.params) == ("https://team.openai.azure.com", "azure-test-key",
                                                          {"api_version": "2024-08-01"})

    group = endpoints.readiness(endpoints.get(store, "gpt-4o"), probe=False)
    assert not group["ready"] and group["problem"].count("deployment ") == 3
    assert "deployment 'tokyo': its api_base reads AZURE_JP_BASE" in group["problem"]

    keyless = endpoints.readiness(endpoints.get(store, "team-llama"), probe=False)
    assert (keyless["key"], keyless["problem"]) == ("not needed", None)


def test_every_kind_of_written_credential_is_named_and_none_is_repeated(store):
    planted = "planted-credential-value-71"
    config_text = f"""
model_list:
  - model_name: vertex
    litellm_params:
      model: vertex_ai/gemini-1.5-pro
      vertex_project: team-project
      vertex_credentials: {{type: service_account, private_key: {planted}}}
  - model_name: bedrock
    litellm_params:
      model: bedrock/anthropic.claude-3-haiku-20240307-v1:0
      aws_access_key_id: os.environ/AWS_ACCESS_KEY_ID
      aws_secret_access_key: os.environ/AWS_SECRET_ACCESS_KEY
      aws_session_token: {planted}
  - model_name: entra
    litellm_params:
      model: azure/gpt-4o
      api_base: https://team.openai.azure.com
      tenant_id: os.environ/AZURE_TENANT_ID
      client_id: os.environ/AZURE_CLIENT_ID
      client_secret: {planted}
      extra_headers: {{Authorization: Bearer {planted}, X-Team: spread}}
    model_info: {{access_groups: [beta]}}
"""
    with pytest.raises(litellm_config.ImportRefused) as caught:
        litellm_config.preview(store, config_text)
    assert caught.value.problems == [
        "entry 1 ('vertex'): credential written in the file: vertex_credentials (give it as os.environ/NAME; the "
        "value was not imported)",
        "entry 2 ('bedrock'): credential written in the file: aws_session_token (give it as os.environ/NAME; the "
        "value was not imported)",
        "entry 3 ('entra'): credentials written in the file: client_secret, Authorization (give each as "
        "os.environ/NAME; the values were not imported)"]
    assert planted not in str(caught.value)
    fixed = config_text.replace(f"{{type: service_account, private_key: {planted}}}", "os.environ/VERTEX_JSON")
    fixed = fixed.replace(f"Bearer {planted}", "os.environ/TEAM_AUTH").replace(planted, "os.environ/TEAM_SECRET")
    vertex, bedrock, entra = litellm_config.preview(store, fixed).endpoints
    assert endpoints.credential_variables(vertex) == ["VERTEX_JSON"]
    assert endpoints.credential_variables(bedrock) == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TEAM_SECRET"]
    assert endpoints.credential_variables(entra) == ["AZURE_TENANT_ID", "TEAM_SECRET"]
    assert entra.params["extra_headers"] == {"Authorization": "os.environ/TEAM_AUTH", "X-Team": "spread"}


def test_every_problem_of_one_entry_is_listed_once(store):
    config_text = """
model_list:
  - model_name: bad
    litellm_params: {model: nosuchprovider/x, rpm: lots, timeout: -1, api_base: "ftp://x",
                     extra_body: {api_key: sk-planted-in-a-body}}
    model_info: {admin_token: planted-in-the-info}
"""
    with pytest.raises(litellm_config.ImportRefused) as caught:
        litellm_config.preview(store, config_text)
    problems = [p.removeprefix("entry 1 ('bad'): ") for p in caught.value.problems]
    assert problems[0] == ("credentials written in the file: api_key, model_info.admin_token (give each as "
                           "os.environ/NAME; the values were not imported)")
    assert [p.split(" ")[:2] for p in problems[1:]] == [["api_base", "'ftp://x'"], ["the", "requests"],
                                                        ["the", "timeout"], ["endpoint", "'bad':"]]
    assert "unknown model id 'nosuchprovider/x'" in problems[-1] and "planted" not in str(caught.value)


def test_a_keyless_server_with_api_key_none_gets_the_fix_that_fits(store):
    config_text = ("model_list:\n  - model_name: vllm\n    litellm_params:\n      model: openai/served\n"
                   "      api_base: http://gpu-1:8000/v1\n      api_key: none\n")
    with pytest.raises(litellm_config.ImportRefused) as caught:
        litellm_config.preview(store, config_text)
    assert caught.value.problems == ["entry 1 ('vllm'): api_key 'none' is a placeholder: for a server without a "
                                     "key, drop the api_key line; else give it as os.environ/NAME"]


def test_a_credential_list_is_read_by_name_and_its_written_values_refused(store):
    good = """
model_list:
  - model_name: azure
    litellm_params: {model: azure/gpt-4o, litellm_credential_name: azure-prod}
credential_list:
  - credential_name: azure-prod
    credential_values: {api_key: os.environ/AZURE_PROD_KEY, api_base: os.environ/AZURE_PROD_BASE,
                        api_version: "2024-08-01"}
"""
    azure = litellm_config.preview(store, good).endpoints[0]
    assert (azure.key_env, azure.api_base, azure.params) == ("AZURE_PROD_KEY", "os.environ/AZURE_PROD_BASE",
                                                             {"api_version": "2024-08-01"})
    with pytest.raises(litellm_config.ImportRefused) as caught:
        litellm_config.preview(store, good.replace("os.environ/AZURE_PROD_KEY", "sk-written-in-the-list"))
    assert "credential written in the file: api_key" in str(caught.value)
    assert "sk-written" not in str(caught.value)
    with pytest.raises(litellm_config.ImportRefused, match="'elsewhere' is not in the file's credential_list"):
        litellm_config.preview(store, good.replace("litellm_credential_name: azure-prod",
                                            "litellm_credential_name: elsewhere"))


def spread_cli(*args):
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ), timeout=180)


def test_written_credentials_are_refused_by_name_never_echoed_never_stored(store, tmp_path):
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(LEAKY, encoding="utf-8")
    good = tmp_path / "good.yaml"
    good.write_text(PRODUCTION, encoding="utf-8")
    assert spread_cli("models", "import", str(good)).returncode == 0
    held = sqlite3.connect(config.db_path())  # held open, the WAL stays on disk to be searched
    held.execute("select count(*) from endpoints").fetchone()

    outputs = []
    for args in ([], ["--json"], ["--dry-run"], ["--replace"]):
        result = spread_cli("models", "import", str(leaky), *args)
        assert result.returncode == 2
        outputs += [result.stdout, result.stderr]
        assert "azure_ad_token" in result.stderr and "aws_secret_access_key" in result.stderr
        assert "aws_access_key_id" not in result.stderr  # a reference is fine
    refusal = json.loads(outputs[2].strip().splitlines()[-1])
    assert refusal["added"] == [] and refusal["problems"] == [
        "entry 1 ('azure-ad'): credential written in the file: azure_ad_token (give it as os.environ/NAME; the "
        "value was not imported)",
        "entry 2 ('bedrock'): credential written in the file: aws_secret_access_key (give it as os.environ/NAME; "
        "the value was not imported)"]
    exported = spread_cli("models", "export")
    outputs += [exported.stdout, exported.stderr]
    listed = spread_cli("models", "list", "--json")
    outputs += [listed.stdout, listed.stderr]
    with pytest.raises(SpreadError):
        endpoints.add(store, Endpoint("direct", "azure/gpt-4o", params={"azure_ad_token": PLANTED_AD_TOKEN}))

    db = Path(config.db_path())
    files = [p for p in (db, Path(f"{db}-wal")) if p.exists()]
    assert Path(f"{db}-wal") in files
    for planted in (PLANTED_AD_TOKEN, PLANTED_AWS_SECRET):
        for text in outputs:
            assert planted not in text
        for path in files:
            assert planted.encode() not in path.read_bytes()
    held.close()
    assert {e.name for e in endpoints.list_endpoints(store)} == {"azure-gpt-4o", "claude", "gpt-4o", "team-llama",
                                                           "team-embed"}


def group_config(a: StubOpenAI, b: StubOpenAI) -> str:
    return f"""
model_list:
  - model_name: team-gpt
    litellm_params: {{model: openai/served, api_base: os.environ/STUB_A_BASE, api_key: os.environ/STUB_A_KEY,
                      rpm: 6000}}
    model_info: {{id: region-a}}
  - model_name: team-gpt
    litellm_params: {{model: openai/served, api_base: "{b.base_url}", api_key: os.environ/STUB_B_KEY, rpm: 6000}}
    model_info: {{id: region-b}}
router_settings: {{routing_strategy: simple-shuffle}}
"""


@pytest.mark.parametrize("stream", [True, False])
def test_a_model_group_spreads_a_run_over_its_deployments_through_the_router(store, monkeypatch, stream):
    with StubOpenAI() as a, StubOpenAI() as b:
        monkeypatch.setenv("STUB_A_BASE", a.base_url)
        monkeypatch.setenv("STUB_A_KEY", "key-of-region-a")
        monkeypatch.setenv("STUB_B_KEY", "key-of-region-b")
        litellm_config.apply(store, litellm_config.preview(store, group_config(a, b)))
        run_id = plan.create(store, plan.RunSpec(prompt="Capital of France?", models=["team-gpt"], temperatures=[1.0],
                                          n=24, seed=1, stream=stream))
        summary = asyncio.run(runner.execute(store, run_id))
        assert summary["responses"] == 24 and summary["errors"] == 0
        # Both deployments answered a share (simple-shuffle: all 24 on one has odds 2^-23).
        assert a.count() > 0 and b.count() > 0 and a.count() + b.count() == 24
        assert summary["deployments"] == {"team-gpt": {"region-a": a.count(), "region-b": b.count()}}
        for stub, key in ((a, "key-of-region-a"), (b, "key-of-region-b")):
            assert {r["headers"]["authorization"] for r in stub.requests} == {f"Bearer {key}"}
            assert {r["body"]["model"] for r in stub.requests} == {"served"}
        with store.connection() as db:
            rows = responses.of_run(db, run_id)
        assert {r["deployment"] for r in rows} == {"region-a", "region-b"}
        assert all(r["model"] == "team-gpt" for r in rows)
        # The Router registers its deployments in litellm's price map; an unknown model stays unknown, not $0.
        assert {r["cost_usd"] for r in rows} == {None} and summary["cost_usd"] is None


def embedding_stub_config(stub: StubOpenAI) -> str:
    return (f"model_list:\n  - model_name: team-embed\n    litellm_params: {{model: openai/bge-m3, "
            f"api_base: \"{stub.base_url}\"}}\n    model_info: {{mode: embedding}}\n")


def test_an_embedding_endpoint_clusters_a_run_and_its_vectors_are_cached(store, stub):
    stub.answers = ["Paris.", "Paris", "The capital is Paris.", "Lyon.", "Lyon"]
    litellm_config.apply(store, litellm_config.preview(store, embedding_stub_config(stub)))
    run_id = plan.create(store, plan.RunSpec(prompt="Capital of France?", models=["openai/stub"], temperatures=[1.0],
                                      n=12, seed=3, api_base=stub.base_url))
    assert asyncio.run(runner.execute(store, run_id))["responses"] == 12
    result = spread_cli("show", str(run_id), "--embeddings", "team-embed", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown["method"] == "endpoint:team-embed"
    [cell] = shown["cells"]
    clusters = {c["representative"].strip(".").split()[-1]: c["size"] for c in cell["clusters"]}
    assert set(clusters) == {"Paris", "Lyon"}  # the facts guard keeps two cities apart
    embedded = [r for r in stub.requests if r["path"] == "/v1/embeddings"]
    assert embedded and embedded[0]["body"]["model"] == "bge-m3"
    with store.connection() as db:
        cached = db.execute("select method, dims, count(*) from embeddings group by method, dims").fetchall()
    with store.connection() as db:
        distinct = {embed.normalise(r["text"]) for r in responses.of_run(db, run_id)}
    assert cached == [(embed.cache_key(store, "endpoint:team-embed"), 64, len(distinct))]  # one row per (model, text)
    analysis = spread.analyse_run(store, run_id, method="endpoint:team-embed", with_map=False)
    assert analysis.method == "endpoint:team-embed"
    assert len([r for r in stub.requests if r["path"] == "/v1/embeddings"]) == len(embedded)  # all from the cache


def test_a_run_can_default_to_an_embedding_endpoint_and_only_to_one(store, stub):
    litellm_config.apply(store, litellm_config.preview(store, embedding_stub_config(stub)))
    endpoints.add(store, Endpoint("chatty", "openai/served", api_base=stub.base_url))
    with pytest.raises(SpreadError, match="'team-embed' embeds text and gives no answers"):
        plan.create(store, plan.RunSpec(prompt="Q?", models=["team-embed"], temperatures=[1.0], n=2))
    with pytest.raises(SpreadError, match="'chatty' is not an embedding endpoint"):
        plan.create(store, plan.RunSpec(prompt="Q?", models=["chatty"], temperatures=[1.0], n=2, embeddings="chatty"))
    run_id = plan.create(store, plan.RunSpec(prompt="Q?", models=["chatty"], temperatures=[1.0], n=3, seed=1,
                                      embeddings="team-embed"))
    asyncio.run(runner.execute(store, run_id))
    assert spread.analyse_run(store, run_id, with_map=False).method == "endpoint:team-embed"
    assert any(r["path"] == "/v1/embeddings" for r in stub.requests)
    with pytest.raises(SpreadError, match="no endpoint named 'nowhere'"):
        embed.embed(["a"], "endpoint:nowhere", store)


def test_the_second_opinion_asks_a_catalogue_chat_endpoint(store, stub, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "judge-secret")
    stub.respond = lambda body: "SAME"
    endpoints.add(store, Endpoint("team-judge", "openai/judge-model", api_base=stub.base_url, key_env="JUDGE_KEY",
                           params={"top_k": 5}))
    judgement = second_opinion.judge([("Paris.", "It is Paris")], model="team-judge", question="Capital?", store=store)
    assert judgement.verdicts == [True] and judgement.calls == 1
    [request] = stub.requests
    assert request["body"]["model"] == "judge-model" and request["body"]["top_k"] == 5
    assert request["headers"]["authorization"] == "Bearer judge-secret"
    litellm_config.apply(store, litellm_config.preview(store, embedding_stub_config(stub)))
    with pytest.raises(SpreadError, match="a second opinion needs a chat endpoint"):
        second_opinion.completion_for(store, "team-embed")


def test_bench_clusters_measures_an_embedding_endpoint(store, stub):
    litellm_config.apply(store, litellm_config.preview(store, embedding_stub_config(stub)))
    result = subprocess.run([sys.executable, "bench/bench_clusters.py", "--methods", "exact", "--embeddings",
                             "team-embed", "--split", "dev", "--limit", "3", "--thresholds", "0.7", "--no-save"],
                            cwd=ROOT, capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert result.returncode == 0, result.stderr
    assert "endpoint:team-embed" in result.stdout and "3 questions" in result.stdout
    assert any(r["path"] == "/v1/embeddings" for r in stub.requests)


def test_pages_offer_the_teams_embedding_endpoint_and_show_model_groups(store, stub, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("STUB_A_KEY", "key-a")
    monkeypatch.setenv("STUB_B_KEY", "key-b")
    litellm_config.apply(store, litellm_config.preview(store, embedding_stub_config(stub)))
    litellm_config.apply(store, litellm_config.preview(store, group_config(stub, stub).replace("os.environ/STUB_A_BASE",
                                                                                 f'"{stub.base_url}"')))
    run_id = plan.create(store, plan.RunSpec(prompt="Capital of France?", models=["openai/stub"], temperatures=[1.0],
                                      n=4, seed=1, api_base=stub.base_url, embeddings="team-embed"))
    asyncio.run(runner.execute(store, run_id))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/spread.py").run()
    assert not at.exception
    assert at.selectbox(key=f"embeddings_{run_id}").value == "team-embed"  # the run's own default
    assert any(r["path"] == "/v1/embeddings" for r in stub.requests)
    at.switch_page("pages/models.py").run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "deployments" in df.value.columns)
    rows = table.set_index("name")
    assert rows.loc["team-gpt", "deployments"] == "region-a, region-b"
    assert rows.loc["team-embed", "mode"] == "embedding"
    group_run = plan.create(store, plan.RunSpec(prompt="Q?", models=["team-gpt"], temperatures=[1.0], n=4, seed=1))
    asyncio.run(runner.execute(store, group_run))
    at.switch_page("pages/runs.py").run()
    next(s for s in at.selectbox if s.label == "Open run").set_value(group_run).run()
    assert not at.exception
    answers = next(df.value for df in at.dataframe if "text" in df.value.columns)
    assert set(answers["deployment"]) <= {"region-a", "region-b"} and len(answers) == 4


def test_a_failing_deployment_is_cooled_down_by_the_router_and_the_run_loses_nothing(store):
    with StubOpenAI() as down, StubOpenAI() as up:
        down.fail_rate = {"503": 1.0}
        config_text = f"""
model_list:
  - model_name: team-gpt
    litellm_params: {{model: openai/served, api_base: "{down.base_url}"}}
    model_info: {{id: down}}
  - model_name: team-gpt
    litellm_params: {{model: openai/served, api_base: "{up.base_url}"}}
    model_info: {{id: up}}
router_settings: {{allowed_fails: 0, cooldown_time: 60}}
"""
        litellm_config.apply(store, litellm_config.preview(store, config_text))
        run_id = plan.create(store, plan.RunSpec(prompt="Q?", models=["team-gpt"], temperatures=[1.0], n=12, seed=1,
                                          concurrency=1, backoff_base_s=0.01, backoff_max_s=0.02))
        summary = asyncio.run(runner.execute(store, run_id))
    assert summary["responses"] == 12 and summary["errors"] == 0
    assert summary["deployments"] == {"team-gpt": {"up": 12}}
    assert down.count() <= 1  # one failure, then the Router's cooldown keeps it out


PLANTED_URL_PASSWORD = "planted-url-password-42"
PLANTED_URL_KEY = "planted-url-key-17"


def test_a_credential_inside_api_base_is_refused_never_echoed_stored_listed_or_exported(store, tmp_path):
    leaky = tmp_path / "leaky.yaml"
    leaky.write_text(f"""
model_list:
  - model_name: azure-in-the-url
    litellm_params:
      model: azure/gpt-4o
      api_base: https://team:{PLANTED_URL_PASSWORD}@team.openai.azure.com/v1?api-key={PLANTED_URL_KEY}
  - model_name: signed
    litellm_params:
      model: openai/served
      base_url: "https://gpu.example.com/v1?api-version=2024-08-01&sig={PLANTED_URL_KEY}"
  - model_name: fine
    litellm_params: {{model: openai/served, api_base: "https://gpu.example.com/v1?api-version=2024-08-01"}}
""", encoding="utf-8")
    outputs = []
    for args in ([], ["--json"]):
        result = spread_cli("models", "import", str(leaky), *args)
        assert result.returncode == 2
        outputs += [result.stdout, result.stderr]
    assert json.loads(outputs[2].strip().splitlines()[-1])["problems"] == [
        "entry 1 ('azure-in-the-url'): credentials written in the file: api_base (user info), api_base (query "
        "parameter api-key) (give each as os.environ/NAME; the values were not imported)",
        "entry 2 ('signed'): credential written in the file: base_url (query parameter sig) (give it as "
        "os.environ/NAME; the value was not imported)"]
    # the catalogue refuses it the same way, by every other door (CLI, page, API)
    with pytest.raises(SpreadError, match="api_base carries a credential") as refused:
        endpoints.add(store, Endpoint("direct", "openai/served",
                               api_base=f"https://u:{PLANTED_URL_PASSWORD}@gpu.example.com/v1"))
    outputs.append(str(refused.value))
    added = spread_cli("models", "add", "cli", "--model", "openai/served", "--api-base",
                       f"https://gpu.example.com/v1?key={PLANTED_URL_KEY}")
    assert added.returncode == 2 and "api_base carries a credential (query parameter key)" in added.stderr
    outputs += [added.stdout, added.stderr]
    # nor is it stored in a run's plan, which records its API base
    with pytest.raises(SpreadError, match="the API base carries a credential") as refused:
        plan.create(store, plan.RunSpec(prompt="Hi", models=["openai/served"], temperatures=[1.0], n=1,
                                 api_base=f"https://gpu.example.com/v1?token={PLANTED_URL_KEY}"))
    outputs.append(str(refused.value))
    for listing in (spread_cli("models", "list", "--json"), spread_cli("models", "export")):
        outputs += [listing.stdout, listing.stderr]
    for text in outputs:
        assert PLANTED_URL_PASSWORD not in text and PLANTED_URL_KEY not in text
    db = Path(config.db_path())
    for path in (db, Path(f"{db}-wal")):
        if path.exists():
            data = path.read_bytes()
            assert PLANTED_URL_PASSWORD.encode() not in data and PLANTED_URL_KEY.encode() not in data
    assert endpoints.list_endpoints(store) == []


def test_tokenizer_tokens_are_not_credentials_and_shell_variables_get_the_litellm_form(store):
    config_text = """
model_list:
  - model_name: hf-llama
    litellm_params:
      model: huggingface/meta-llama/Llama-2-7b-chat-hf
      api_base: https://hf.example.com
      api_key: os.environ/HF_TOKEN
      initial_prompt_value: "\\n"
      roles: {system: {pre_message: "<|im_start|>system\\n", post_message: "<|im_end|>"}}
      final_prompt_value: "\\n"
      bos_token: "<s>"
      eos_token: "</s>"
      max_tokens: 20
"""
    (endpoint,) = litellm_config.preview(store, config_text).endpoints
    assert endpoint.params["bos_token"] == "<s>" and endpoint.params["eos_token"] == "</s>"
    shell = config_text.replace("os.environ/HF_TOKEN", "${HF_TOKEN}").replace(
        "https://hf.example.com", "$HF_API_BASE")
    with pytest.raises(litellm_config.ImportRefused) as caught:
        litellm_config.preview(store, shell)
    assert caught.value.problems == [
        "entry 1 ('hf-llama'): api_base: LiteLLM does not read $HF_API_BASE as a variable: write "
        "os.environ/HF_API_BASE",
        "entry 1 ('hf-llama'): api_key: LiteLLM does not read ${HF_TOKEN} as a variable: write os.environ/HF_TOKEN"]


def test_include_files_are_read_relative_to_the_file_that_names_them(store, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "config.yaml").write_text("""
include: [models/chat.yaml]
model_list:
  - model_name: root-model
    litellm_params: {model: openai/root, api_base: "http://127.0.0.1:9/v1"}
router_settings: {routing_strategy: simple-shuffle}
""", encoding="utf-8")
    (tmp_path / "models" / "chat.yaml").write_text("""
include: [embed.yaml]
model_list:
  - model_name: team-chat
    litellm_params: {model: openai/chat, api_base: "http://127.0.0.1:9/v1"}
router_settings: {routing_strategy: least-busy}
""", encoding="utf-8")
    (tmp_path / "models" / "embed.yaml").write_text("""
include: [chat.yaml]
model_list:
  - model_name: team-embed
    litellm_params: {model: openai/bge-m3, api_base: "http://127.0.0.1:9/v1"}
    model_info: {mode: embedding}
""", encoding="utf-8")  # includes chat.yaml back: each file is read once
    path = tmp_path / "config.yaml"
    result = litellm_config.preview(store, path.read_text(), path=path)
    assert [e.name for e in result.endpoints] == ["root-model", "team-chat", "team-embed"]  # lists extend
    assert "included: models/chat.yaml, embed.yaml" in result.notes
    # the CLI reads them from the file's folder, whatever the working folder
    added = spread_cli("models", "import", str(path), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout.strip().splitlines()[-1])["added"] == ["root-model", "team-chat", "team-embed"]
    # a missing file is one problem among the entries' own; an upload cannot read includes
    (tmp_path / "models" / "embed.yaml").unlink()
    with pytest.raises(litellm_config.ImportRefused) as caught:
        litellm_config.preview(store, path.read_text().replace("openai/root", "nosuchprovider/x"), path=path)
    assert caught.value.problems[0].startswith("include embed.yaml: cannot read ")
    assert any("unknown model id 'nosuchprovider/x'" in p for p in caught.value.problems)
    with pytest.raises(litellm_config.ImportRefused, match="read only from a config on disk"):
        litellm_config.preview(store, path.read_text())
