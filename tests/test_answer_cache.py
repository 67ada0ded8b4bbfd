"""The answer cache: reused only for the very same request and sample index."""

import pytest

from core.store import Store
from openai_stub import StubOpenAI
from test_settle import last_json, spread


def run_args(db, stub, *extra):
    return ["--db", db, "run", "--prompt", "Capital of France?", "--model", "openai/stub-a", "--temperature", "1",
            "--api-base", stub.base_url, "--seed", "4", "--json", *extra]


def test_the_same_plan_twice_with_cache_makes_no_request_and_marks_its_answers_cached(tmp_path):
    db = str(tmp_path / "cache.db")
    with StubOpenAI() as stub:
        first = last_json(spread(*run_args(db, stub, "--n", "5", "--cache")))
        asked = len(stub.requests)
        second = last_json(spread(*run_args(db, stub, "--n", "5", "--cache")))
        assert asked == 5 and len(stub.requests) == 5  # the second run asked nothing
        assert (first["cached"], second["cached"], second["calls"], second["cost_usd_new"]) == (0, 5, 0, 0)
        shown = last_json(spread("--db", db, "show", str(second["run_id"]), "--json"))
        answers = [a for cell in shown["cells"] for a in cell["answers"]]
        assert len(answers) == 5 and all(a["cached"] for a in answers)
        original = last_json(spread("--db", db, "show", str(first["run_id"]), "--json"))
        before = {a["sample_idx"]: (a["id"], a["text"]) for c in original["cells"] for a in c["answers"]}
        # Each repeat is its own earlier draw, not copies of one answer.
        assert {a["sample_idx"]: (a["cached_from"], a["text"]) for a in answers} == before
        assert len({text for _, text in before.values()}) > 1

        # Raising N samples only the new sample indices.
        third = last_json(spread(*run_args(db, stub, "--n", "8", "--cache")))
        assert len(stub.requests) == 8 and third["cached"] == 5 and third["calls"] == 3
        assert sorted(r["body"]["seed"] for r in stub.requests[5:]) == [9, 10, 11]


def test_without_cache_or_with_another_request_nothing_is_reused(tmp_path):
    db = str(tmp_path / "nocache.db")
    with StubOpenAI() as stub:
        spread(*run_args(db, stub, "--n", "3", "--cache"))
        spread(*run_args(db, stub, "--n", "3"))  # not asked for: sampled again
        assert len(stub.requests) == 6
        spread(*run_args(db, stub, "--n", "3", "--cache", "--max-tokens", "64"))  # another request
        assert len(stub.requests) == 9
        spread(*run_args(db, stub, "--n", "3", "--cache", "--system", "Be brief."))  # other messages
        assert len(stub.requests) == 12
    with Store(db).connection() as conn:
        assert conn.execute("select count(*) from responses where cached_from is not null").fetchone()[0] == 0


def test_runs_and_spread_pages_mark_reused_answers(store, stub):
    import asyncio

    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    from core.run import plan, runner

    for _ in range(2):
        run_id = plan.create(store, plan.RunSpec(prompt="Capital of France?", models=["openai/stub-a"], temperatures=[1.0],
                                          n=3, api_base=stub.base_url, seed=2, cache=True))
        asyncio.run(runner.execute(store, run_id))
    assert len(stub.requests) == 3
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.switch_page("pages/runs.py").run()
    assert not at.exception
    listed = at.dataframe[0].value
    assert listed.set_index("run").loc[run_id, "reused (cache)"] == 3
    assert any("cached" in df.value.columns and df.value["cached"].all() for df in at.dataframe[1:])
    at.switch_page("pages/spread.py").run()
    assert not at.exception
    assert any("3 of these answers reused from the cache" in c.value for c in at.caption)
