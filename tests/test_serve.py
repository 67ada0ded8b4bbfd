"""`spread serve`: the official openai client against the endpoint on loopback, the endpoint
against a loopback OpenAI stub answering with controlled mixes; every request stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from serve_harness import Answers, Served, settings

from core.store import Store, migrations

from core.store import responses

from core.store import runs as run_rows
from core.config import SpreadError
from core.evaluate import checks
from core.review import labels
from core.serve import calibration, routes
from core.store import serving

ROOT = Path(__file__).resolve().parent.parent
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
CITIES = ("Paris.", "Lyon.", "Marseille.", "Toulouse.", "Nice.")


@pytest.fixture
def serve(store, stub):
    """serve(*routes, **settings): a running endpoint over `stub`; closed after the test."""
    opened = []

    def start(*route_specs, token=None, **options):
        served = Served(store, settings(stub, *route_specs, **options), token=token)
        opened.append(served)
        return served

    yield start
    for served in opened:
        served.close()


def client(served, key="unused", **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=key, max_retries=0, timeout=30, **kwargs)


def ask(served, **kwargs):
    raw = client(served).chat.completions.with_raw_response.create(
        model=kwargs.pop("model", "qa"), messages=kwargs.pop("messages", QUESTION), **kwargs)
    return raw, raw.parse()


def test_contract_paris_four_in_five_is_the_answer_at_confidence_0_8(store, stub, serve):
    stub.respond = Answers("Paris.", "The capital of France is Paris.", "Lyon.", "Paris", "It is Paris!")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5), adaptive=False)
    raw, completion = ask(served)
    spread = completion.model_extra["spread"]
    assert spread["confidence"] == 0.8 and spread["k"] == 5 and spread["clusters"] == 2
    assert spread["shares"] == [0.8, 0.2] and spread["abstained"] is False and spread["route"] == "qa"
    assert "Paris" in completion.choices[0].message.content
    assert raw.headers["X-Spread-Confidence"] == "0.8000"
    assert set(spread) >= {"confidence", "k", "clusters", "shares", "semantic_entropy", "abstained", "route",
                           "run_id", "answer_ids"}
    assert spread["semantic_entropy"] == pytest.approx(-(0.8 * __import__("math").log(0.8) + 0.2 * __import__("math").log(0.2)), abs=1e-5)
    assert spread["confidence_interval"] == [0.3755, 0.9638]  # 4 of 5, Wilson 95%
    assert stub.count() == 5
    # usage sums the five calls (the stub counts one token per word)
    asked = sum(r["body"] and 1 for r in stub.requests)
    assert asked == 5
    assert completion.usage.completion_tokens == 1 + 6 + 1 + 1 + 3
    assert completion.usage.prompt_tokens == 5 * 6  # six words asked, five times
    # every answer is stored, as an input of the route's run
    with store.connection() as db:
        rows = responses.of_run(db, spread["run_id"])
        request = serving.requests(db, route="qa")[0]
    assert sorted(r["id"] for r in rows) == sorted(spread["answer_ids"])
    assert sorted(r["text"] for r in rows) == sorted(["Paris.", "The capital of France is Paris.", "Lyon.", "Paris",
                                                      "It is Paris!"])
    assert request["confidence"] == 0.8 and request["k"] == 5 and request["status"] == 200
    chosen = next(r for r in rows if r["id"] == request["chosen_response_id"])
    assert chosen["text"] == completion.choices[0].message.content


def test_contract_five_different_answers_abstain_below_0_6(store, stub, serve):
    stub.respond = Answers(*CITIES)
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5, threshold=routes.Threshold(0.6)), adaptive=False)
    raw, completion = ask(served)
    spread = completion.model_extra["spread"]
    assert spread["abstained"] is True and spread["confidence"] == 0.2 and spread["clusters"] == 5
    assert completion.choices[0].message.content == routes.ABSTAIN_MESSAGE
    assert raw.headers["X-Spread-Confidence"] == "0.2000"
    with store.connection() as db:
        assert serving.requests(db)[0]["abstained"] == 1


def test_abstain_status_is_an_openai_error_with_the_spread_object(stub, serve):
    stub.respond = Answers(*CITIES)
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5, threshold=routes.Threshold(0.6)), adaptive=False,
                   abstain_status=503, abstain_message="Not sure.")
    with pytest.raises(openai.APIStatusError) as caught:
        ask(served)
    assert caught.value.status_code == 503
    body = caught.value.response.json()
    assert body["error"]["message"] == "Not sure." and body["error"]["code"] == "low_confidence"
    assert body["spread"]["abstained"] is True


def test_adaptive_k_stops_when_the_first_round_agrees(stub, serve):
    stub.respond = Answers("Paris.")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5))
    _, completion = ask(served)
    assert completion.model_extra["spread"]["k"] == 3 and stub.count() == 3
    assert completion.model_extra["spread"]["confidence"] == 1.0
    stub.respond = Answers("Paris.", "Lyon.", "Paris.", "Paris.", "Paris.")
    _, completion = ask(served)
    spread = completion.model_extra["spread"]
    assert spread["k"] == 5 and stub.count() == 8 and spread["confidence"] == 0.8


def test_checks_set_answers_aside_before_the_vote(store, stub, serve):
    stub.respond = Answers('{"city": "Paris"}', "{not json", '{"city":"Paris"}', "Paris", '{ "city" : "Paris" }')
    route = routes.Route("qa", ("openai/stub-a",), k=5, checks=(checks.parse("is-json"),))
    served = serve(route, adaptive=False)
    _, completion = ask(served, response_format={"type": "json_object"})
    spread = completion.model_extra["spread"]
    assert spread["filtered"] == 2 and spread["k"] == 5
    assert spread["confidence"] == 0.6 and spread["clusters"] == 1  # the same JSON value, three spellings
    assert json.loads(completion.choices[0].message.content) == {"city": "Paris"}
    with store.connection() as db:
        results = list(db.query("select passed from check_results"))
    assert sorted(r["passed"] for r in results) == [0, 0, 1, 1, 1]


def test_no_answer_passing_the_checks_is_low_confidence(stub, serve):
    stub.respond = Answers("Paris is a lovely city, " * 10)
    route = routes.Route("qa", ("openai/stub-a",), k=3, checks=(checks.parse("max-length:20"),))
    served = serve(route, adaptive=False)
    _, completion = ask(served)
    spread = completion.model_extra["spread"]
    assert spread["abstained"] is True and spread["confidence"] == 0 and spread["filtered"] == 3


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}}}}]


def test_tool_calls_with_reordered_arguments_are_one_meaning(stub, serve):
    call = lambda args: {"content": None, "tool_calls": [{"name": "get_weather", "arguments": args}]}  # noqa: E731
    stub.respond = Answers(call('{"city": "Paris", "unit": "c"}'), call('{"unit":"c","city":"Paris"}'),
                           call('{"city": "Paris", "unit": "c"}'), call('{"city": "Lyon", "unit": "c"}'),
                           call('{"unit": "c", "city": "Paris"}'))
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5), adaptive=False)
    _, completion = ask(served, tools=TOOLS, messages=[{"role": "user", "content": "Weather in Paris?"}])
    spread = completion.model_extra["spread"]
    assert spread["confidence"] == 0.8 and spread["clusters"] == 2
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    (tool_call,) = choice.message.tool_calls
    assert tool_call.type == "function" and tool_call.function.name == "get_weather" and tool_call.id
    assert json.loads(tool_call.function.arguments) == {"city": "Paris", "unit": "c"}
    assert stub.requests[-1]["body"]["tools"] == TOOLS


def test_json_schema_request(stub, serve):
    schema = {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]}
    stub.respond = Answers('{"n": 2}', '{"n": 2.0}', '{"n": 3}')
    served = serve(routes.Route("qa", ("openai/stub-a",), k=3), adaptive=False)
    _, completion = ask(served, response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}})
    spread = completion.model_extra["spread"]
    assert spread["clusters"] == 2 and spread["confidence"] == pytest.approx(2 / 3, abs=1e-6)
    assert json.loads(completion.choices[0].message.content)["n"] == 2
    assert stub.requests[-1]["body"]["response_format"]["json_schema"]["schema"] == schema


def test_streaming_sends_the_chosen_answer(stub, serve):
    stub.respond = Answers("The capital of France is Paris, a city on the Seine.", "Paris.", "Paris.", "Lyon.", "Paris")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5), adaptive=False)
    chunks = list(client(served).chat.completions.create(model="qa", messages=QUESTION, stream=True,
                                                         stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0]
    assert final.model_extra["spread"]["confidence"] == 0.8
    assert chunks[-1].usage.total_tokens > 0


def test_some_calls_fail_decide_on_the_rest(store, stub, serve):
    stub.respond = Answers("Paris.")
    stub.inject("500", "500")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5), adaptive=False, max_attempts=1)
    _, completion = ask(served)
    spread = completion.model_extra["spread"]
    assert spread["k"] == 3 and spread["failed"] == 2 and spread["asked"] == 5 and spread["confidence"] == 1.0
    with store.connection() as db:
        rows = responses.of_run(db, spread["run_id"])
    assert sum(r["error_type"] is not None for r in rows) == 2  # failures are kept too


def test_all_calls_fail_is_an_openai_error_with_the_upstream_status(stub, serve):
    stub.inject(*["429-noretry"] * 3)
    served = serve(routes.Route("qa", ("openai/stub-a",), k=3), adaptive=False, max_attempts=1)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(served)
    assert caught.value.status_code == 429
    assert "all 3 calls" in caught.value.response.json()["error"]["message"]


def test_fallback_asks_another_route_and_says_so(store, stub, serve):
    stub.respond = Answers(*CITIES)
    weak = routes.Route("weak", ("openai/stub-a",), k=5, threshold=routes.Threshold(0.6),
                        on_low=routes.OnLow("fallback", "strong"))
    strong = routes.Route("strong", ("openai/stub-b",), k=5)
    served = serve(weak, strong, adaptive=False)
    _, completion = ask(served, model="weak")
    spread = completion.model_extra["spread"]
    assert spread["route"] == "strong" and spread["fallback"]["from"] == "weak"
    assert spread["fallback"]["confidence"] == 0.2 and stub.count() == 10
    assert completion.usage.completion_tokens == 10  # both routes' calls
    with store.connection() as db:
        kept = {r["route"]: r for r in serving.requests(db)}
    assert kept["weak"]["fallback"] == 1 and kept["strong"]["answered_by"] == "fallback of weak"


def test_best_answers_anyway_flagged(stub, serve):
    stub.respond = Answers("Paris.", "Paris.", "Lyon.", "Nice.", "Nantes.")
    route = routes.Route("qa", ("openai/stub-a",), k=5, threshold=routes.Threshold(0.6), on_low=routes.OnLow("best"))
    served = serve(route, adaptive=False)
    _, completion = ask(served)
    spread = completion.model_extra["spread"]
    assert spread["abstained"] is False and spread["low_confidence"] is True
    assert completion.choices[0].message.content == "Paris."


def test_route_models_take_turns(stub, serve):
    stub.respond = Answers("Paris.")
    served = serve(routes.Route("qa", ("openai/stub-a", "openai/stub-b"), k=4), adaptive=False)
    ask(served)
    assert sorted(r["body"]["model"] for r in stub.requests) == ["stub-a", "stub-a", "stub-b", "stub-b"]


def test_auth_models_and_health(store, stub, serve):
    stub.respond = Answers("Paris.")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=3), token="s3cret-token")
    with pytest.raises(openai.AuthenticationError):
        ask(served)
    assert stub.count() == 0
    raw = client(served, key="s3cret-token").chat.completions.with_raw_response.create(model="qa", messages=QUESTION)
    assert raw.parse().choices[0].message.content == "Paris."
    models = client(served, key="s3cret-token").models.list()
    assert [m.id for m in models.data] == ["qa"]
    assert httpx.get(f"http://127.0.0.1:{served.port}/health").json()["status"] == "ok"
    with store.connection() as db:  # the caller's key is never stored
        dumped = json.dumps([list(db.query(f"select * from {t}")) for t in db.table_names()])
    assert "s3cret-token" not in dumped
    assert all("s3cret-token" not in json.dumps(r["headers"]) for r in stub.requests)  # nor sent upstream


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not JSON"),
    (b'["a list"]', 400, "JSON object"),
    (b'{"model": "qa"}', 400, "messages"),
    (b'{"model": "nope", "messages": [{"role": "user", "content": "hi"}]}', 404, "no route 'nope'"),
    (b'{"model": "qa", "k": 50, "messages": [{"role": "user", "content": "hi"}]}', 400, "maximum of 20"),
    (b'{"model": "qa", "n": 2, "messages": [{"role": "user", "content": "hi"}]}', 400, "n must be 1"),
    (b'{"model": "qa", "temperature": 7, "messages": [{"role": "user", "content": "hi"}]}', 400, "temperature"),
    (b'{"model": "qa", "tool_choice": "get_x", "messages": [{"role": "user", "content": "hi"}]}', 400, "tool"),
    (b'{"model": "qa", "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 3}}},'
     b' "messages": [{"role": "user", "content": "hi"}]}', 400, "JSON Schema"),
])
def test_bad_requests_are_openai_shaped_4xx(stub, serve, body, status, words):
    served = serve(routes.Route("qa", ("openai/stub-a",), k=3))
    response = httpx.post(f"{served.base_url}/chat/completions", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == status
    error = response.json()["error"]
    assert words in error["message"] and "\n" not in error["message"] and error["type"]
    assert stub.count() == 0


def test_a_model_that_cannot_take_the_tools_is_refused_before_sampling(stub, serve):
    served = serve(routes.Route("deep", ("openai/o3-deep-research",), k=3))
    response = httpx.post(f"{served.base_url}/chat/completions", json={
        "model": "deep", "messages": QUESTION, "tools": TOOLS})
    assert response.status_code == 400 and "tool calls" in response.json()["error"]["message"]
    assert stub.count() == 0


def test_requests_of_a_day_are_inputs_of_one_run(store, stub, serve):
    stub.respond = Answers("Paris.")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=3))
    first = ask(served)[1].model_extra["spread"]
    second = ask(served, messages=[{"role": "system", "content": "Be brief."},
                                   {"role": "user", "content": "And of Italy?"}])[1].model_extra["spread"]
    assert first["run_id"] == second["run_id"]
    with store.connection() as db:
        run = run_rows.get_run(db, first["run_id"])
        sent = run_rows.sent_messages(db, first["run_id"])
    assert run["spec"]["n_inputs"] == 2 and run["planned"] == 6 and run["answers"] == 6
    assert sent[(0, 1)][1]["content"] == "And of Italy?"


# --- calibration --------------------------------------------------------------------------

def _labelled_traffic(store, stub, serve, mixes: list[tuple[list[str], str]]) -> list[dict]:
    """Serve one request per mix of answers and label the answer each chose pass or fail."""
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5), adaptive=False, method="exact")
    out = []
    for answers, verdict in mixes:
        stub.respond = Answers(*answers)
        spread = ask(served)[1].model_extra["spread"]
        labels.label(store, spread["chosen_answer_id"], "ana", labels.Label(verdict))
        out.append(spread)
    return out


def test_calibration_figures_on_labelled_traffic(store, stub, serve):
    agree = (["Paris."] * 5, "pass")  # confidence 1.0, right
    split = (["Paris.", "Paris.", "Paris.", "Lyon.", "Nice."], "pass")  # 0.6, right
    wrong_split = (["Lyon.", "Lyon.", "Lyon.", "Paris.", "Nice."], "fail")  # 0.6, wrong
    scattered = (["Lyon.", "Lyon.", "Paris.", "Nice.", "Nantes."], "fail")  # 0.4, wrong
    _labelled_traffic(store, stub, serve, [agree] * 8 + [split] * 2 + [wrong_split] * 2 + [scattered] * 2)
    points = calibration.points_for_route(store, "qa")
    assert sorted((p.confidence, p.right) for p in points) == sorted(
        [(1.0, True)] * 8 + [(0.6, True)] * 2 + [(0.6, False)] * 2 + [(0.4, False)] * 2)
    report = calibration.report(points, precision=0.6, bins=5)
    assert report["points"] == 14 and report["right"] == 10
    by_bin = {row["bin"]: row for row in report["reliability"]}
    assert by_bin["0.40–0.60"]["n"] == 2 and by_bin["0.40–0.60"]["accuracy"] == 0.0
    assert by_bin["0.60–0.80"]["n"] == 4 and by_bin["0.60–0.80"]["accuracy"] == 0.5
    assert by_bin["0.80–1.00"]["n"] == 8 and by_bin["0.80–1.00"]["accuracy"] == 1.0
    low, high = __import__("core.analyse.stats", fromlist=["wilson"]).wilson(8, 8)
    assert by_bin["0.80–1.00"]["accuracy_low"] == round(low, 4)
    # AUROC: right {1.0×8, 0.6×2} against wrong {0.6×2, 0.4×2}: (8·4 + 2·(2·0.5 + 2)) / 40 = 0.95
    assert report["auroc"]["auroc"] == 0.95
    assert report["auroc"]["low"] < 0.95 < report["auroc"]["high"]
    # at ≥ 1.0: 8 of 8 right, Wilson lower bound 0.676 ≥ 0.6; at ≥ 0.6: 10 of 12, lower bound 0.552 < 0.6
    assert report["threshold"]["found"] and report["threshold"]["threshold"] == 1.0
    assert report["threshold"]["answered"] == 8 and report["threshold"]["coverage"] == round(8 / 14, 4)
    # calibrated:0.6 resolves to that threshold; calibrated:0.95 is refused (8 right answers cannot show it)
    resolved = calibration.resolve_thresholds(store, {"qa": routes.Route("qa", ("m",), threshold=routes.Threshold.parse(
        "calibrated:0.6"))})
    assert resolved["qa"].threshold.value == 1.0
    with pytest.raises(SpreadError, match="no threshold reaches precision 0.95"):
        calibration.resolve_thresholds(store, {"qa": routes.Route("qa", ("m",), threshold=routes.Threshold.parse(
            "calibrated:0.95"))})


def test_calibrated_threshold_is_refused_without_enough_labels(store):
    with pytest.raises(SpreadError, match="0 labelled"):
        calibration.resolve_thresholds(store, {"qa": routes.Route("qa", ("m",), threshold=routes.Threshold.parse(
            "calibrated:0.9"))})


# --- the command --------------------------------------------------------------------------

def _spread(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, timeout=120, **kwargs)


def test_spread_serve_command_answers_and_the_request_is_a_run(stub, tmp_path):
    stub.respond = Answers("Paris.", "Paris.", "Lyon.", "Paris.", "Paris.")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SERVE_TOKEN": "tok-123456"}
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "serve", "--port", "0", "--route", "qa=openai/stub-a", "--k", "5",
         "--no-adaptive", "--min-confidence", "0.6", "--on-low", "abstain", "--token-env", "SERVE_TOKEN",
         "--api-base", stub.base_url, "--method", "exact"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stderr.readline()
        assert "listening on http://127.0.0.1:" in line, line
        base = line.split("listening on ")[1].split()[0]
        completion = openai.OpenAI(base_url=base, api_key="tok-123456", max_retries=0).chat.completions.create(
            model="qa", messages=QUESTION)
        assert completion.model_extra["spread"]["confidence"] == 0.8
        assert completion.choices[0].message.content == "Paris."
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode == 0
    logged = process.stderr.read()
    assert "'qa' 200 confidence=0.80 k=5/5 meanings=2" in logged and "Paris" not in logged  # answers are data
    runs = json.loads(_spread("runs", "--json").stdout.strip().splitlines()[-1])
    assert [r["id"] for r in runs] == [completion.model_extra["spread"]["run_id"]]
    assert runs[0]["answers"] == 5


def test_spread_serve_workers_answer_on_one_port_and_the_first_restarts_and_stops_them(stub, tmp_path):
    """`--workers 2`: two processes on one port, both answering and storing into the day's
    one run; a worker killed outright is replaced; SIGTERM to the first stops them all.
    The workers are given the database by environment, never on their command line."""
    import signal
    import threading
    import urllib.request

    stub.respond = Answers("Paris.")
    db = tmp_path / "served.db"
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--db", str(db), "serve", "--port", "0", "--route", "qa=openai/stub-a",
         "--k", "3", "--no-adaptive", "--api-base", stub.base_url, "--method", "exact", "--workers", "2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    answering = threading.Semaphore(0)

    def read_log():
        for line in process.stderr:
            lines.append(line)
            if " answering on port " in line:
                answering.release()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()

    def get(path, body=None):
        request = urllib.request.Request(base + path, data=body and json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:  # a new connection each time
            return json.loads(response.read())

    try:
        assert answering.acquire(timeout=120), lines
        base = lines[0].split("listening on ")[1].split()[0].removesuffix("/v1")
        worker = int(next(line for line in lines if "answering" in line).split("worker ")[1].split()[0])
        assert "--db" not in Path(f"/proc/{worker}/cmdline").read_bytes().decode().split("\0")
        assert {get("/health")["process"] for _ in range(40)} == {process.pid, worker}
        for _ in range(6):
            assert get("/v1/chat/completions", {"model": "qa", "messages": QUESTION})["choices"][0]["message"][
                "content"] == "Paris."
        os.kill(worker, signal.SIGKILL)
        assert answering.acquire(timeout=120), lines  # another started in its place
        replacement = int([line for line in lines if "answering" in line][-1].split("worker ")[1].split()[0])
        assert replacement != worker
        process.send_signal(signal.SIGTERM)
        assert process.wait(90) == 0
    finally:
        if process.poll() is None:
            process.kill()
    reader.join(10)
    assert any(f"worker {worker} ended" in line for line in lines)
    assert not Path(f"/proc/{replacement}").exists() or "zombie" in Path(f"/proc/{replacement}/status").read_text()
    runs = json.loads(_spread("--db", str(db), "runs", "--json").stdout.strip().splitlines()[-1])
    assert len(runs) == 1 and runs[0]["answers"] == 18  # both processes wrote into the day's one run


@pytest.mark.parametrize("args, words", [
    (["--route", "qa"], "NAME=MODEL"),
    (["--route", "qa=openai/x", "--min-confidence", "1.5"], "--min-confidence must be in 0..1"),
    (["--route", "qa=openai/x", "--min-confidence", "calibrated:abc"], "calibrated:P"),
    (["--route", "qa=openai/x", "--on-low", "fallback:nope"], "not a route"),
    (["--route", "qa=openai/x", "--on-low", "maybe"], "--on-low must be"),
    (["--route", "qa=openai/x", "--k", "50"], "k must be in 1..20"),
    (["--route", "qa=openai/x", "--token-env", "SPREAD_NO_SUCH_TOKEN"], "not set"),
    (["--route", "qa=openai/x", "--min-confidence", "calibrated:0.9"], "needs reviewers' labels"),
    (["--route", "qa=openai/x", "--check", "llm-rubric:is nice"], "cannot filter served answers"),
])
def test_spread_serve_refuses_bad_settings_in_one_line(args, words, capsys):
    from core.cli import main

    assert main(["serve", *args, "--api-base", "http://127.0.0.1:9/v1"]) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1


# --- the pages ----------------------------------------------------------------------------

def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)


def test_served_runs_open_on_the_runs_spread_and_review_pages(stub, serve):
    stub.respond = Answers("Paris.", "Lyon.", "Paris.", "Paris.", "Paris")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=5), adaptive=False)
    run_id = ask(served)[1].model_extra["spread"]["run_id"]
    ask(served, messages=[{"role": "user", "content": "And of Spain?"}])
    for page in ("pages/runs.py", "pages/spread.py", "pages/review.py"):
        at = _app()
        at.query_params["run"] = str(run_id)
        at.switch_page(page).run()
        assert not at.exception, (page, at.exception)


def test_serve_page_shows_traffic_and_calibration(store, stub, serve):
    agree, scattered = (["Paris."] * 5, "pass"), (CITIES, "fail")
    traffic = _labelled_traffic(store, stub, serve, [agree] * 9 + [scattered] * 3)
    at = _app()
    at.switch_page("pages/serve.py").run()
    assert not at.exception
    listing = at.dataframe[0].value
    assert list(listing["route"]) == ["qa"] and list(listing["requests"]) == [12]
    assert list(listing["abstained (95% CI)"]) == ["0% [0%, 24%]"]  # no threshold: nothing abstained
    shown = " ".join(t.value for t in at.text)
    assert "12 labelled answers" in shown and "AUROC 1.000" in shown
    at.number_input(key="serve_calibrate_run").set_value(traffic[0]["run_id"]).run()
    assert not at.exception
    assert sum("12 labelled answers (12 by reviewers' labels, 0 by checks)" in t.value for t in at.text) == 2


# --- the schema ---------------------------------------------------------------------------

def test_a_database_from_before_m021_opens_and_keeps_its_rows(tmp_path, stub):
    import sqlite_utils

    path = tmp_path / "before.db"
    db = sqlite_utils.Database(path)
    migrations.apply(db, stop_before="m021_served_requests")
    db["prompts"].insert({"id": 1, "name": "p", "version": 1, "system": "", "template": "Q?", "content_hash": "h",
                          "created_at": "2026-01-01", "created_by": "ana"})
    db["runs"].insert({"id": 7, "prompt_id": 1, "name": "old", "spec": json.dumps(
        {"models": ["m"], "temperatures": [1.0], "n": 1, "prompt": "Q?"}), "status": "done", "planned": 1,
        "created_at": "2026-01-01"})
    db["responses"].insert({"run_id": 7, "model": "m", "temperature": 1.0, "sample_idx": 0, "text": "A."})
    db.close()
    with Store(path).connection() as db:
        assert "serve_requests" in db.table_names() and "serve_runs" in db.table_names()
        assert [r["text"] for r in responses.of_run(db, 7)] == ["A."]
        assert run_rows.get_run(db, 7)["name"] == "old"


def test_serving_on_postgresql(stub, pg_url):
    stub.respond = Answers("Paris.", "Paris.", "Lyon.", "Paris.", "Paris.")
    served = Served(Store(pg_url), settings(stub, routes.Route("qa", ("openai/stub-a",), k=5), adaptive=False,
                                            method="exact"))
    try:
        spread = ask(served)[1].model_extra["spread"]
        again = ask(served)[1].model_extra["spread"]
    finally:
        served.close()
    assert spread["confidence"] == 0.8 and again["run_id"] == spread["run_id"]
    with Store(pg_url).connection() as db:
        assert [r["input"] for r in serving.requests(db)] == [1, 0]
        assert len(responses.of_run(db, spread["run_id"])) == 10


def test_spread_calibrate_on_a_route_and_on_its_run(store, stub, serve, capsys):
    from core.cli import main

    agree = (["Paris."] * 5, "pass")
    split = (["Paris.", "Paris.", "Paris.", "Lyon.", "Nice."], "pass")
    wrong_split = (["Lyon.", "Lyon.", "Lyon.", "Paris.", "Nice."], "fail")
    scattered = (["Lyon.", "Lyon.", "Paris.", "Nice.", "Nantes."], "fail")
    served = _labelled_traffic(store, stub, serve, [agree] * 8 + [split] * 2 + [wrong_split] * 2 + [scattered] * 2)
    capsys.readouterr()
    assert main(["calibrate", "--route", "qa", "--precision", "0.6", "--json"]) == 0
    by_route = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["calibrate", "--run", str(served[0]["run_id"]), "--method", "exact", "--precision", "0.6",
                 "--json"]) == 0
    by_run = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for report in (by_route, by_run):
        assert report["points"] == 14 and report["right"] == 10 and report["from_labels"] == 14
        assert report["auroc"]["auroc"] == 0.95
        assert report["threshold"]["threshold"] == 1.0 and report["threshold"]["answered"] == 8
    with store.connection() as db:  # as if `spread regress --set capitals` had made this run
        db["regress_runs"].insert({"set_name": "capitals", "run_id": served[0]["run_id"]})
    assert main(["calibrate", "--golden", "capitals", "--method", "exact", "--precision", "0.6", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["threshold"] == by_run["threshold"]
    assert main(["calibrate", "--route", "qa"]) == 0
    text = capsys.readouterr().out
    assert "AUROC 0.950" in text and "threshold for precision ≥ 0.95" not in text
    assert main(["calibrate", "--route", "nope"]) == 2
    assert "0 labelled answers" in capsys.readouterr().err


def test_the_serve_page_calibrates_a_golden_set_and_does_so_without_served_traffic(store, stub, serve):
    from core.review import golden
    from core.serve import calibration

    agree = (["Paris."] * 5, "pass")
    scattered = (["Lyon.", "Lyon.", "Paris.", "Nice.", "Nantes."], "fail")
    served = _labelled_traffic(store, stub, serve, [agree] * 8 + [scattered] * 4)
    golden.create_set(store, "capitals")
    with store.connection() as db:  # as if `spread regress --set capitals` had made this run
        db["regress_runs"].insert({"set_name": "capitals", "run_id": served[0]["run_id"]})
        db.execute("delete from serve_requests")  # no traffic left: the calibration is still offered
    at = _app()
    at.switch_page("pages/serve.py").run()
    assert not at.exception and any("No served requests yet" in i.value for i in at.info)
    at.selectbox(key="serve_calibrate_set").set_value("capitals").run()
    assert not at.exception
    expected = calibration.as_text(calibration.report(calibration.points_for_golden(store, "capitals"), precision=0.95))
    assert "12 labelled answers" in expected and any(t.value == expected for t in at.text)


def test_routes_from_a_config_file(stub, tmp_path):
    config = tmp_path / "routes.yaml"
    config.write_text("routes:\n  qa:\n    models: [openai/stub-a]\n    k: 3\n    min_confidence: 0.5\n"
                      "    on_low: fallback:strong\n    checks: [{type: max-length, value: 40}]\n"
                      "  strong: openai/stub-b\n")
    defaults = routes.Route("", ("",), 5)
    found = routes.routes_from_file(str(config), defaults, lambda items: [checks.from_dict(i) for i in items])
    assert found["qa"].k == 3 and found["qa"].threshold.value == 0.5 and found["qa"].on_low.route == "strong"
    assert [c.type for c in found["qa"].checks] == ["max-length"] and found["strong"].models == ("openai/stub-b",)
    assert found["strong"].k == 5
    routes.Settings(found).check()
    config.write_text("routes:\n  qa:\n    models: [openai/stub-a]\n    colour: blue\n")
    with pytest.raises(SpreadError, match="unknown key 'colour'"):
        routes.routes_from_file(str(config), defaults, lambda items: [])


def test_a_served_answer_goes_into_a_golden_set(store, stub, serve):
    from core.review import golden

    stub.respond = Answers("Paris.")
    served = serve(routes.Route("qa", ("openai/stub-a",), k=3))
    spread = ask(served, messages=[{"role": "system", "content": "Answer briefly."},
                                   {"role": "user", "content": "Capital of France?"}])[1].model_extra["spread"]
    labels.label(store, spread["chosen_answer_id"], "ana", labels.Label("pass"))
    golden.create_set(store, "capitals")
    golden.add_responses(store, "capitals", [spread["chosen_answer_id"]], who="ana")
    (item,) = golden.items(store, "capitals")
    assert "Capital of France?" in json.dumps(item) and "Paris." in json.dumps(item)


def test_cost_is_recorded_from_the_endpoints_prices(store, stub, serve, monkeypatch):
    from core.models import endpoints
    from core.models.endpoints import Endpoint

    monkeypatch.setenv("TEAM_TOKEN", "team-secret-value-1")
    endpoints.add(store, Endpoint("priced", "openai/served-a", api_base=stub.base_url, key_env="TEAM_TOKEN",
                           price_in=1.0, price_out=2.0))
    stub.respond = Answers("Paris.", "Paris is the capital.", "Paris.")
    served = serve(routes.Route("qa", ("priced",), k=3), adaptive=False)
    completion = ask(served)[1]
    spread = completion.model_extra["spread"]
    usage = completion.usage
    with store.connection() as db:
        (request,) = serving.requests(db)
        rows = responses.of_run(db, spread["run_id"])
    assert request["cost_usd"] == pytest.approx((usage.prompt_tokens * 1.0 + usage.completion_tokens * 2.0) / 1e6)
    assert all(r["cost_usd"] is not None for r in rows)
    assert stub.requests[-1]["headers"]["authorization"] == "Bearer team-secret-value-1"


def test_an_endpoints_own_cap_on_calls_in_flight_holds_across_requests(store, stub, serve):
    from concurrent.futures import ThreadPoolExecutor

    from core.models import endpoints
    from core.models.endpoints import Endpoint

    endpoints.add(store, Endpoint("one-at-a-time", "openai/served-a", api_base=stub.base_url, max_concurrency=1))
    stub.respond = Answers("Paris.")
    stub.latency_s = 0.1
    served = serve(routes.Route("qa", ("one-at-a-time",), k=3), adaptive=False)
    began = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: ask(served), range(2)))
    assert time.perf_counter() - began >= 6 * 0.1  # six calls, one at a time
    starts = sorted(r["t"] for r in stub.requests)
    assert all(b - a >= 0.09 for a, b in zip(starts, starts[1:]))


NO_IMPORT_AFTER_PREPARE = """
import json, sys
from core.store import Store
from core.serve import routes, vote
from core.serve.service import Service

route = routes.Route("qa", ("openai/stub-a",), 5, routes.Threshold.parse("0.6"), routes.OnLow.parse("abstain"), (),
                     1.0, None)
service = Service(Store(sys.argv[1]), routes.Settings({"qa": route}, api_base=sys.argv[2]))
service.prepare()
before = set(sys.modules)
answers = ["Paris is the capital.", "Lyon, a big city in the south of France with 500,000 people.",
           '{"city": "Paris"}', ""]
rows = [{"sample_idx": i, "text": text, "error_type": None} for i, text in enumerate(answers)]
rows[3]["tool_calls"] = json.dumps([{"type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}])
vote.decide(rows, method=service.method, embedder=service.embedder, context="What is the capital of France?")
print(json.dumps({"method": service.method, "imported": sorted(set(sys.modules) - before)}))
"""


def test_no_request_imports_a_module_after_the_server_is_prepared(stub, tmp_path):
    # The first decision on answers that disagree used to import scikit-learn's stop words
    # (about 250 modules, over a second) while the requests in flight waited on it.
    out = _spread_python(NO_IMPORT_AFTER_PREPARE, str(tmp_path / "serve.db"), stub.base_url)
    assert out["method"] == "minilm"  # the embedded model, as a server on a fresh machine runs it
    assert out["imported"] == []


def _spread_python(code: str, *args) -> dict:
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
