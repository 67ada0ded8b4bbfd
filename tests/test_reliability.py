"""Runs survive faults and kills; a shared database loses nothing; keys never leak."""

import asyncio
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib

import pytest

from conftest import ROOT
from core import config
from core.store import Store, responses
from core.store import runs as run_rows
from core.review import golden, labels
from core.run import plan, runner
from test_cli import last_json, spread


def rows_of(run_id, path=None):
    with Store(path).connection() as db:
        return responses.of_run(db, run_id)


def test_every_planned_sample_ends_as_an_answer_or_a_typed_error_under_random_faults(store, stub):
    stub.fail_rate = {"429": 0.1, "429-noretry": 0.05, "500": 0.1, "503": 0.05, "reset": 0.05,
                      "malformed": 0.05, "truncated-sse": 0.05, "timeout": 0.03}
    stub.hang_s = 3
    spec = plan.RunSpec(prompt="What is the capital of France?", models=["openai/stub-a", "openai/stub-b"],
                          temperatures=[0.0, 1.0], n=30, api_base=stub.base_url, timeout_s=0.5,
                          max_attempts=3, backoff_base_s=0.01, backoff_max_s=0.05, concurrency=16)
    run_id = plan.create(store, spec)
    summary = asyncio.run(runner.execute(store, run_id))
    rows = rows_of(run_id)
    assert len(rows) == 120 and summary["status"] == "done"
    assert {(r["variant"], r["input"], r["model"], r["temperature"], r["sample_idx"]) for r in rows} == set(spec.cells())
    for row in rows:
        assert 1 <= row["attempts"] <= 3  # retries stay within their bound
        if row["error_type"] is None:
            assert row["text"] and row["finish_reason"]
        else:
            assert row["error_type"] in {"rate_limit", "server_error", "timeout", "connection"} and row["error_message"]
            assert row["attempts"] == 3  # only recoverable faults here: an error row used every attempt
    assert stub.count() == sum(r["attempts"] for r in rows)  # no hidden retries by the SDK
    assert summary["responses"] + summary["errors"] == 120 and summary["responses"] > 60


def test_a_killed_run_keeps_its_answers_shows_interrupted_and_resumes_without_duplicates(stub, tmp_path):
    stub.latency_s = 0.05
    db = str(tmp_path / "kill.db")
    process = subprocess.Popen(
        [sys.executable, "-m", "core.cli", "--db", db, "run", "--prompt", "Q?", "--model", "openai/stub-a",
         "--temperature", "1", "--n", "200", "--concurrency", "2", "--per-model", "2",
         "--api-base", stub.base_url, "--json"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.2)
        try:
            with sqlite3.connect(db) as conn:
                if conn.execute("select count(*) from responses").fetchone()[0] >= 10:
                    break
        except sqlite3.Error:
            continue
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(db) as conn:
        before = {row for row in conn.execute("select id, sample_idx, text from responses")}
    assert 10 <= len(before) < 200
    (run,) = last_json(spread("--db", db, "runs", "--json"))
    assert run["status"] == "interrupted"

    stub.latency_s = 0
    resumed = last_json(spread("--db", db, "resume", "1", "--json"))
    assert resumed["responses"] == 200 and resumed["status"] == "done"
    with sqlite3.connect(db) as conn:
        after = {row for row in conn.execute("select id, sample_idx, text from responses")}
        (distinct,) = conn.execute("select count(distinct sample_idx) from responses").fetchone()
    assert before <= after  # every answer received before the kill is still there, unchanged
    assert len(after) == distinct == 200


def _write_answers(path, run_id, start, seconds, out):
    os.environ["SPREAD_DB"] = path
    written, i = 0, start
    deadline = time.time() + seconds
    while time.time() < deadline:
        with Store(path).connection() as db:
            responses.save_response(db, {"run_id": run_id, "model": "m", "temperature": 1.0, "sample_idx": i,
                                     "text": f"answer {i}", "attempts": 1})
        written, i = written + 1, i + 1
    out.put(("answers", written))


def _write_labels(path, ids, reviewer, seconds, out):
    os.environ["SPREAD_DB"] = path
    store = Store(path)
    written, k = 0, 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        labels.label(store, ids[k % len(ids)], reviewer, labels.Label("pass" if k % 2 else "fail", note=str(k)))
        written, k = written + 1, k + 1
    out.put(("labels", (reviewer, min(written, len(ids)), written)))


def _read_runs(path, seconds, out):
    os.environ["SPREAD_DB"] = path
    checks, problems = 0, []
    deadline = time.time() + seconds
    while time.time() < deadline:
        with Store(path).connection() as db:
            for run in run_rows.list_runs(db):
                checks += 1
                if run["prompt_version"] is None or run["answers"] + run["errors"] != run["received"]:
                    problems.append(run["id"])
    out.put(("reader", (checks, problems)))


def test_several_processes_share_one_database_without_losing_a_write(tmp_path):
    path = str(tmp_path / "shared.db")
    os.environ["SPREAD_DB"] = path
    spec = {"prompt": "Q?", "system": "", "name": "q", "models": ["m"], "temperatures": [1.0], "n": 100000}
    with Store(path).connection() as db:
        runs = [run_rows.create_run(db, spec=spec, planned=100000) for _ in range(2)]
        responses.save_response(db, {"run_id": runs[0], "model": "m", "temperature": 1.0, "sample_idx": 99999,
                                 "text": "seed", "attempts": 1})
    seed_id = rows_of(runs[0], path)[0]["id"]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    seconds = 3
    workers = [context.Process(target=_write_answers, args=(path, runs[k % 2], k * 10000, seconds, out))
               for k in range(3)]
    workers += [context.Process(target=_write_labels, args=(path, [seed_id], f"r{k}", seconds, out))
                for k in range(2)]
    workers.append(context.Process(target=_read_runs, args=(path, seconds, out)))
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0] * len(workers)  # nobody met "database is locked"
    answers = sum(v for kind, v in results if kind == "answers")
    with Store(path).connection() as db:
        assert db["responses"].count == answers + 1  # every answer written is there
        stored = {row["reviewer"]: row for row in db.query("select * from labels")}
        history = db.execute("select count(*) from label_history").fetchone()[0]
    for kind, value in results:
        if kind == "labels":
            reviewer, _, written = value
            assert stored[reviewer]["note"] == str(written - 1)  # the last label each one gave
    assert history == sum(v[2] for kind, v in results if kind == "labels")
    (checks, problems) = next(v for kind, v in results if kind == "reader")
    assert checks > 0 and problems == []  # a reader never saw a half-written run


PLANTED = "sk-PLANTED-0123456789abcdefSECRET"
# An endpoint's own key, in a variable whose name does not end in _API_KEY.
PLANTED_TEAM = "team-PLANTED-9876543210zyxwTEAMKEY"


def test_a_planted_key_never_reaches_the_database_exports_logs_or_errors(stub, tmp_path, monkeypatch):
    stub.echo_auth = True
    stub.inject("401", "401")
    db = tmp_path / "keys.db"
    env = {"OPENAI_API_KEY": PLANTED, "TEAM_VLLM_KEY": PLANTED_TEAM}
    run = spread("--db", str(db), "run", "--prompt", "Q?", "--model", "openai/stub-a", "--temperature", "1",
                 "--n", "4", "--concurrency", "1", "--api-base", stub.base_url, "--json", env=env)
    assert stub.requests[0]["headers"]["authorization"] == f"Bearer {PLANTED}"  # the key was used...
    summary = last_json(run)
    assert summary["errors"] == 2
    shown = spread("--db", str(db), "show", "1", "--json", env=env)
    errors = [a["error_message"] for c in last_json(shown)["cells"] for a in c["answers"] if a["error_type"]]
    assert all("***" in e for e in errors)  # ...and scrubbed from what the provider echoed
    spread("--db", str(db), "label", "3", "--verdict", "pass", "--reviewer", "ana", env=env)
    spread("--db", str(db), "golden", "create", "g", env=env)
    spread("--db", str(db), "golden", "add", "g", "--response", "3", env=env)
    outputs = [run.stdout + run.stderr, shown.stdout + shown.stderr]
    for fmt in ("jsonl", "csv", "openai", "promptfoo", "parquet"):
        spread("--db", str(db), "export", "g", "--format", fmt, "--out", str(tmp_path / f"g.{fmt}"), env=env)

    # An endpoint whose key lives in TEAM_VLLM_KEY: used, and echoed back by a careless server.
    outputs.append(spread("--db", str(db), "models", "add", "team", "--model", "openai/stub-a", "--api-base",
                          stub.base_url, "--key-env", "TEAM_VLLM_KEY", env=env).stdout)
    for args in (["models", "list"], ["models", "list", "--json"], ["models", "--json"],
                 ["models", "export", "--out", str(tmp_path / "config.yaml")]):
        result = spread("--db", str(db), *args, env=env)
        outputs.append(result.stdout + result.stderr)
    stub.inject("401")
    failed_test = spread("--db", str(db), "models", "test", "team", env=env, check=False)
    assert failed_test.returncode == 1 and "***" in failed_test.stderr  # echoed, then scrubbed
    passed_test = spread("--db", str(db), "models", "test", "team", "--json", env=env)
    assert stub.requests[-1]["headers"]["authorization"] == f"Bearer {PLANTED_TEAM}"  # the endpoint's key was used
    stub.inject("401", "401")
    team_run = spread("--db", str(db), "run", "--prompt", "Q?", "--model", "team", "--temperature", "1", "--n", "3",
                      "--concurrency", "1", "--json", env=env)
    assert last_json(team_run)["errors"] == 2
    outputs += [failed_test.stdout + failed_test.stderr, passed_test.stdout + passed_test.stderr,
                team_run.stdout + team_run.stderr]
    with Store(db).connection() as conn:
        team_errors = [r["error_message"] for r in conn.query("select error_message from responses where "
                                                             "model = 'team' and error_type is not null")]
    assert len(team_errors) == 2 and all("***" in e for e in team_errors)

    # The Models page, with the keys in this process's environment, testing the endpoint.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SPREAD_DB", str(db))
    outputs.append(_models_page_text(stub))

    artefacts = [p for p in tmp_path.iterdir() if p.is_file()]
    assert any(p.name.endswith("-wal") or p.suffix == ".db" for p in artefacts)
    assert any(p.name == "config.yaml" for p in artefacts)
    for path in artefacts:
        for planted in (PLANTED, PLANTED_TEAM):
            assert planted.encode() not in path.read_bytes(), path.name
            assert planted[:20].encode() not in path.read_bytes(), path.name
    for text in outputs:
        assert PLANTED not in text and PLANTED_TEAM not in text
        assert PLANTED[:20] not in text and PLANTED_TEAM[:20] not in text


def _models_page_text(stub) -> str:
    """Everything the Models page shows after a Test whose error echoes the key."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/models.py").run()
    at.selectbox(key="ep_pick").set_value("team").run()
    stub.inject("401")
    at.button(key="ep_test_button").click().run()
    assert not at.exception and "***" in at.error[0].value.replace("\\", "")
    texts = []

    def walk(node):
        if getattr(node, "proto", None) is not None:
            texts.append(str(node.proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    texts += [df.value.to_csv() for df in at.dataframe]
    texts += [str(at.session_state[k]) for k in at.session_state if not str(k).startswith("$$")]
    assert any("TEAM_VLLM_KEY" in t for t in texts)  # the variable's name is shown, its value never
    return "\n".join(texts)


def test_error_details_shown_to_browsers_are_not_full():
    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["client"]["showErrorDetails"] not in ("full", True, "true")
    assert settings["server"]["address"] == "127.0.0.1"
    assert settings["browser"]["gatherUsageStats"] is False


BIG = "x" * (1 << 20)
NOT_UTF8 = b"caf\xe9 \xff"


@pytest.mark.parametrize("args,message", [
    (["run", "--prompt-file", "BIG", "--model", "openai/stub-a", "--temperature", "1", "--n", "1"], "longer than"),
    (["run", "--prompt-file", "NOT_UTF8", "--model", "openai/stub-a", "--temperature", "1", "--n", "1"],
     "not valid UTF-8"),
    (["run", "--prompt", NOT_UTF8, "--model", "openai/stub-a", "--temperature", "1", "--n", "1"], "not valid UTF-8"),
    (["run", "--prompt", "Q", "--system", NOT_UTF8, "--model", "openai/stub-a", "--temperature", "1", "--n", "1"],
     "not valid UTF-8"),
    (["run", "--prompt", "Q", "--model", "openai/stub-a", "--temperature", "hot", "--n", "1"], "not a valid float"),
    (["run", "--prompt", "Q", "--model", "openai/stub-a", "--temperature", "1", "--n", "many"], "not a valid integer"),
    (["run", "--prompt", "Q", "--model", "openai/stub-a", "--temperature", "nan", "--n", "1"], "not a number"),
    (["run", "--prompt", "Q", "--model", "", "--temperature", "1", "--n", "1"], "no model chosen"),
    (["run", "--prompt", "Q", "--model", "openai/stub-a", "--temperature", "1", "--n", "1", "--max-tokens", "0"],
     "max tokens"),
    (["run", "--prompt", "Q", "--model", "openai/stub-a", "--temperature", "1", "--n", "1", "--seed", "-4"], "seed"),
    (["run", "--prompt", "Q", "--model", "openai/stub-a", "--temperature", "1", "--n", "1", "--api-base", "ftp://x"],
     "not an http"),
    (["resume", "abc"], "not a valid integer"),
    (["show", "1", "--threshold", "3"], "threshold"),
    (["label", "1", "--verdict", "great"], "is not one of"),
    (["label", "1", "--verdict", "pass", "--score", "9"], "not in the range"),
    (["label", "1", "--verdict", "pass", "--reviewer", NOT_UTF8], "not valid UTF-8"),
    (["label", "1", "--verdict", "pass", "--reviewer", "ana", "--note", NOT_UTF8], "not valid UTF-8"),
    (["label", "404", "--verdict", "pass", "--reviewer", "ana"], "no answer with id 404"),
    (["golden", "create", ""], "needs a name"),
    (["golden", "create", NOT_UTF8], "not valid UTF-8"),
    (["golden", "add", "g", "--response", "1"], "no golden set"),
    (["export", "g", "--format", "xml", "--out", "x"], "is not one of"),
    (["import", "g", "/nonexistent/file.jsonl"], "cannot read"),
])
def test_bad_input_everywhere_gets_one_line_and_writes_nothing(stub, tmp_path, args, message):
    db = tmp_path / "bad.db"
    run_id = plan.create(Store(db), plan.RunSpec(prompt="Q?", models=["openai/stub-a"], temperatures=[1.0], n=1,
                                          api_base=stub.base_url))
    asyncio.run(runner.execute(Store(db), run_id))  # one good run (answer id 1) to aim at
    before = _counts(db)
    (tmp_path / "BIG").write_text(BIG)  # a 1 MB prompt: too long for one command-line argument
    (tmp_path / "NOT_UTF8").write_bytes(NOT_UTF8)
    args = [str(tmp_path / a) if a in ("BIG", "NOT_UTF8") else a for a in args]
    if "run" == args[0] and "--api-base" not in args:
        args += ["--api-base", stub.base_url]
    command = [sys.executable.encode(), b"-m", b"core.cli", b"--db", str(db).encode()]
    command += [a if isinstance(a, bytes) else a.encode() for a in args]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=120)
    stderr = result.stderr.decode(errors="replace").strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(stderr) == 1 and stderr[0].startswith("spread: error:") and message in stderr[0]
    assert _counts(db) == before


def _counts(db) -> dict:
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return {t: conn.execute(f"select count(*) from [{t}]").fetchone()[0] for t in tables}
