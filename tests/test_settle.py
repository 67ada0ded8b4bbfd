"""Sampling until settled: the confidence sequence holds under optional stopping, split
cells never stop early, and `spread run --until-settled` stops each cell when it may."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT
from openai_stub import StubOpenAI

from core.run import settle
from core.store import Store, migrations, runs, settling


def stopped_interval(rng, probs, max_n, precision):
    """One cell sampled by the rule: (its interval at the stop, samples taken)."""
    answers = rng.choice(len(probs), size=max_n, p=probs)
    n = 0
    while True:
        n = settle.next_samples(n, max_n).stop
        decision = settle.decide(list(answers[:n]), taken=n, precision=precision, max_n=max_n)
        if decision.stopped_by:
            return decision, n


@pytest.mark.parametrize("probs", [[1.0], [0.92, 0.08], [0.75, 0.25], [0.55, 0.45], [0.4, 0.3, 0.3]])
def test_the_interval_at_the_stop_covers_the_consistency(probs):
    """The share of the largest meaning is inside the interval reported when the rule stopped
    the cell, at least 95% of the time (400 cells each; the bench has 10,000)."""
    rng = np.random.default_rng(11)
    covered = [stopped_interval(rng, probs, 40, 0.3)[0] for _ in range(400)]
    coverage = np.mean([d.low <= max(probs) <= d.high for d in covered])
    assert coverage >= 0.95


def test_a_split_cell_never_stops_by_precision():
    split = [0, 1] * 200  # half and half: however many samples, no meaning has a majority
    decision = settle.decide(split, taken=400, precision=0.9, max_n=1000)
    assert decision.high - decision.low < 0.9 and not decision.settled and decision.stopped_by is None
    assert settle.decide(split, taken=1000, precision=0.9, max_n=1000).stopped_by == "max_n"


def test_a_cell_that_always_agrees_stops_after_two_rounds():
    assert settle.decide([0] * 5, taken=5, precision=0.3, max_n=40).stopped_by is None
    ten = settle.decide([0] * 10, taken=10, precision=0.3, max_n=40)
    assert ten.settled and ten.stopped_by == "precision" and ten.high == 1.0 and ten.low > 0.7


def spread(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=ROOT, capture_output=True, text=True,
                            env=dict(os.environ, **(env or {})), timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}: {result.stderr}")
    return result


def last_json(result):
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_run_until_settled_stops_the_deterministic_cell_early_and_samples_the_split_one_to_max_n(tmp_path):
    db = str(tmp_path / "settle.db")
    with StubOpenAI(answers=["Paris.", "Lyon.", "Marseille.", "Nice."]) as stub:
        # Temperature 0: always "Paris."; temperature 1: four cities drawn by seed, a split cell.
        summary = last_json(spread("--db", db, "run", "--prompt", "Capital of France?", "--model", "openai/stub-a",
                                   "--temperature", "0", "--temperature", "1", "--n", "5", "--until-settled",
                                   "--max-n", "40", "--precision", "0.3", "--api-base", stub.base_url,
                                   "--seed", "1", "--json"))
        requests = len(stub.requests)
    assert summary["planned_max"] == 80 and summary["calls"] == requests == 50
    assert summary["stopped_by"] == {"precision": 1, "max_n": 1} and summary["calls_saved"] == 30
    assert summary["per_model"] == [{"model": "openai/stub-a", "calls": 50, "cached": 0, "cost_usd_new": None,
                                     "calls_saved": 30}]  # the stub has no price: unknown, never $0
    cells = {c["temperature"]: c for c in last_json(spread("--db", db, "show", "1", "--json"))["cells"]}
    assert (cells[0.0]["n"], cells[0.0]["settled"], cells[0.0]["stopped_by"]) == (10, True, "precision")
    assert (cells[1.0]["n"], cells[1.0]["settled"], cells[1.0]["stopped_by"]) == (40, False, "max_n")
    assert cells[0.0]["consistency_high"] - cells[0.0]["consistency_low"] < 0.3
    assert cells[1.0]["interval"].startswith("anytime-valid")
    # Sampled again: nothing is missing, nothing is asked.
    with StubOpenAI(answers=["Paris."]) as stub:
        again = last_json(spread("--db", db, "resume", "1", "--json"))
        assert stub.requests == [] and again["calls"] == 50


@pytest.mark.parametrize("args, message", [
    (["--precision", "1.5"], "--precision must be in (0, 1)"),
    (["--precision", "0"], "--precision must be in (0, 1)"),
    (["--max-n", "3"], "--max-n 3 is below the first round"),
    (["--embeddings", "nowhere"], "nowhere"),
])
def test_bad_settling_options_are_refused_in_one_line_and_nothing_is_written(args, message, tmp_path):
    db = tmp_path / "bad.db"
    result = spread("--db", str(db), "run", "--prompt", "Q?", "--model", "openai/stub-a", "--temperature", "1",
                    "--n", "10", "--until-settled", "--api-base", "http://127.0.0.1:9/v1", *args, check=False)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if db.exists():
        with Store(db).connection() as conn:
            assert conn["runs"].count == 0


def test_an_unreachable_meaning_endpoint_is_refused_before_anything_is_written(tmp_path):
    from core.models import endpoints

    db = str(tmp_path / "e.db")
    endpoints.add(Store(db), endpoints.Endpoint("gone-embed", "openai/embed", api_base="http://127.0.0.1:9/v1",
                                     info={"mode": "embedding"}))
    result = spread("--db", db, "run", "--prompt", "Q?", "--model", "openai/stub-a", "--temperature", "1", "--n",
                    "10", "--until-settled", "--embeddings", "gone-embed", "--api-base", "http://127.0.0.1:9/v1",
                    check=False)
    assert result.returncode == 2 and "cannot be reached" in result.stderr
    with Store(db).connection() as conn:
        assert conn["runs"].count == 0


def test_a_database_from_before_m018_opens_and_keeps_its_rows(tmp_path):
    from core.store.schema import Database

    path = tmp_path / "old.db"
    old = Database(str(path))
    migrations.apply(old, stop_before="m018_settling_and_answer_cache")
    old["prompts"].insert({"id": 1, "name": "p", "version": 1, "system": "", "template": "Q?", "content_hash": "h",
                           "created_at": "2026-01-01", "created_by": ""})
    old.conn.commit()
    old.conn.close()
    with Store(path).connection() as db:
        assert db["prompts"].count == 1 and "cell_settling" in db.table_names()
        assert db["cell_settling"].pks == ["run_id", "variant", "input", "model", "temperature"]


def test_spread_page_shows_n_and_whether_each_cell_settled(store):
    import asyncio

    from streamlit.testing.v1 import AppTest

    from core.execution import launch
    from core.run import plan

    with StubOpenAI(answers=["Paris.", "Lyon.", "Marseille.", "Nice."]) as stub:
        spec = plan.RunSpec(prompt="Capital of France?", models=["openai/stub-a"], temperatures=[0.0, 1.0], n=15,
                            api_base=stub.base_url, seed=1, until_settled=True, precision=0.3)
        run_id = plan.create(store, spec)
        asyncio.run(launch.execute(store, run_id))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/spread.py").run()
    assert not at.exception
    assert any("1 of 2 cells settled · 25 samples of at most 30" in c.value for c in at.caption)
    assert any(m.label == "Samples (n)" and m.value == "10" for m in at.metric)
    assert any("settled at n=10" in c.value for c in at.caption)
    at.selectbox(key="cell_temperature").set_value(1.0).run()
    assert any(m.label == "Samples (n)" and m.value == "15" for m in at.metric)
    assert any("not settled: stopped at the run's most samples, n=15" in c.value for c in at.caption)


def test_the_apps_worker_samples_a_run_until_settled_by_itself(store, stub):
    """The app's background worker (and a run's own process, and other servers' workers) is
    handed only the run's id: the engine finds the meaning judge itself."""
    from core.execution import launch
    from core.run import plan

    stub.answers = ["Paris."]
    spec = plan.RunSpec(prompt="Q?", models=["openai/stub-a"], temperatures=[1.0], n=30,
                        api_base=stub.base_url, seed=1, until_settled=True)
    run_id = launch.start(store, spec)
    launch.background().submit(store, run_id).result(120)
    with store.connection() as db:
        assert settling.load(db, run_id)[(0, 0, "openai/stub-a", 1.0)]["stopped_by"] == "precision"
        assert db["responses"].count == 10


def test_the_playground_switch_plans_a_run_until_settled_with_its_range(store, stub):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.text_area(key="prompt_0").input("What is the capital of France?")
    at.multiselect(key="models").set_value(["openai/stub-a"])
    at.text_input(key="api_base").input(stub.base_url)
    at.text_input(key="temperatures").input("0")
    at.number_input(key="n").set_value(40)
    at.toggle(key="until_settled").set_value(True).run()
    assert not at.exception
    assert any("Until settled:" in c.value and "at 10 samples, up to 40" in c.value for c in at.caption)
    at.button(key="run").click().run()
    assert not at.exception and not at.error
    run_id = at.session_state["active_run"]
    with store.connection() as db:
        run = runs.get_run(db, run_id)
    assert run["spec"]["until_settled"] is True and run["spec"]["precision"] == 0.3 and run["planned"] == 40
    from core.run import drafts

    loaded = drafts.from_run(store, run_id)  # "Load this run's plan into the Playground" keeps the switch
    assert (loaded["until_settled"], loaded["precision"], loaded["use_cache"], loaded["use_batch"]) == (
        True, 0.3, False, False)


def test_on_postgresql_a_run_until_settled_and_its_cached_twin(pg_url):
    import asyncio

    from core.execution import launch
    from core.run import plan
    from core.store import answer_cache

    with StubOpenAI(answers=["Paris.", "Lyon.", "Marseille.", "Nice."]) as stub:
        ids = []
        for _ in range(2):
            spec = plan.RunSpec(prompt="Capital of France?", models=["openai/stub-a"], temperatures=[0.0, 1.0],
                                n=15, api_base=stub.base_url, seed=1, until_settled=True, cache=True)
            ids.append(plan.create(Store(pg_url), spec))
            asyncio.run(launch.execute(Store(pg_url), ids[-1]))
        assert len(stub.requests) == 10 + 15  # the twin asked nothing
    with Store(pg_url).connection() as db:
        first, twin = (settling.load(db, run_id) for run_id in ids)
        assert first == twin and {d["stopped_by"] for d in first.values()} == {"precision", "max_n"}
        assert answer_cache.new_cost(db, ids[1]) == {"cached": 25, "cost_usd_new": 0}


def test_the_engine_alone_refuses_a_run_until_settled_without_the_meaning_judge(store):
    """The judge lives after the engine (core/analyse): whoever runs the engine hands it in,
    and the engine never samples such a run by a rule it cannot apply."""
    import asyncio

    from core.config import SpreadError
    from core.run import plan, runner

    with StubOpenAI(answers=["Paris."]) as stub:
        spec = plan.RunSpec(prompt="Capital of France?", models=["openai/stub-a"], temperatures=[1.0], n=10,
                            api_base=stub.base_url, seed=1, until_settled=True)
        run_id = plan.create(store, spec)
        with pytest.raises(SpreadError, match="needs the meaning judge"):
            asyncio.run(runner.execute(store, run_id))
        assert stub.requests == []
    with store.connection() as db:
        assert runs.get_run(db, run_id)["received"] == 0


def test_the_settling_benchmark_runs_at_a_tiny_size():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_settle.py"), "--cells", "60", "--max-n", "20"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["cells"] == 60 and row["calls"] <= 60 * 20 and row["coverage"] >= 0.9


def test_the_heatmap_of_a_run_sampled_until_settled_claims_only_the_anytime_interval(store):
    """A square that is one cell shows that cell's anytime-valid interval; a square pooling
    cells stopped adaptively shows none, and says so (a Wilson interval would overclaim)."""
    import asyncio
    import json

    from core.analyse import charts, settled, spread
    from core.execution import launch
    from core.run import plan
    from core.store import runs

    with StubOpenAI(answers=["Paris.", "Lyon.", "Marseille.", "Nice."]) as stub:
        spec = plan.RunSpec(prompt="Capital of France?", models=["openai/stub-a"], temperatures=[0.0, 1.0], n=15,
                            api_base=stub.base_url, seed=1, until_settled=True, precision=0.3)
        run_id = plan.create(store, spec)
        asyncio.run(launch.execute(store, run_id))
    with store.connection() as db:
        run = runs.get_run(db, run_id)
    analysis = spread.analyse_run(store, run_id)
    settled.attach(store, analysis, run)
    cells = {c["temperature"]: c for c in analysis.cells}
    per_cell = settled.squares(analysis, analysis.group(["model", "temperature"]), ["model", "temperature"])
    for row in per_cell:
        cell = cells[row["temperature"]]
        assert (row["consistency_low"], row["consistency_high"]) == (cell["consistency_low"], cell["consistency_high"])
        assert row["interval"].startswith("anytime-valid")
    wilson = {r["temperature"]: r for r in analysis.group(["model", "temperature"])}
    assert any(wilson[t]["consistency_low"] != cells[t]["consistency_low"] for t in cells)  # it did replace them
    (pooled,) = settled.squares(analysis, analysis.group(["model", "variant"]), ["model", "variant"])
    assert pooled["consistency_low"] is None and pooled["consistency_high"] is None
    figure = charts.heatmap([pooled], "consistency", y="model", x="variant")
    hover = json.loads(figure.to_json())["data"][0]["text"][0][0]
    assert "no interval for pooled cells sampled until settled" in hover


def test_pass_rates_of_a_run_sampled_until_settled_claim_only_anytime_intervals(tmp_path):
    """A cell's pass rate after adaptive stopping gets the anytime-valid interval (wider than
    Wilson's, which assumes N fixed in advance); a rate pooling cells that stopped at
    different times gets none, in the run's summary, `spread checks` and the heatmap."""
    import json as json_module

    from core.analyse import charts, stats

    db = str(tmp_path / "settle.db")
    with StubOpenAI(answers=["Paris.", "Lyon.", "Marseille.", "Nice."]) as stub:
        summary = last_json(spread("--db", db, "run", "--prompt", "Capital of France?", "--model", "openai/stub-a",
                                   "--temperature", "0", "--temperature", "1", "--n", "5", "--until-settled",
                                   "--max-n", "20", "--precision", "0.3", "--api-base", stub.base_url,
                                   "--seed", "1", "--check", "contains:Paris", "--json"))
    assert summary["pass_rate"] is not None and summary["pass_rate_low"] is summary["pass_rate_high"] is None
    assert summary["pass_rate_interval"].startswith("no interval for pooled cells sampled until settled")
    checked = last_json(spread("--db", db, "checks", "1", "--json"))
    for cell in checked["cells"]:
        assert cell["interval"].startswith("anytime-valid")
        wilson_low, wilson_high = stats.wilson(cell["passes"], cell["answers"])
        assert cell["pass_rate_low"] <= wilson_low and cell["pass_rate_high"] >= wilson_high
    assert {c["answers"] for c in checked["cells"]} == {10, 20}  # the two cells stopped at different n
    (pooled,) = checked["by_model"]
    assert pooled["pass_rate_low"] is None and pooled["interval"].startswith("no interval for pooled")
    said = spread("--db", db, "checks", "1").stdout
    assert "no interval for pooled cells sampled until settled" in said
    figure = charts.heatmap([pooled | {"variant": 0}], "pass_rate", y="model", x="variant")
    hover = json_module.loads(figure.to_json())["data"][0]["text"][0][0]
    assert "no interval for pooled cells sampled until settled" in hover and "[" not in hover.split("pass rate")[1]
