"""The gate sampled until settled: its false-alarm rate under optional stopping, its power,
and `spread regress --until-settled` against a stub."""

import pytest

from core.evaluate import power, sequential
from test_cli import last_json, spread as cli
from test_regress import answer_with, golden_file


def test_the_looks_spend_alpha_and_no_more():
    assert sequential.looks(20) == [5, 10, 15, 20] and sequential.looks(12) == [5, 10, 12]
    assert sum(sequential.levels(20, 0.05)) == pytest.approx(0.05)
    assert sequential.levels(20, 0.05)[:3] == [0.001] * 3
    assert sequential.levels(200, 0.05)[-1] >= 0.8 * 0.05 - 1e-12  # many looks: the last keeps most of alpha


def test_an_unchanged_candidate_fails_no_more_often_than_alpha_under_optional_stopping():
    """400 sequential regress runs of 20 items up to K=20 (four looks), candidate = baseline."""
    rates = power.item_rates(20)
    result = sequential.simulate(rates=rates, candidate_rates=rates, baseline_k=10, max_k=20, runs=400, seed=7)
    assert result["rate"] <= 0.05


def test_a_clear_drop_fails_at_an_early_look_for_fewer_calls():
    rates = [0.9] * 10
    fixed = sequential.simulate_fixed(rates=rates, candidate_rates=[0.4] * 10, baseline_k=10, k=20, runs=200)
    adaptive = sequential.simulate(rates=rates, candidate_rates=[0.4] * 10, baseline_k=10, max_k=20, runs=200)
    assert adaptive["rate"] >= fixed["rate"] >= 0.95
    assert adaptive["mean_k_used"] <= 6  # nearly always the first look


def test_spread_regress_until_settled_stops_a_broken_candidate_at_the_first_look(stub, tmp_path):
    path, items = golden_file(tmp_path)
    db = str(tmp_path / "seq.db")
    cli("--db", db, "import", "capitals", str(path))
    args = ["--db", db, "regress", "capitals", "--model", "openai/stub-a", "--api-base", stub.base_url, "--json"]
    stub.respond = answer_with(items, right=True)
    last_json(cli(*args, "--n", "10"))
    stub.requests.clear()
    stub.respond = answer_with(items, right=False)
    worse = cli(*args, "--baseline", "1", "--until-settled", "--max-k", "20", check=False)
    assert worse.returncode == 1, worse.stderr
    result = last_json(worse)
    assert result["gate"] == "fail" and result["samples"] == 4 * 5 == len(stub.requests)
    assert result["sequential"]["k_used"] == 5 and result["sequential"]["stopped_early"]
    assert result["sequential"]["looks"][0]["level"] == 0.001
    # A candidate as good as the baseline: no look is beyond doubt before K, where it passes.
    stub.requests.clear()
    stub.respond = answer_with(items, right=True)
    same = cli(*args, "--baseline", "1", "--until-settled", "--max-k", "10", check=False)
    assert same.returncode == 0 and last_json(same)["gate"] == "pass"
    assert len(stub.requests) == 4 * 10 and last_json(same)["sequential"]["k_used"] == 10


@pytest.mark.parametrize("args, message", [
    (["--until-settled"], "set a gate"),
    (["--until-settled", "--min-pass-rate", "0.9", "--max-k", "3"], "--max-k 3 is below the first round"),
    (["--max-k", "10"], "--max-k goes with --until-settled"),
])
def test_bad_sequential_regress_input_is_one_line_and_writes_nothing(stub, tmp_path, args, message):
    path, _ = golden_file(tmp_path)
    db = str(tmp_path / "bad.db")
    cli("--db", db, "import", "capitals", str(path))
    result = cli("--db", db, "regress", "capitals", "--model", "openai/stub-a", "--api-base", stub.base_url,
                 *args, check=False)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert stub.requests == []
    runs = last_json(cli("--db", db, "runs", "--json"))
    assert runs == []
