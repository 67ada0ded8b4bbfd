"""The regression gate: statistics against reference values, its false-alarm rate and power by
simulation, its verdicts (pass, fail, inconclusive) and their wording, `spread regress` end to
end against the loopback stub, and the Regression page."""

import json
from xml.etree import ElementTree

import pytest
from scipy import stats as scipy_stats

from core.analyse import stats
from core.evaluate import gate, power, regress
from test_cli import last_json, spread as cli


def test_wilson_and_fisher_match_published_values():
    low, high = stats.wilson(6, 10)
    assert (round(low, 4), round(high, 4)) == (0.3127, 0.8318)  # Wilson (1927) score interval, 95%
    # Fisher's lady tasting tea: 3 of 4 cups right each way, one-sided p = 0.2429.
    assert gate.stratified_p_value([(1, 4, 3, 4)]) == pytest.approx(0.2429, abs=1e-4)
    assert scipy_stats.fisher_exact([[1, 3], [3, 1]], alternative="less").pvalue == pytest.approx(0.2429, abs=1e-4)


def test_the_stratified_test_is_fishers_for_one_item_and_sums_evidence_over_items():
    for table in [(2, 10, 9, 10), (5, 10, 5, 10), (0, 6, 6, 6), (7, 8, 3, 8)]:
        passes, n, base, m = table
        fisher = scipy_stats.fisher_exact([[passes, n - passes], [base, m - base]], alternative="less").pvalue
        assert gate.stratified_p_value([table]) == pytest.approx(fisher, rel=1e-9)
    # Ten items each a little worse: no single item is significant, together they are.
    strata = [(7, 10, 9, 10)] * 10
    assert gate.stratified_p_value(strata[:1]) > 0.2
    assert gate.stratified_p_value(strata) < 0.01
    # No change at all: nothing to see.
    assert gate.stratified_p_value([(9, 10, 9, 10)] * 10) > 0.5


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


def test_a_regress_run_without_a_gate_has_no_verdict_anywhere(stub, tmp_path, monkeypatch):
    """A 0% pass rate without --min-pass-rate or --baseline is not a "pass": not in the JSON,
    the history table, its hover, nor for rows recorded when they said "pass"."""
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    from core import display
    from core.store import Store
    from core.analyse import charts
    from core.evaluate import verdict

    path, items = golden_file(tmp_path, n_items=2)
    db = str(tmp_path / "ungated.db")
    monkeypatch.setenv("SPREAD_DB", db)
    cli("--db", db, "import", "capitals", str(path))
    stub.respond = answer_with(items, right=False)
    args = ["--db", db, "regress", "capitals", "--model", "openai/stub-a", "--api-base", stub.base_url, "--n", "2"]
    ungated = cli(*args, "--json")
    assert ungated.returncode == 0 and last_json(ungated)["gate"] is None and last_json(ungated)["pass_rate"] == 0
    assert "no gate set" in cli(*args).stdout
    gated = cli(*args, "--min-pass-rate", "0.9", "--json", check=False)
    assert gated.returncode == 1 and last_json(gated)["gate"] == "fail"
    with Store(db).connection() as conn:  # a row as recorded before: "pass" for a run without a gate
        conn.execute("update regress_runs set gate = 'pass' where id = 2")
        conn.execute("update regress_runs set result = replace(result, '\"gate\": null', '\"gate\": \"pass\"') "
                     "where id = 2")
        conn.conn.commit()
    past = regress.history(Store(db), "capitals")
    assert [row["gate"] for row in past] == [None, None, "fail"]
    assert regress.get(Store(db), 2)["result"]["gate"] is None
    assert [row["verdict"] for row in verdict.history_rows(past)] == ["no gate set", "no gate set", "fail"]
    hover = [text for trace in charts.regress_history(past).data for text in trace.hovertext]
    assert not any("pass" in text for text in hover) and sum("no gate set" in text for text in hover) == 2

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["reviewer"] = "ann"
    at.run()
    at.switch_page("pages/regress.py").run()
    assert not at.exception
    table = next(df.value for df in at.dataframe if "verdict" in df.value.columns)
    assert table["verdict"].tolist() == ["no gate set", "no gate set", "fail"]
    hover = [t for trace in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] for t in trace["hovertext"]]
    assert not any(" pass " in text for text in hover)


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
    assert result["prompt_version"] == 2 and result["gate"] is None  # no gate set: no verdict
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


# --- pass, fail or inconclusive ---------------------------------------------------------------

def right_times(items, times: int):
    """Answer right `times` times in all, then wrong: a baseline with an exact number of passes."""
    import threading

    lock, left = threading.Lock(), [times]

    def respond(body):
        with lock:
            right, left[0] = left[0] > 0, left[0] - 1
        return answer_with(items, right=right)(body)
    return respond


def test_a_drop_the_data_cannot_tell_from_noise_is_inconclusive_and_exits_3(stub, tmp_path):
    """The contract: 1 item × K=5, baseline 1/5, candidate 0/5, --max-drop 0."""
    path, items = golden_file(tmp_path, n_items=1)
    db = str(tmp_path / "contract.db")
    cli("--db", db, "import", "capitals", str(path))
    args = ["--db", db, "regress", "capitals", "--model", "openai/stub-a", "--api-base", stub.base_url, "--n", "5"]
    stub.respond = right_times(items, 1)
    baseline = last_json(cli(*args, "--json"))
    assert (baseline["passes"], baseline["samples"]) == (1, 5)
    stub.respond = answer_with(items, right=False)
    worse = cli(*args, "--baseline", "1", "--max-drop", "0", "--json", check=False)
    assert worse.returncode == 3, worse.stderr
    result = last_json(worse)
    assert result["gate"] == "inconclusive" and result["pass_rate"] == 0.0
    assert {"regress_id", "pass_rate", "pass_rate_low", "pass_rate_high", "items", "drop", "p_value"} <= set(result)
    # One sign everywhere: a drop is a negative change, in the headline and the item's row.
    assert result["change"] == -0.2 and result["drop"] == 0.2 and result["items"][0]["change"] == -0.2
    assert result["change_low"] < -0.2 < result["change_high"]
    # 0 of 5 is not certain: Wilson's 0 – 43%, never "0% – 0%".
    assert result["pass_rate_low"] == 0.0 and result["pass_rate_high"] == pytest.approx(0.4345, abs=1e-3)
    assert result["samples_to_settle"] > 5 and result["gates"][0]["verdict"] == "inconclusive"
    assert result["items"][0]["label"] == "#1 country=France" and result["cost_usd"] is None

    allowed = cli(*args, "--baseline", "1", "--allow-inconclusive", check=False)
    assert allowed.returncode == 0, allowed.stderr
    text = allowed.stdout
    assert "gate INCONCLUSIVE" in text and f"About {result['samples_to_settle']} samples per item" in text
    assert "change −20%" in text and "(−20% vs baseline)" in text and "+20%" not in text
    assert "#1 country=France" in text and "france:" not in text and "cost unknown (5 answers unpriced)" in text
    assert "$0.0000" not in text


def counts(passes, samples):
    return {"key": passes[0], "passes": passes[1], "samples": samples, "pass_rate": passes[1] / samples}


def test_changes_are_candidate_minus_baseline_everywhere():
    baseline = {"id": 1, "result": {"items": [counts(("a", 5), 5), counts(("b", 4), 5), counts(("c", 5), 5)]}}
    items = [counts(("a", 3), 5), counts(("b", 4), 5), counts(("c", 2), 5)]
    comparison = regress.compare_with(baseline, items, 0.05)
    assert [i["change"] for i in items] == [-0.4, 0.0, -0.6]
    assert comparison["change"] == pytest.approx(-1 / 3, abs=1e-4) and comparison["drop"] == -comparison["change"]
    assert comparison["change_low"] < comparison["change"] < comparison["change_high"]
    better = regress.compare_with({"id": 2, "result": {"items": items}}, [counts(("a", 5), 5)], 0.05)
    assert better["change"] == 0.4 and better["drop"] == -0.4


def test_an_interval_for_0_of_n_is_wilsons_0_to_x():
    assert gate.pass_rate_interval([0], [10]) == pytest.approx((0.0, 0.0, stats.wilson(0, 10)[1]))
    mean, low, high = gate.pass_rate_interval([0, 0, 0], [5, 5, 5])  # equal items: the t interval collapses
    assert (mean, low) == (0.0, 0.0) and high == pytest.approx(stats.wilson(0, 15)[1]) and high > 0.2
    _, low, high = gate.change_interval([(5, 5)] * 4, [(5, 5)] * 4)
    assert low < 0 < high


def test_the_verdicts_of_each_gate():
    assert gate.min_pass_rate_verdict(0.95, 1.0, 0.9) == "pass"
    assert gate.min_pass_rate_verdict(0.85, 0.95, 0.9) == "inconclusive"
    assert gate.min_pass_rate_verdict(0.5, 0.7, 0.9) == "fail"
    assert gate.drop_verdict(0.0, 1.0, None, 0.0, 0.05) == "pass"
    assert gate.drop_verdict(0.12, 0.125, None, 0.0, 0.05) == "inconclusive"
    assert gate.drop_verdict(0.5, 0.001, None, 0.0, 0.05) == "fail"
    assert gate.drop_verdict(0.2, 0.001, 0.05, 0.1, 0.05) == "inconclusive"  # a drop, not surely beyond 0.1
    assert gate.drop_verdict(0.3, 0.001, 0.15, 0.1, 0.05) == "fail"
    assert gate.overall([]) == "pass" and gate.overall(["pass", "inconclusive"]) == "inconclusive"
    assert gate.overall(["inconclusive", "fail"]) == "fail"


def test_the_issues_case_is_inconclusive_not_pass_and_the_samples_named_would_settle_it():
    """Baseline 12% (three items at 1/5, two at 0/5), candidate 0 of 25: p = 0.125."""
    strata = [(0, 5, 1, 5)] * 3 + [(0, 5, 0, 5)] * 2
    p_value = gate.stratified_p_value(strata)
    assert p_value == pytest.approx(0.125) and gate.drop_verdict(0.12, p_value, None, 0.0, 0.05) == "inconclusive"
    base, after = [0.2, 0.2, 0.2, 0.0, 0.0], [0.0] * 5
    k = power.samples_for_drop(base, after)
    assert 5 < k < 40
    settled = power.simulate(k=k, rates=base, candidate_rates=after, runs=200, seed=2)
    assert settled["rate"] >= 0.7  # at the K it names, the gate fails most of the time
    assert power.samples_for_drop([0.8], [0.9]) is None  # nothing to settle when it is better
    assert power.samples_for_pass_rate([0.0], 5, 0.1) > 5


def test_no_verdict_heading_without_a_gate():
    from core.evaluate import verdict

    result = {"gate": "pass", "gates": [], "items": []}
    assert verdict.heading(result) is None and verdict.summary(result) is None
    assert verdict.heading({**result, "gates": [{"verdict": "pass"}]}) == "pass — the gate holds"


def test_unknown_cost_is_never_zero_dollars():
    from core.evaluate import verdict

    def cost(known, unpriced):
        return verdict.result_cost({"cost_usd": None if unpriced else known, "cost_usd_known": known,
                                    "answers_with_unknown_cost": unpriced})

    assert cost(0.0, 72) == "unknown (72 answers unpriced)"
    assert cost(0.0123, 3) == "≥ $0.0123 known, 3 answers unpriced"
    assert cost(1.5, 0) == "$1.50"
    assert verdict.result_cost({}) == "unknown"  # a report recorded before costs were kept


def test_the_regression_page_says_it_cannot_tell_and_names_items_by_their_variables(store, stub, tmp_path):
    import asyncio

    import pandas as pd

    from core.formats import golden_files
    from test_pages import app

    path, items = golden_file(tmp_path, n_items=1)
    golden_files.import_file(store, "capitals", path)
    candidate = regress.Candidate(model="openai/stub-a", api_base=stub.base_url, n=5)
    stub.respond = right_times(items, 1)
    asyncio.run(regress.regress(store, "capitals", candidate, regress.Gates()))
    at = app()
    at.switch_page("pages/regress.py").run()
    assert not at.exception
    assert [h.value for h in at.subheader][0] == "Regress 1 (no gate set)"  # nothing judged, no verdict
    assert not at.success and not at.error and not at.warning

    stub.respond = answer_with(items, right=False)
    asyncio.run(regress.regress(store, "capitals", candidate, regress.Gates(max_drop=0.0), baseline_id=1))
    at.run()
    assert not at.exception
    assert at.subheader[0].value == "Regress 2: cannot tell yet (inconclusive)"
    warning = at.warning[0].value
    assert "cannot tell that from sampling noise" in warning and "samples per item in both runs" in warning
    assert "−20%" in warning
    assert at.metric[1].value == "−20%" and at.metric[2].value.startswith("unknown")  # change; cost never $0
    assert any("95% interval 0% – 43%" in c.value for c in at.caption)
    items_table = next(df.value for df in at.dataframe if "p (Holm)" in df.value.columns)
    assert list(items_table["item"]) == ["#1 country=France"] and list(items_table["change"]) == ["−20%"]
    assert list(items_table["prompt"]) == ["What is the capital of France?"]
    assert at.expander[0].label.startswith("\\#1 country\\=France")
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert figure["layout"]["xaxis"]["type"] == "date" and figure["layout"]["yaxis"]["range"][0] < 0
    low, high = (pd.Timestamp(end) for end in figure["layout"]["xaxis"]["range"])
    assert high - low >= pd.Timedelta(hours=1)  # one day of runs, not a span of milliseconds


def test_reports_recorded_before_verdicts_could_be_inconclusive_still_read(store, stub, tmp_path):
    import asyncio

    from core.store import Store
    from core.evaluate import verdict
    from core.formats import golden_files

    path, items = golden_file(tmp_path, n_items=2)
    golden_files.import_file(store, "capitals", path)
    stub.respond = answer_with(items, right=True)
    candidate = regress.Candidate(model="openai/stub-a", api_base=stub.base_url, n=2)
    asyncio.run(regress.regress(store, "capitals", candidate, regress.Gates()))
    asyncio.run(regress.regress(store, "capitals", candidate, regress.Gates(min_pass_rate=0.5), baseline_id=1))
    old = regress.get(store, 2)["result"]
    for key in ("change", "change_low", "change_high", "samples_to_settle", "cost_usd"):
        old.pop(key)
    for item in old["items"]:
        for key in ("label", "prompt", "vars"):
            item.pop(key)
    for g in old["gates"]:
        for key in ("verdict", "samples_to_settle", "change", "low", "high"):
            g.pop(key, None)
    with store.connection() as db:
        db.execute("update regress_runs set result = ? where id = 2", [json.dumps(old)])
        db.conn.commit()
    found = regress.get(store, 2)["result"]
    assert sorted(i["label"] for i in found["items"]) == ["#1 country=France", "#2 country=Japan"]
    assert [g["verdict"] for g in found["gates"]] == ["pass", "pass"] and found["change"] == 0.0
    assert verdict.heading(found) == "pass — the gate holds" and "Every gate holds" in verdict.summary(found)
    assert verdict.result_cost(found).startswith("unknown")


def _capitals(store, stub, tmp_path, right=True):
    from core.formats import golden_files

    path, items = golden_file(tmp_path, n_items=3)
    golden_files.import_file(store, "capitals", path)
    stub.respond = answer_with(items, right=right)
    return regress.Candidate(model="openai/stub-a", api_base=stub.base_url, n=3)


def test_a_regression_is_judged_by_the_worker_that_finishes_its_run(store, stub, tmp_path):
    """The Regression page's runs go where every run goes: recorded with the request for its
    verdict, claimed from the queue by a worker (here `spread worker --once`'s loop), and
    judged by whoever finishes the run, not by the process that asked."""
    import asyncio

    from core.execution import service
    from core.store import leases

    candidate = _capitals(store, stub, tmp_path)
    run_id = regress.prepare(store, "capitals", candidate, regress.Gates(min_pass_rate=0.5), created_by="ana")
    assert [row["run_id"] for row in regress.pending(store, "capitals")] == [run_id]
    assert regress.for_run(store, run_id) is None
    with store.connection() as db:
        leases.queue(db, run_id)
    assert asyncio.run(service.serve(store, once=True)) == 1
    judged = regress.for_run(store, run_id)
    assert judged["gate"] == "pass" and judged["result"]["pass_rate"] == 1.0 and judged["created_by"] == "ana"
    assert judged["set_version"] == 1 and judged["n"] == 3
    assert regress.pending(store, "capitals") == []
    assert asyncio.run(regress.judge(store, run_id)) is None  # judged already: nothing more


def test_two_processes_finishing_one_regression_record_one_verdict(store, stub, tmp_path):
    import asyncio

    from core.run import runner

    candidate = _capitals(store, stub, tmp_path)
    run_id = regress.prepare(store, "capitals", candidate, regress.Gates(min_pass_rate=0.5))
    asyncio.run(runner.execute(store, run_id))

    async def both():
        return await asyncio.gather(regress.judge(store, run_id), regress.judge(store, run_id))

    first, second = asyncio.run(both())
    assert first["regress_id"] == second["regress_id"] and first["gate"] == second["gate"] == "pass"
    assert len(regress.history(store, "capitals")) == 1


def test_a_regression_that_cannot_be_judged_keeps_the_reason_with_its_request(store, stub, tmp_path):
    import asyncio

    from core.execution import launch

    candidate = _capitals(store, stub, tmp_path)
    stub.fail_rate = {"401": 1.0}  # every call refused: nothing to score
    run_id = regress.prepare(store, "capitals", candidate, regress.Gates(min_pass_rate=0.5))
    asyncio.run(launch.execute_and_score(store, run_id))
    assert regress.for_run(store, run_id) is None
    (waiting,) = regress.pending(store, "capitals")
    assert waiting["run_id"] == run_id and "no answer that could be scored" in waiting["error"]


def test_the_regression_page_shows_a_regression_still_sampling_wherever_it_was_asked(store, stub, tmp_path):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    from core import display

    candidate = _capitals(store, stub, tmp_path)
    run_id = regress.prepare(store, "capitals", candidate, regress.Gates(min_pass_rate=0.5))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/regress.py").run()
    assert not at.exception
    shown = [p.proto.text for p in at.get("progress")]  # model text escaped: inert markdown
    assert any(f"Regress of run {run_id} on {display.inert('openai/stub-a')} (pending): 0/9 samples" in text
               for text in shown)


def test_a_database_made_before_regression_requests_migrates_in_place_and_keeps_its_regressions(
        store, stub, tmp_path):
    """On the test's engine (SQLite, and PostgreSQL in the second pass): a database as the
    release before m022 left it — a judged regression, no regress_requests table — opens,
    migrates, and keeps reading that regression; a new one is judged as usual."""
    import asyncio

    from core.store import Store

    candidate = _capitals(store, stub, tmp_path)
    old = asyncio.run(regress.regress(store, "capitals", candidate, regress.Gates(min_pass_rate=0.5)))
    with store.transaction() as db:
        db.execute("drop table regress_requests")
        db.execute("delete from _sqlite_migrations where name = 'm022_regress_requests'")
    store.close()
    reopened = Store(store.absolute)
    with reopened.connection() as db:
        assert db.execute("select count(*) from regress_requests").fetchone()[0] == 0
    kept = regress.for_run(reopened, old["run_id"])
    assert kept["id"] == old["regress_id"] and kept["gate"] == "pass"
    assert [row["id"] for row in regress.history(reopened, "capitals")] == [old["regress_id"]]
    assert regress.pending(reopened, "capitals") == []
    new = asyncio.run(regress.regress(reopened, "capitals", candidate, regress.Gates(min_pass_rate=0.5)))
    assert new["gate"] == "pass" and len(regress.history(reopened, "capitals")) == 2
    reopened.close()
