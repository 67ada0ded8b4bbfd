"""Provider batch APIs against a loopback server speaking OpenAI's /v1/files and /v1/batches."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from core.store import Store
from openai_batch_stub import BatchStub
from test_settle import last_json, spread

FAST = {"SPREAD_BATCH_POLL_S": "0.05"}


def run_args(db, stub, *extra):
    return ["--db", db, "run", "--prompt", "Capital of France?", "--model", "openai/stub-a", "--temperature", "1",
            "--api-base", stub.base_url, "--seed", "1", "--batch", "--json", *extra]


def test_a_batch_run_answers_through_batches_at_half_price_and_never_calls_chat(tmp_path):
    db = str(tmp_path / "batch.db")
    with BatchStub() as stub:
        summary = last_json(spread(*run_args(db, stub, "--n", "6"), env=FAST))
        assert stub.chat_calls == 0 and len(stub.created) == 1 and summary["batches"] == 1
        assert summary["responses"] == 6 and summary["errors"] == 0
        assert ("POST", "/v1/files") in stub.paths and ("POST", "/v1/batches") in stub.paths
    shown = last_json(spread("--db", db, "show", "1", "--json"))
    texts = {a["text"] for c in shown["cells"] for a in c["answers"]}
    assert texts <= {"Paris.", "The capital of France is Paris.", "Lyon."} and len(texts) > 1
    with Store(db).connection() as conn:
        (row,) = conn.query("select batch_id, status, total, completed, collected from provider_batches")
        assert row == {"batch_id": "batch_1", "status": "completed", "total": 6, "completed": 6, "collected": 1}


def test_an_expired_batch_keeps_what_it_did_and_resume_retries_the_rest_in_a_new_batch(tmp_path):
    db = str(tmp_path / "expired.db")
    with BatchStub() as stub:
        stub.expire_after = 4
        summary = last_json(spread(*run_args(db, stub, "--n", "6"), env=FAST))
        assert (summary["responses"], summary["errors"]) == (4, 2)
        shown = last_json(spread("--db", db, "show", "1", "--json"))
        assert {a["error_type"] for c in shown["cells"] for a in c["answers"] if a["error_type"]} == {"batch_expired"}
        stub.expire_after = None
        again = last_json(spread("--db", db, "resume", "1", "--retry-errors", "--json", env=FAST))
        assert (again["responses"], again["errors"], again["batches"]) == (6, 0, 2) and stub.chat_calls == 0


def test_killed_while_its_batch_is_pending_resume_polls_the_same_batch(tmp_path):
    db = str(tmp_path / "killed.db")
    with BatchStub() as stub:
        stub.hold = True
        process = subprocess.Popen([sys.executable, "-m", "core.cli", *run_args(db, stub, "--n", "4")], cwd=ROOT,
                                   env=dict(os.environ, **FAST), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while not stub.created and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # a few polls: "waiting for the provider's batch"
        listed = spread("--db", db, "runs").stdout
        assert "waiting for the provider's batch: submitted at" in listed and "0 of 4 done" in listed
        process.send_signal(signal.SIGKILL)
        process.wait()
        stub.hold = False
        resumed = last_json(spread("--db", db, "resume", "1", "--json", env=FAST))
        assert resumed["responses"] == 4 and len(stub.created) == 1 and stub.chat_calls == 0


def test_batch_on_an_endpoint_without_a_batch_api_is_refused_naming_it(tmp_path):
    db = tmp_path / "refused.db"
    result = spread("--db", str(db), "run", "--prompt", "Q?", "--model", "local/smollm2-135m-instruct",
                    "--temperature", "1", "--n", "2", "--batch", check=False)
    assert result.returncode == 2 and "local/smollm2-135m-instruct" in result.stderr and "batch" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if db.exists():
        with Store(db).connection() as conn:
            assert conn["runs"].count == 0


def test_the_estimate_shows_live_and_batch_cost_side_by_side(store, tmp_path):
    from core.models import endpoints
    from core.run import estimate, plan

    endpoints.add(store, endpoints.Endpoint("priced", "openai/served", api_base="http://127.0.0.1:9/v1", price_in=2.0,
                                     price_out=8.0))
    guess = estimate.estimate(store, plan.RunSpec(prompt="Capital of France?", models=["priced"], temperatures=[1.0], n=10),
                              check_providers=False)
    assert guess["batch"]["cost_usd_low"] == pytest.approx(guess["cost_usd_low"] / 2)
    assert guess["batch"]["cost_usd_high"] == pytest.approx(guess["cost_usd_high"] / 2)
    assert "documented" in guess["batch"]["note"]
    local = estimate.estimate(store, plan.RunSpec(prompt="Q?", models=["local/smollm2-135m-instruct"], temperatures=[1.0],
                                           n=2), check_providers=False)
    assert "batch" not in local


def test_batch_prices_come_from_litellms_map_where_it_has_them(store):
    """gpt-3.5-turbo-1106's batch prices in the map are its live ones (no discount); gpt-4o-mini's
    are half; a model the map gives no batch price is priced at OpenAI's documented discount."""
    from core.models import catalogue, endpoints
    from core.run import estimate, plan

    def both(model):
        guess = estimate.estimate(store, plan.RunSpec(prompt="Capital of France?", models=[model],
                                                      temperatures=[1.0], n=10, max_tokens=100), check_providers=False)
        return guess, guess["per_model"][0]

    same, row = both("openai/gpt-3.5-turbo-1106")
    entry = catalogue.price_map()["gpt-3.5-turbo-1106"]
    assert same["batch"]["cost_usd_low"] == pytest.approx(row["prompt_tokens"] * entry["input_cost_per_token_batches"])
    assert same["batch"]["cost_usd_low"] == pytest.approx(same["cost_usd_low"])  # no discount for this one
    half, _ = both("openai/gpt-4o-mini")
    assert half["batch"]["cost_usd_high"] == pytest.approx(half["cost_usd_high"] / 2)
    bare = endpoints.bare("openai/gpt-3.5-turbo")  # in the map without batch prices
    assert catalogue.batch_prices("gpt-3.5-turbo") is None
    assert bare.batch_cost_usd(1000, 100) == pytest.approx(bare.cost_usd(1000, 100) / 2)


def test_cancel_cancels_the_providers_batch_and_leaves_its_cells_for_a_resume(tmp_path):
    db = str(tmp_path / "cancel.db")
    with BatchStub() as stub:
        stub.hold = True
        process = subprocess.Popen([sys.executable, "-m", "core.cli", *run_args(db, stub, "--n", "3")], cwd=ROOT,
                                   env=dict(os.environ, **FAST), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True)
        deadline = time.time() + 60
        while not stub.created and time.time() < deadline:
            time.sleep(0.05)
        spread("--db", db, "cancel", "1")
        out, _ = process.communicate(timeout=120)
        assert stub.batches["batch_1"]["status"] == "cancelled" and ("POST", "/v1/batches/batch_1/cancel") in stub.paths
        summary = last_json(subprocess.CompletedProcess([], 0, out, ""))
        assert summary["status"] == "cancelled" and summary["responses"] == 0 and summary["errors"] == 0


def test_sampled_until_settled_through_batches_sends_one_batch_per_round(tmp_path):
    db = str(tmp_path / "settled-batch.db")
    with BatchStub(answers=["Paris.", "Lyon.", "Nice.", "Marseille."]) as stub:
        summary = last_json(spread("--db", db, "run", "--prompt", "Q?", "--model", "openai/stub-a", "--temperature",
                                   "0", "--temperature", "1", "--n", "20", "--api-base", stub.base_url, "--batch",
                                   "--until-settled", "--seed", "1", "--json", env=FAST))
        # Rounds of 5: both cells twice, then the split cell alone twice more.
        sizes = [stub.batches[b]["request_counts"]["total"] for b in stub.created]
        assert sizes == [10, 10, 5, 5] and summary["batches"] == 4 and stub.chat_calls == 0
    assert summary["calls"] == 30 and summary["stopped_by"] == {"precision": 1, "max_n": 1}
    assert summary["cost_usd_new"] is None  # the stub has no price: unknown, never $0


# --- Anthropic's Message Batches ---------------------------------------------------------------

def anthropic_args(db, stub, *extra):
    return ["--db", db, "run", "--prompt", "Capital of France?", "--system", "Answer with the city.",
            "--model", "anthropic/claude-stub", "--temperature", "1", "--api-base", stub.base_url, "--seed", "1",
            "--max-tokens", "50", "--batch", "--json", *extra]


def test_an_anthropic_batch_run_answers_through_message_batches_and_never_calls_messages(tmp_path):
    from anthropic_batch_stub import AnthropicBatchStub

    db = str(tmp_path / "anthropic.db")
    with AnthropicBatchStub() as stub:
        env = dict(FAST, ANTHROPIC_API_KEY=stub.key)
        summary = last_json(spread(*anthropic_args(db, stub, "--n", "6"), env=env))
        assert stub.live_calls == 0 and len(stub.created) == 1 and summary["batches"] == 1
        assert summary["responses"] == 6 and summary["errors"] == 0
        (requests,) = stub.requests.values()
        params = requests[0]["params"]
        assert params["system"] == "Answer with the city." and params["model"] == "claude-stub"
        assert params["messages"] == [{"role": "user", "content": "Capital of France?"}] and params["max_tokens"] == 50
    shown = last_json(spread("--db", db, "show", "1", "--json"))
    answers = [a for c in shown["cells"] for a in c["answers"]]
    assert {a["text"] for a in answers} == {"Paris.", "The capital of France is Paris.", "Lyon."}
    with Store(db).connection() as conn:
        rows = list(conn.query("select provider_model, prompt_tokens, finish_reason from responses"))
        assert {(r["provider_model"], r["prompt_tokens"], r["finish_reason"]) for r in rows} == {
            ("claude-stub-20250101", 12, "stop")}
        (batch,) = conn.query("select batch_id, status, total, completed, collected from provider_batches")
        assert batch == {"batch_id": "msgbatch_0001", "status": "completed", "total": 6, "completed": 6,
                         "collected": 1}
    with open(db, "rb") as f:
        assert stub.key.encode() not in f.read()


def test_an_anthropic_batch_that_expires_in_part_keeps_its_answers_and_resume_sends_the_rest(tmp_path):
    from anthropic_batch_stub import AnthropicBatchStub

    db = str(tmp_path / "expired.db")
    with AnthropicBatchStub() as stub:
        env = dict(FAST, ANTHROPIC_API_KEY=stub.key)
        stub.expire_after = 4
        summary = last_json(spread(*anthropic_args(db, stub, "--n", "6"), env=env))
        assert (summary["responses"], summary["errors"]) == (4, 2)
        stub.expire_after = None
        again = last_json(spread("--db", db, "resume", "1", "--retry-errors", "--json", env=env))
        assert (again["responses"], again["errors"], again["batches"]) == (6, 0, 2) and stub.live_calls == 0


# --- Together's Batch API ---------------------------------------------------------------------

def together_args(db, stub, *extra):
    return ["--db", db, "run", "--prompt", "Capital of France?", "--model", "together_ai/meta-llama/Llama-3-8b-stub",
            "--temperature", "1", "--api-base", stub.base_url, "--seed", "1", "--batch", "--json", *extra]


def test_a_together_batch_run_speaks_its_variant_and_keeps_the_key_out_of_the_store(tmp_path):
    db = str(tmp_path / "together.db")
    with BatchStub(together=True) as stub:
        env = dict(FAST, TOGETHERAI_API_KEY=stub.key)
        summary = last_json(spread(*together_args(db, stub, "--n", "5"), env=env))
        assert stub.chat_calls == 0 and len(stub.created) == 1 and summary["batches"] == 1
        assert (summary["responses"], summary["errors"]) == (5, 0)
        (batch,) = stub.batches.values()
        assert batch["status"] == "completed" and {line["body"]["model"] for line in batch["_lines"]} == {
            "meta-llama/Llama-3-8b-stub"}  # the id Together knows, without litellm's prefix
        assert all(set(line) == {"custom_id", "body"} for line in batch["_lines"])
        # An expired batch (upper case, no counts) keeps its answers, as OpenAI's does.
        stub.expire_after = 2
        expired = last_json(spread(*together_args(db, stub, "--n", "4"), env=env))
        assert (expired["responses"], expired["errors"]) == (2, 2)
        wrong = spread(*together_args(db, stub, "--n", "2"), env=dict(FAST, TOGETHERAI_API_KEY="tgp-wrong-77777777"),
                       check=False)
        assert wrong.returncode != 0 and "HTTP 401" in wrong.stderr and "tgp-wrong-77777777" not in wrong.stderr
    shown = last_json(spread("--db", db, "show", "1", "--json"))
    assert {a["text"] for c in shown["cells"] for a in c["answers"]} <= {"Paris.", "The capital of France is Paris.",
                                                                         "Lyon."}
    with Store(db).connection() as conn:
        found = [(r["status"], r["total"], r["completed"], r["failed"])
                 for r in conn.query("select status, total, completed, failed from provider_batches order by id")]
        assert found[:2] == [("completed", 5, 5, 0), ("expired", 4, 2, 2)]  # counts read from its files
    with open(db, "rb") as f:
        assert stub.key.encode() not in f.read()


# --- The Gemini API's batch mode ----------------------------------------------------------------

def gemini_args(db, stub, *extra):
    return ["--db", db, "run", "--prompt", "Capital of France?", "--system", "Answer with the city.",
            "--model", "gemini/gemini-stub", "--temperature", "1", "--api-base", stub.base_url, "--seed", "1",
            "--max-tokens", "50", "--batch", "--json", *extra]


def test_a_gemini_batch_run_answers_inline_through_batch_mode_and_never_calls_generate_content(tmp_path):
    from gemini_batch_stub import GeminiBatchStub

    db = str(tmp_path / "gemini.db")
    with GeminiBatchStub() as stub:
        env = dict(FAST, GEMINI_API_KEY=stub.key)
        summary = last_json(spread(*gemini_args(db, stub, "--n", "6"), env=env))
        assert stub.live_calls == 0 and stub.created == ["batches/stub0001"] and summary["batches"] == 1
        assert (summary["responses"], summary["errors"]) == (6, 0)
        assert ("POST", "/v1beta/models/gemini-stub:batchGenerateContent") in stub.paths
        assert ("GET", "/v1beta/batches/stub0001") in stub.paths
        (items,) = stub.requests.values()
        request = items[0]["request"]
        assert request["systemInstruction"] == {"parts": [{"text": "Answer with the city."}]}
        assert request["contents"] == [{"role": "user", "parts": [{"text": "Capital of France?"}]}]
        config = request["generationConfig"]
        assert {k: config[k] for k in ("temperature", "candidateCount", "maxOutputTokens")} == {
            "temperature": 1.0, "candidateCount": 1, "maxOutputTokens": 50}
        assert len({item["request"]["generationConfig"]["seed"] for item in items}) == 6  # --seed: one per sample
        assert len({item["metadata"]["key"] for item in items}) == 6
        # Expired in part: the answers it has are kept, the rest are error rows, and a resume
        # sends those again, in a new batch.
        stub.expire_after = 2
        expired = last_json(spread(*gemini_args(db, stub, "--n", "4"), env=env))
        assert (expired["responses"], expired["errors"]) == (2, 2)
        stub.expire_after = None
        again = last_json(spread("--db", db, "resume", "2", "--retry-errors", "--json", env=env))
        assert (again["responses"], again["errors"], again["batches"]) == (4, 0, 2) and stub.live_calls == 0
    shown = last_json(spread("--db", db, "show", "1", "--json"))
    assert {a["text"] for c in shown["cells"] for a in c["answers"]} == {"Paris.", "The capital of France is Paris.",
                                                                         "Lyon."}
    with Store(db).connection() as conn:
        rows = list(conn.query("select provider_model, prompt_tokens, finish_reason from responses where run_id = 1"))
        assert {(r["provider_model"], r["prompt_tokens"], r["finish_reason"]) for r in rows} == {
            ("gemini-stub-001", 12, "stop")}
        found = [(r["batch_id"], r["status"], r["total"], r["completed"])
                 for r in conn.query("select batch_id, status, total, completed from provider_batches order by id")]
        assert found == [("batches/stub0001", "completed", 6, 6), ("batches/stub0002", "expired", 4, 2),
                         ("batches/stub0003", "completed", 2, 2)]
    with open(db, "rb") as f:
        assert stub.key.encode() not in f.read()


# --- What the text-only batches (Anthropic's, Gemini's) share -----------------------------------

def _anthropic_stub():
    from anthropic_batch_stub import AnthropicBatchStub

    return AnthropicBatchStub()


def _gemini_stub():
    from gemini_batch_stub import GeminiBatchStub

    return GeminiBatchStub()


# provider: (its stub, the run's arguments, its key variable, a wrong key and the status it
# gets, the cancel request of the stub's first batch)
TEXT_ONLY = {
    "Anthropic": (_anthropic_stub, anthropic_args, "ANTHROPIC_API_KEY", "sk-ant-wrong-999999", "HTTP 401",
                  ("POST", "/v1/messages/batches/msgbatch_0001/cancel")),
    "Gemini": (_gemini_stub, gemini_args, "GEMINI_API_KEY", "AIza-wrong-99999999", "HTTP 400",
               ("POST", "/v1beta/batches/stub0001:cancel")),
}


@pytest.mark.parametrize("provider", TEXT_ONLY)
def test_a_text_only_batch_is_refused_for_tools_and_a_wrong_key_is_one_line_without_it(tmp_path, provider):
    make_stub, args, key_variable, wrong_key, wrong_status, _ = TEXT_ONLY[provider]
    db = str(tmp_path / "refused.db")
    with make_stub() as stub:
        tools = tmp_path / "tools.json"
        tools.write_text(json.dumps([{"type": "function", "function": {"name": "f", "parameters": {}}}]))
        refused = spread(*args(db, stub, "--n", "2", "--tools-file", str(tools)),
                         env={**FAST, key_variable: stub.key}, check=False)
        assert refused.returncode == 2, refused.stderr
        assert f"tools and response formats are sent live to {provider} models" in refused.stderr
        assert stub.created == [] and last_json(spread("--db", db, "runs", "--json")) == []
        wrong = spread(*args(db, stub, "--n", "2"), env={**FAST, key_variable: wrong_key}, check=False)
        assert wrong.returncode != 0 and wrong_status in wrong.stderr and wrong_key not in wrong.stderr


@pytest.mark.parametrize("provider", TEXT_ONLY)
def test_cancel_cancels_a_text_only_batch_and_leaves_its_cells_for_a_resume(tmp_path, provider):
    make_stub, args, key_variable, _, _, cancel_request = TEXT_ONLY[provider]
    db = str(tmp_path / "cancel.db")
    with make_stub() as stub:
        stub.hold = True
        process = subprocess.Popen([sys.executable, "-m", "core.cli", *args(db, stub, "--n", "3")], cwd=ROOT,
                                   env=dict(os.environ, **FAST, **{key_variable: stub.key}), stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 60
        while not stub.created and time.time() < deadline:
            time.sleep(0.05)
        spread("--db", db, "cancel", "1")
        out, _ = process.communicate(timeout=120)
        assert cancel_request in stub.paths
        summary = last_json(subprocess.CompletedProcess([], 0, out, ""))
        assert summary["status"] == "cancelled" and summary["responses"] == 0 and summary["errors"] == 0
        with Store(db).connection() as conn:
            assert [r["status"] for r in conn.query("select status from provider_batches")] == ["cancelled"]


def test_a_gemini_batch_line_speaks_gemini_and_an_unknown_parameter_is_refused_before_anything_is_sent():
    from types import SimpleNamespace

    from core.config import SpreadError
    from core.models import batch, gemini_batch

    call = SimpleNamespace(model="gemini/g", params={"top_k": 5, "stop": "END"}, members=None, api_base=None)
    turns = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
             {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]
    line = gemini_batch.line("0:0:1.0:0", call, turns, temperature=0.5, max_tokens=None, seed=None, top_p=0.9)
    assert line["metadata"] == {"key": "0:0:1.0:0"}
    assert line["request"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in line["request"]["contents"]] == ["user", "model", "user"]
    assert line["request"]["generationConfig"] == {"temperature": 0.5, "candidateCount": 1, "topP": 0.9, "topK": 5,
                                                   "stopSequences": ["END"]}
    odd = SimpleNamespace(model="gemini/g", params={"logit_bias": {"1": 2}}, members=None, api_base=None)
    spec = SimpleNamespace(models=["gemini/g"], call_for=lambda model: odd, all_variants=lambda: [])
    with pytest.raises(SpreadError, match="its parameters logit_bias have no place in a Gemini batch"):
        batch.check(spec)
    # A failed request of a finished batch is an error row with Google's code and message.
    found = {"operation": {"done": True, "response": {"inlinedResponses": {"inlinedResponses": [
        {"error": {"code": 3, "message": "bad request"}, "metadata": {"key": "a"}}]}}}}
    assert gemini_batch.results(found) == {"a": {"error": ("batch_failed", "code 3: bad request")}}
