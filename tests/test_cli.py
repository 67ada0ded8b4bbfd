"""The `spread` command as a subprocess, as other tools drive it."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

from core.store import Store


def spread(*args, env=None, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
        env=dict(os.environ, **(env or {})), timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stderr}")
    return result


def last_json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_run_two_stub_models_two_temperatures_five_samples(stub, tmp_path):
    db = tmp_path / "cli.db"
    result = spread("--db", str(db), "run", "--prompt", "What is the capital of France?",
                    "--model", "openai/stub-a", "--model", "openai/stub-b",
                    "--temperature", "0", "--temperature", "1", "--n", "5",
                    "--api-base", stub.base_url, "--seed", "3", "--json")
    summary = last_json(result)
    assert summary["responses"] == 20 and summary["errors"] == 0
    assert summary["run_id"] == 1 and summary["wall_s"] > 0
    assert summary["cost_usd"] is None  # stub models have no known price
    assert db.exists()

    shown = last_json(spread("--db", str(db), "show", "1", "--json"))
    assert len(shown["cells"]) == 4
    for cell in shown["cells"]:
        assert cell["count"] == 5 and cell["errors"] == 0
        assert cell["latency_ms_p50"] > 0 and cell["latency_ms_p95"] >= cell["latency_ms_p50"]
        assert cell["prompt_tokens"] > 0 and cell["completion_tokens"] > 0
        assert len(cell["answers"]) == 5

    runs = last_json(spread("--db", str(db), "runs", "--json"))
    assert [r["id"] for r in runs] == [1] and runs[0]["status"] == "done"

    text = spread("--db", str(db), "show", "1").stdout
    assert "openai/stub-a @ T=1.0" in text and "latency p50" in text


def test_run_without_json_prints_progress_on_stderr_and_a_summary(stub):
    result = spread("run", "--prompt", "Hi?", "--model", "openai/stub-a", "--temperature", "1",
                    "--n", "3", "--api-base", stub.base_url)
    assert "3/3" in result.stderr
    assert "3 answers, 0 errors" in result.stdout


@pytest.mark.sqlite_only
def test_spread_db_environment_variable_is_the_default(stub, spread_home):
    spread("run", "--prompt", "Hi?", "--model", "openai/stub-a", "--temperature", "1", "--n", "1",
           "--api-base", stub.base_url, "--json")
    assert (spread_home / "spread.db").exists()


def test_resume_fills_only_what_is_missing(stub, tmp_path):
    db = str(tmp_path / "r.db")
    stub.inject("401", "401")
    first = last_json(spread("--db", db, "run", "--prompt", "Q?", "--model", "openai/stub-a",
                             "--temperature", "1", "--n", "4", "--concurrency", "1",
                             "--api-base", stub.base_url, "--json"))
    assert first["errors"] == 2 and first["responses"] == 2
    again = last_json(spread("--db", db, "resume", "1", "--json"))
    assert again["errors"] == 2 and stub.count() == 4
    fixed = last_json(spread("--db", db, "resume", "1", "--retry-errors", "--json"))
    assert fixed["errors"] == 0 and fixed["responses"] == 4 and stub.count() == 6


def test_models_lists_the_embedded_models_first_with_key_status():
    entries = last_json(spread("models", "--json", env={"OPENAI_API_KEY": "sk-test-not-real"}))
    # The contract: an embedded instruct model, listed first (the default), then Gemma.
    assert entries[0]["id"].startswith("local/") and "instruct" in entries[0]["id"] and entries[0]["key_present"]
    assert entries[1]["id"] == "local/gemma-3-270m" and entries[1]["key_present"]
    openai = next(e for e in entries if e["provider"] == "openai")
    assert openai["key_present"] is True
    anthropic = next(e for e in entries if e["provider"] == "anthropic")
    assert anthropic["key_present"] is False
    assert "sk-test-not-real" not in json.dumps(entries)


@pytest.mark.parametrize("args,message", [
    (["run", "--prompt", "", "--model", "local/gemma-3-270m", "--temperature", "1", "--n", "1"], "prompt is empty"),
    (["run", "--prompt", "Q", "--model", "local/gemma-3-270m", "--temperature", "1", "--n", "0"], "N must be"),
    (["run", "--prompt", "Q", "--model", "local/gemma-3-270m", "--temperature", "1", "--n", "1001"], "N must be"),
    (["run", "--prompt", "Q", "--model", "local/gemma-3-270m", "--temperature", "2.1", "--n", "1"], "outside 0..2"),
    (["run", "--prompt", "Q", "--model", "nosuch/model", "--temperature", "1", "--n", "1"], "unknown model id"),
    (["run", "--prompt", "Q", "--model", "anthropic/claude-3-5-haiku-latest", "--temperature", "1", "--n", "1"],
     "missing key"),
    (["run", "--prompt", "Q", "--model", "openai/x", "--api-base", "http://127.0.0.1:9/v1",
      "--temperature", "1", "--n", "1"], "unreachable"),
    (["show", "999"], "no run with id 999"),
    (["resume", "999"], "no run with id 999"),
])
def test_bad_input_exits_non_zero_with_one_line_and_writes_nothing(args, message, tmp_path):
    db = tmp_path / "bad.db"
    result = spread("--db", str(db), *args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("spread: error:")
    if db.exists():
        import sqlite3

        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_every_command_has_help_and_is_in_the_command_line_page():
    import click

    from core.cli import cli

    # The hand-written synopsis, above the generated --help pages (which name every command anyway).
    readme = (ROOT / "docs" / "cli.md").read_text().split("<!-- [[[cog", 1)[0]

    def walk(group, path):
        for name, command in group.commands.items():
            yield f"{path} {name}", command
            if isinstance(command, click.Group):
                yield from walk(command, f"{path} {name}")

    for path, command in walk(cli, "spread"):
        assert command.help, f"{path} has no help text"
        name = path.split(" ", 1)[1]
        assert path in readme or f"spread [--db PATH] {name}" in readme, path


def test_show_json_reports_meaning_clusters_per_cell(stub, tmp_path):
    stub.answers = ["Paris.", "The capital of France is Paris.", "Lyon."]
    db = str(tmp_path / "c.db")
    spread("--db", db, "run", "--prompt", "What is the capital of France?", "--model", "openai/stub-a",
           "--temperature", "0", "--temperature", "1", "--n", "8", "--api-base", stub.base_url, "--seed", "1")
    shown = last_json(spread("--db", db, "show", "1", "--json", "--method", "minilm"))
    assert shown["method"] == "minilm"
    cold, hot = shown["cells"]
    assert cold["n_clusters"] == 1 and cold["consistency"] == 1.0
    assert cold["clusters"][0]["representative"] == "Paris." and cold["clusters"][0]["size"] == 8
    assert sorted(cold["clusters"][0]["member_ids"]) == sorted(a["id"] for a in cold["answers"])
    assert hot["n_clusters"] >= 2 and 0 < hot["consistency_low"] <= hot["consistency"] <= hot["consistency_high"]
    assert {"entropy", "mean_similarity", "length_mean", "latency_ms_p99", "cost_per_call_p95"} <= set(hot)


def test_label_golden_export_import_from_the_command_line(stub, tmp_path):
    stub.answers = ["Paris."]
    db = str(tmp_path / "g.db")
    spread("--db", db, "run", "--prompt", "What is the capital of France?", "--model", "openai/stub-a",
           "--temperature", "0", "--n", "2", "--api-base", stub.base_url)
    stored = last_json(spread("--db", db, "label", "1", "--verdict", "pass", "--reviewer", "ana", "--score", "5",
                              "--tag", "geo", "--correction", "Paris is the capital of France.", "--json"))
    assert (stored["verdict"], stored["reviewer"], stored["score"], stored["tags"]) == ("pass", "ana", 5, ["geo"])
    spread("--db", db, "label", "1", "--verdict", "fail", "--reviewer", "ben")
    agreement = last_json(spread("--db", db, "agreement", "1", "--json"))
    assert agreement["percent"] == 0.0 and agreement["disagreements"][0]["response_id"] == 1

    spread("--db", db, "golden", "create", "capitals")
    assert "version 1" in spread("--db", db, "golden", "add", "capitals", "--response", "1").stdout
    sets = last_json(spread("--db", db, "golden", "list", "--json"))
    assert sets[0]["name"] == "capitals" and sets[0]["items"] == 1 and sets[0]["version"] == 1
    for fmt in ("jsonl", "csv", "openai", "promptfoo", "parquet"):
        out = tmp_path / f"capitals.{fmt}"
        result = spread("--db", db, "export", "capitals", "--format", fmt, "--out", str(out))
        assert out.stat().st_size > 0 and "version 1" in result.stdout
    exported = (tmp_path / "capitals.jsonl").read_text()
    assert json.loads(exported)["reference"] == "Paris is the capital of France."

    other = str(tmp_path / "other.db")
    imported = last_json(spread("--db", other, "import", "capitals", str(tmp_path / "capitals.jsonl"), "--json"))
    assert imported["imported"] == 1 and imported["version"] == 1
    again = tmp_path / "again.jsonl"
    spread("--db", other, "export", "capitals", "--format", "jsonl", "--out", str(again))
    assert again.read_text() == exported


@pytest.mark.parametrize("args,message", [
    (["label", "1", "--verdict", "pass", "--reviewer", "ana"], "no answer with id 1"),
    (["golden", "add", "nope", "--response", "1"], "no golden set named 'nope'"),
    (["export", "nope", "--format", "jsonl", "--out", "x.jsonl"], "no golden set named 'nope'"),
    (["import", "s", "missing.jsonl"], "cannot read"),
    (["import", "s", "data.txt"], "takes a .jsonl or .csv file"),
    (["agreement", "5"], "no run with id 5"),
])
def test_review_commands_refuse_bad_input_with_one_line(args, message, tmp_path):
    result = spread("--db", str(tmp_path / "e.db"), *args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_models_add_list_test_run_by_name_and_remove(stub, tmp_path):
    db = str(tmp_path / "m.db")
    env = {"TEAM_VLLM_KEY": "team-key-value-123"}
    added = spread("--db", db, "models", "add", "team", "--model", "openai/served", "--api-base", stub.base_url,
                   "--key-env", "TEAM_VLLM_KEY", "--param", "top_k=40", "--param", "reasoning_effort=low",
                   "--price-in", "1", "--price-out", "2", "--max-concurrency", "2", "--rpm", "6000",
                   "--timeout", "30", env=env)
    assert "endpoint 'team' added" in added.stdout and "top_k=40" in added.stdout
    (entry,) = last_json(spread("--db", db, "models", "list", "--json", env=env))
    assert (entry["name"], entry["model"], entry["key_env"], entry["params"]) == (
        "team", "openai/served", "TEAM_VLLM_KEY", {"top_k": 40, "reasoning_effort": "low"})
    assert (entry["price_in"], entry["max_concurrency"], entry["rpm"], entry["timeout_s"]) == (1.0, 2, 6000.0, 30.0)
    assert entry["ready"] and entry["key"] == "set" and entry["server"] == "reachable"
    assert "not ready" in spread("--db", db, "models", "list").stdout  # no key in this environment

    tested = last_json(spread("--db", db, "models", "test", "team", "--json", env=env))
    assert tested["ok"] and tested["answer"] and tested["provider_model"] == "served-2024-stub"
    assert tested["latency_ms"] > 0 and tested["completion_tokens"] > 0 and tested["cost_usd"] > 0
    assert stub.requests[-1]["headers"]["authorization"] == "Bearer team-key-value-123"

    # The bare `spread models` still lists the embedded models and providers, as before.
    assert spread("--db", db, "models").stdout.startswith("local/smollm2-135m-instruct")

    summary = last_json(spread("--db", db, "run", "--prompt", "Q?", "--model", "team", "--model", "openai/stub-b",
                               "--api-base", stub.base_url, "--temperature", "1", "--n", "2", "--json", env=env))
    assert summary["responses"] == 4 and summary["errors"] == 0
    sent = [r["body"] for r in stub.requests if r["body"] and r["body"].get("messages")][-4:]
    assert sorted(b["model"] for b in sent) == ["served", "served", "stub-b", "stub-b"]
    assert all(b.get("top_k") == 40 for b in sent if b["model"] == "served")
    assert not any("top_k" in b for b in sent if b["model"] == "stub-b")
    import sqlite3

    with sqlite3.connect(db) as conn:  # the model column holds the names chosen
        assert {r[0] for r in conn.execute("select model from responses")} == {"team", "openai/stub-b"}

    exported = spread("--db", db, "models", "export").stdout
    assert "model_name: team" in exported and "api_key: os.environ/TEAM_VLLM_KEY" in exported
    assert "removed" in spread("--db", db, "models", "remove", "team").stdout
    assert last_json(spread("--db", db, "models", "list", "--json")) == []
    (tmp_path / "config.yaml").write_text(exported)
    imported = spread("--db", db, "models", "import", str(tmp_path / "config.yaml"))
    assert "added 'team'" in imported.stdout
    with sqlite3.connect(db) as conn:
        assert conn.execute("select name, key_env, params from endpoints").fetchall() == [
            ("team", "TEAM_VLLM_KEY", '{"reasoning_effort": "low", "top_k": 40}')]


@pytest.mark.parametrize("args,message", [
    (["models", "add", "x", "--model", "openai/x", "--param", "top_k"], "is not KEY=VALUE"),
    (["models", "add", "x", "--model", "openai/x", "--key-env", "sk-live-123"], "never the key itself"),
    (["models", "add", "x", "--model", "openai/x", "--price-in", "1"], "both prices"),
    (["models", "add", "x", "--model", "openai/x", "--rpm", "0"], "above 0"),
    (["models", "add", "x", "--model", "nosuch/x"], "unknown model id"),
    (["models", "remove", "nope"], "no endpoint named 'nope'"),
    (["models", "import", "BAD_CONFIG"], "nothing imported"),
    (["models", "import", "missing.yaml"], "cannot read"),
    (["run", "--prompt", "Q", "--model", "gone", "--temperature", "1", "--n", "1"], "endpoint 'gone': api_base"),
])
def test_models_commands_refuse_bad_input_with_one_line_and_write_nothing(args, message, tmp_path):
    from core.models import endpoints

    db = tmp_path / "bad.db"
    endpoints.add(Store(db), endpoints.Endpoint("gone", "openai/x", api_base="http://127.0.0.1:9/v1"))
    (tmp_path / "bad.yaml").write_text("model_list:\n  - model_name: a\n    litellm_params: {model: openai/a}\n"
                                       "  - model_name: b\n    litellm_params: {model: openai/b, api_key: sk-1}\n")
    args = [str(tmp_path / "bad.yaml") if a == "BAD_CONFIG" else a for a in args]
    result = spread("--db", str(db), *args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("spread: error:")
    assert "sk-" not in result.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("select name from endpoints")] == ["gone"]
        assert conn.execute("select count(*) from runs").fetchone()[0] == 0


def test_the_newcomers_mixed_run_is_refused_before_anything_is_written(stub, tmp_path):
    """Two cloud ids and a local --api-base: the Anthropic key is missing, so nothing runs."""
    db = tmp_path / "n.db"
    result = spread("--db", str(db), "run", "--prompt", "Q?", "--model", "openai/gpt-4o-mini", "--model",
                    "anthropic/claude-3-5-haiku-20241022", "--api-base", stub.base_url, "--temperature", "1",
                    "--n", "3", check=False)
    assert result.returncode == 2 and "missing key for anthropic/claude-3-5-haiku-20241022" in result.stderr
    assert stub.count() == 0 and not db.exists()  # refused before anything was written
