"""The regression gate: statistics against reference values, its false-alarm rate and power by
simulation, and `spread regress` end to end against the loopback stub."""

import json
from xml.etree import ElementTree

import pytest
from scipy import stats as scipy_stats

from core.analyse import stats
from core.evaluate import power, regress
from test_cli import last_json, spread as cli


def test_wilson_and_fisher_match_published_values():
    low, high = stats.wilson(6, 10)
    assert (round(low, 4), round(high, 4)) == (0.3127, 0.8318)  # Wilson (1927) score interval, 95%
    # Fisher's lady tasting tea: 3 of 4 cups right each way, one-sided p = 0.2429.
    assert regress.stratified_p_value([(1, 4, 3, 4)]) == pytest.approx(0.2429, abs=1e-4)
    assert scipy_stats.fisher_exact([[1, 3], [3, 1]], alternative="less").pvalue == pytest.approx(0.2429, abs=1e-4)


def test_the_stratified_test_is_fishers_for_one_item_and_sums_evidence_over_items():
    for table in [(2, 10, 9, 10), (5, 10, 5, 10), (0, 6, 6, 6), (7, 8, 3, 8)]:
        passes, n, base, m = table
        fisher = scipy_stats.fisher_exact([[passes, n - passes], [base, m - base]], alternative="less").pvalue
        assert regress.stratified_p_value([table]) == pytest.approx(fisher, rel=1e-9)
    # Ten items each a little worse: no single item is significant, together they are.
    strata = [(7, 10, 9, 10)] * 10
    assert regress.stratified_p_value(strata[:1]) > 0.2
    assert regress.stratified_p_value(strata) < 0.01
    # No change at all: nothing to see.
    assert regress.stratified_p_value([(9, 10, 9, 10)] * 10) > 0.5


def test_an_unchanged_candidate_fails_the_gate_at_most_alpha_of_the_time():
    """The statistical contract, by simulation: 400 regress runs of 20 items × K=10 whose
    items pass with fixed probabilities, candidate identical to baseline."""
    result = power.simulate(items=20, k=10, drop=0.0, alpha=0.05, runs=400, seed=7)
    assert result["runs"] >= 200 and result["rate"] <= 0.05
    few = power.simulate(items=5, k=3, drop=0.0, alpha=0.10, runs=300, seed=3)
    assert few["rate"] <= 0.10


def test_a_real_drop_is_caught():
    result = power.simulate(items=20, k=10, drop=0.2, alpha=0.05, runs=200, seed=7)
    assert result["rate"] >= 0.8


def golden_file(tmp_path, n_items=4):
    """A golden set as an export file: capitals, each with accepted and rejected answers."""
    items = [("France", "Paris", "Lyon"), ("Japan", "Tokyo", "Kyoto"), ("Italy", "Rome", "Milan"),
             ("Peru", "Lima", "Cusco"), ("Egypt", "Cairo", "Alexandria")][:n_items]
    lines = [json.dumps({
        "item_key": country.lower(), "set": "capitals", "set_version": 1,
        "input": {"system": "Answer with the city.", "prompt": f"What is the capital of {country}?",
                  "vars": {"country": country}, "template": "What is the capital of {{country}}?",
                  "system_template": "Answer with the city."},
        "reference": right, "accepted": [right, f"The capital of {country} is {right}."],
        "rejected": [wrong], "assertions": [], "tags": [], "source": {"prompt_name": "capitals", "prompt_version": 1},
    }) for country, right, wrong in items]
    path = tmp_path / "capitals.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path, items


def answer_with(items, right: bool):
    def respond(body):
        prompt = body["messages"][-1]["content"]
        for country, good, bad in items:
            if country in prompt:
                return f"{good}." if right else f"{bad}."
        return "I don't know."
    return respond


def test_spread_regress_passes_an_unchanged_candidate_and_fails_one_that_answers_from_the_rejected_side(
        stub, tmp_path):
    path, items = golden_file(tmp_path)
    db = str(tmp_path / "regress.db")
    cli("--db", db, "import", "capitals", str(path))
    stub.respond = answer_with(items, right=True)
    args = ["--db", db, "regress", "capitals", "--model", "openai/stub-a", "--api-base", stub.base_url,
            "--n", "6", "--json"]
    first = last_json(cli(*args, "--min-pass-rate", "0.9", "--junit", str(tmp_path / "first.xml")))
    assert first["gate"] == "pass" and first["pass_rate"] == 1.0 and first["regress_id"] == 1
    assert {"regress_id", "gate", "pass_rate", "pass_rate_low", "pass_rate_high", "items"} <= set(first)
    assert [(i["key"], i["passes"], i["samples"], i["pass_rate"]) for i in first["items"]] == [
        (country.lower(), 6, 6, 1.0) for country, _, _ in items]
    sent = {r["body"]["messages"][-1]["content"] for r in stub.requests}
    assert sent == {f"What is the capital of {c}?" for c, _, _ in items}  # items keep their prompt and system
    assert {r["body"]["messages"][0]["content"] for r in stub.requests} == {"Answer with the city."}

    same = cli(*args, "--baseline", "1", check=False)
    assert same.returncode == 0 and last_json(same)["gate"] == "pass" and last_json(same)["baseline_id"] == 1

    stub.respond = answer_with(items, right=False)
    stub.model_suffix = "-2025-stub"  # and the provider silently swapped the model
    worse = cli(*args, "--baseline", "1", "--junit", str(tmp_path / "worse.xml"), check=False)
    assert worse.returncode == 1
    result = last_json(worse)
    assert result["gate"] == "fail" and result["pass_rate"] == 0.0
    assert result["baseline_id"] == 1 and result["drop"] == 1.0 and result["p_value"] < 0.001
    assert result["items_regressed"] == len(items) and result["model_changed"]
    assert any("another model" in note for note in result["notes"])
    suite = ElementTree.parse(tmp_path / "worse.xml").getroot()
    cases = suite.findall("testcase")
    assert sorted(c.get("name") for c in cases) == sorted(c.lower() for c, _, _ in items)
    assert all(c.find("failure") is not None for c in cases)
    assert "Lyon." in next(c for c in cases if c.get("name") == "france").find("failure").text
    assert ElementTree.parse(tmp_path / "first.xml").getroot().get("failures") == "0"


def test_regress_at_another_prompt_version_re_renders_each_item(stub, tmp_path):
    path, items = golden_file(tmp_path, n_items=2)
    db = str(tmp_path / "versions.db")
    cli("--db", db, "import", "capitals", str(path))
    # Versions 1 and 2 of the prompt "capitals" (a named variant is versioned under its name).
    stub.respond = answer_with(items, right=True)
    for text in ("What is the capital of {{country}}?", "Name the capital city of {{country}}, one word."):
        cli("--db", db, "run", "--prompt", text, "--label", "capitals", "--var", "country=France",
            "--model", "openai/stub-a", "--temperature", "0", "--n", "1", "--api-base", stub.base_url)
    stub.requests.clear()
    result = last_json(cli("--db", db, "regress", "capitals", "--model", "openai/stub-a", "--api-base",
                           stub.base_url, "--prompt-version", "2", "--n", "2", "--json"))
    assert result["prompt_version"] == 2 and result["gate"] == "pass"
    assert {r["body"]["messages"][-1]["content"] for r in stub.requests} == {
        "Name the capital city of France, one word.", "Name the capital city of Japan, one word."}
    missing = cli("--db", db, "regress", "capitals", "--model", "openai/stub-a", "--api-base", stub.base_url,
                  "--prompt-version", "9", check=False)
    assert missing.returncode == 2 and "no version 9 of the prompt 'capitals'" in missing.stderr


@pytest.mark.parametrize("args,message", [
    (["regress", "nope", "--model", "openai/stub-a"], "no golden set named 'nope'"),
    (["regress", "capitals", "--model", "openai/stub-a", "--max-drop", "0.1"], "--max-drop needs --baseline"),
    (["regress", "capitals", "--model", "openai/stub-a", "--baseline", "7"], "no regress run with id 7"),
    (["regress", "capitals", "--model", "openai/stub-a", "--alpha", "1.5"], "alpha must be in (0, 1)"),
    (["regress", "capitals", "--model", "openai/stub-a", "--min-pass-rate", "2"], "min pass rate must be in 0..1"),
])
def test_regress_usage_errors_exit_2_and_sample_nothing(stub, tmp_path, args, message):
    path, _ = golden_file(tmp_path, n_items=1)
    db = str(tmp_path / "usage.db")
    cli("--db", db, "import", "capitals", str(path))
    result = cli("--db", db, *args, "--api-base", stub.base_url, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0]
    assert stub.count() == 0


@pytest.mark.local_model
def test_the_ci_recipe_runs_as_written(tmp_path):
    """The example workflow's spread commands, run as they are written, on the embedded model."""
    import shlex

    from conftest import ROOT

    workflow = (ROOT / ".github" / "workflows" / "regress.yml").read_text()
    commands = [shlex.split(line.strip())[1:] for line in workflow.splitlines()
                if line.strip().startswith(".venv/bin/spread ")]
    assert [c[0] for c in commands] == ["import", "regress"]
    db = str(tmp_path / "regress.db")
    for command in commands:
        command = [str(ROOT / a) if a.startswith("data/") else str(tmp_path / a) if a.endswith(".xml") else a
                   for a in command]
        result = cli("--db", db, *command, check=False)
        assert result.returncode == 0, result.stderr
    cases = ElementTree.parse(tmp_path / "regress.xml").getroot().findall("testcase")
    assert len(cases) == 6


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    for p_values in ([0.01, 0.04, 0.03, 0.005], [0.5, 0.2, 0.9], [0.001] * 5, [0.04, 0.01]):
        assert stats.holm(p_values) == pytest.approx(list(multipletests(p_values, method="holm")[1]))
