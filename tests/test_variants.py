"""A run over prompt variants × inputs, end to end against the loopback stub."""

import asyncio
import collections
import json
import random
import sqlite3

import numpy as np
import pandas as pd
import pytest

from core.store import Store, responses
from core.analyse import sensitivity, spread
from core.formats import golden_files
from core.models import llm
from core.prompts import inputs
from core.review import golden, labels
from core.run import estimate, plan, runner
from test_cli import last_json, spread as cli

CAPITALS = {"France": "Paris", "Peru": "Lima", "Japan": "Tokyo"}


def capital_of(body: dict) -> str:
    """The stub answers with the capital of the country named in the prompt."""
    prompt = body["messages"][-1]["content"]
    return next((f"{city}." for country, city in CAPITALS.items() if country in prompt), "I don't know.")


def grid_spec(stub, **overrides) -> plan.RunSpec:
    fields = dict(
        variants=[plan.Variant("What is the capital of {{country}}?"),
                  plan.Variant("Name the capital city of {{ country }}.", "Answer in one word.", "terse")],
        inputs=[{"country": c, "expected": city} for c, city in CAPITALS.items()],
        models=["openai/stub-a"], temperatures=[0.0, 1.0], n=2, api_base=stub.base_url, seed=1,
    )
    fields.update(overrides)
    return plan.RunSpec(**fields)


def test_the_stub_receives_exactly_the_rendered_prompts(store, stub):
    stub.respond = capital_of
    spec = grid_spec(stub)
    run_id = plan.create(store, spec)
    summary = asyncio.run(runner.execute(store, run_id))
    assert summary["responses"] == 2 * 3 * 2 * 2 and summary["errors"] == 0
    sent = collections.Counter(
        tuple((m["role"], m["content"]) for m in r["body"]["messages"]) for r in stub.requests)
    expected = collections.Counter()
    for system, prompt in spec.rendered().values():
        expected[tuple((m["role"], m["content"]) for m in plan.messages(system, prompt))] += 4  # 2 T × N=2
    assert sent == expected
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
        assert db["run_prompts"].count == 6  # once per (variant, input), not per answer
    for row in rows:
        country = list(CAPITALS)[row["input"]]
        assert row["text"] == f"{CAPITALS[country]}."


def test_answers_to_different_inputs_are_never_clustered_together(store, stub):
    stub.respond = lambda body: "It is the capital."  # the same text for every input
    run_id = plan.create(store, grid_spec(stub))
    asyncio.run(runner.execute(store, run_id))
    analysis = spread.analyse_run(store, run_id, method="exact", with_map=False)
    assert len(analysis.clusters) == 3  # one per input, although every text is identical
    assert {c.input for c in analysis.clusters} == {0, 1, 2}
    per_input = analysis.answers.groupby("input")["cluster"].nunique()
    assert per_input.tolist() == [1, 1, 1]
    # Across variants of one input, the same meaning has one id.
    assert analysis.answers.groupby(["input", "variant"])["cluster"].first().unstack().nunique(axis=1).eq(1).all()


def test_resume_fills_only_the_missing_cells_of_a_grid(store, stub):
    stub.respond = capital_of
    spec = grid_spec(stub)
    run_id = plan.create(store, spec)
    with store.connection() as db:
        for cell in spec.cells()[:5]:
            v, i, m, t, s = cell
            responses.save_response(db, {"run_id": run_id, "variant": v, "input": i, "model": m, "temperature": t,
                                     "sample_idx": s, "text": "kept"})
    asyncio.run(runner.execute(store, run_id))
    assert stub.count() == spec.planned() - 5
    with store.connection() as db:
        rows = responses.of_run(db, run_id)
    assert len(rows) == spec.planned() and sum(r["text"] == "kept" for r in rows) == 5


def test_the_dry_run_estimate_counts_tokens_over_every_rendered_prompt(store, stub):
    spec = grid_spec(stub, models=["openai/stub-a", "openai/gpt-4o-mini"], max_tokens=50)
    result = estimate.estimate(store, spec, check_providers=False)
    litellm = llm.get()
    per_prompt = {model: sum(litellm.token_counter(model=model, messages=plan.messages(*p))
                             for p in spec.rendered().values()) for model in spec.models}
    assert result["calls"] == 2 * 3 * 2 * 2 * 2
    assert result["prompt_tokens"] == sum(per_prompt.values()) * 4  # × temperatures × N
    assert result["completion_tokens_max"] == result["calls"] * 50
    gpt = next(row for row in result["per_model"] if row["model"] == "openai/gpt-4o-mini")
    price_in, price_out = litellm.model_cost["gpt-4o-mini"]["input_cost_per_token"], \
        litellm.model_cost["gpt-4o-mini"]["output_cost_per_token"]
    assert gpt["cost_usd_low"] == pytest.approx(gpt["prompt_tokens"] * price_in)
    assert gpt["cost_usd_high"] == pytest.approx(gpt["prompt_tokens"] * price_in + 24 * 50 * price_out)
    stub_row = next(row for row in result["per_model"] if row["model"] == "openai/stub-a")
    assert stub_row["cost_usd_low"] is None and not result["cost_complete"]  # unknown price, never $0
    assert any("unknown price" in note for note in result["notes"])


def test_cli_runs_a_grid_from_a_csv_and_show_json_names_variants_and_inputs(stub, tmp_path):
    stub.respond = capital_of
    table = tmp_path / "cases.csv"
    table.write_text("country,expected\nFrance,Paris\nPeru,Lima\nJapan,Tokyo\n")
    db = str(tmp_path / "grid.db")
    dry = last_json(cli("--db", db, "run", "--prompt", "Capital of {{country}}?", "--prompt", "Name {{country}}'s capital.",
                        "--vars-file", str(table), "--model", "openai/stub-a", "--temperature", "1", "--n", "2",
                        "--api-base", stub.base_url, "--dry-run", "--json"))
    assert dry["calls"] == 12 and dry["variants"] == 2 and dry["inputs"] == 3 and dry["prompt_tokens"] > 0
    assert stub.count() == 0 and not (tmp_path / "grid.db").exists()  # a dry run writes nothing
    summary = last_json(cli("--db", db, "run", "--prompt", "Capital of {{country}}?", "--prompt",
                            "Name {{country}}'s capital.", "--label", "short", "--vars-file", str(table),
                            "--var", "style=plain", "--model", "openai/stub-a", "--temperature", "1", "--n", "2",
                            "--api-base", stub.base_url, "--json"))
    assert summary["planned"] == 12 and summary["responses"] == 12
    shown = last_json(cli("--db", db, "show", str(summary["run_id"]), "--json", "--method", "exact"))
    assert [v["label"] for v in shown["variants"]] == ["short", "B"]
    assert [i["vars"] for i in shown["inputs"]] == [
        {"country": c, "expected": city, "style": "plain"} for c, city in CAPITALS.items()]
    assert len(shown["cells"]) == 6
    for cell in shown["cells"]:
        assert {"variant", "input", "vars"} <= set(cell)
        assert cell["vars"]["country"] in cell["prompt"]
        assert cell["consistency"] == 1.0 and cell["clusters"][0]["representative"] == f"{cell['vars']['expected']}."


def test_a_missing_variable_exits_2_names_it_and_writes_nothing(stub, tmp_path):
    db = tmp_path / "missing.db"
    result = cli("--db", str(db), "run", "--prompt", "Capital of {{country}} in {{year}}?", "--var", "country=Peru",
                 "--model", "openai/stub-a", "--temperature", "1", "--n", "1", "--api-base", stub.base_url,
                 check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert "missing variable {{year}}" in lines[0] and "input 1" in lines[0]
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from runs").fetchone()[0] == 0
    assert stub.count() == 0


def test_metrics_across_inputs_are_means_with_an_interval_over_inputs(store, stub):
    # Input 0 always gives one meaning, inputs 1 and 2 give two in equal share.
    answers = {0: ["Paris."], 1: ["Lima.", "Cusco."], 2: ["Tokyo.", "Kyoto."]}
    stub.respond = lambda body: answers[[c in body["messages"][-1]["content"] for c in CAPITALS].index(True)][
        body["seed"] % len(answers[[c in body["messages"][-1]["content"] for c in CAPITALS].index(True)])]
    run_id = plan.create(store, grid_spec(stub, variants=[plan.Variant("Capital of {{country}}?")], temperatures=[1.0], n=4))
    asyncio.run(runner.execute(store, run_id))
    analysis = spread.analyse_run(store, run_id, method="exact", with_map=False)
    per_input = {row["input"]: row["consistency"] for row in analysis.by_input}
    assert per_input == {0: 1.0, 1: 0.5, 2: 0.5}
    (whole,) = analysis.by_model
    assert whole["inputs"] == 3 and whole["consistency"] == pytest.approx(2 / 3, abs=1e-4)
    assert whole["consistency_low"] < 2 / 3 < whole["consistency_high"]  # a t interval over 3 inputs
    assert whole["top_answer"] is None  # no single top answer across inputs


def test_wording_sensitivity_tells_a_wording_effect_from_sampling():
    rng = random.Random(0)
    rows = []
    for input_idx in range(6):
        for variant in (0, 1):
            for sample in range(10):
                if input_idx < 3:  # the wording decides the meaning
                    cluster = input_idx * 10 + variant
                else:  # both wordings spread the same way
                    cluster = input_idx * 10 + rng.randrange(2)
                rows.append({"input": input_idx, "model": "m", "variant": variant, "cluster": cluster})
    result = {row["input"]: row for row in sensitivity.by_input(pd.DataFrame(rows))}
    for input_idx in range(3):
        row = result[input_idx]
        assert row["wording_share"] > 0.9 and row["wording_share_low"] > 0.5 and row["wording_share_high"] == 1.0
        assert row["wording_matters"] and row["p_value"] <= row["p_value_holm"] < 0.05
        assert row["top_meaning_changes"]
    for input_idx in range(3, 6):
        row = result[input_idx]
        assert row["wording_share"] < 0.1 and row["wording_share_low"] == 0.0 and not row["wording_matters"]
        assert row["wording_share"] <= row["wording_share_plugin"]  # the chance part is taken off
    (summary,) = sensitivity.summary(list(result.values()))
    assert summary["wording_matters"] == 3 and summary["inputs"] == 6
    assert summary["wording_share_low"] < summary["wording_share"] < summary["wording_share_high"]


def test_a_wording_null_reused_from_another_threshold_is_the_one_this_split_would_draw():
    """The shuffles are kept per way a row's answers split into meanings: a row split as at
    an earlier threshold reuses that null (whatever the clusters' ids), one split otherwise
    draws its own, and every row equals a fresh computation."""
    rng = random.Random(3)
    rows = [{"input": i, "model": "m", "variant": v, "cluster": rng.randrange(3)}
            for i in range(4) for v in (0, 1) for _ in range(8)]
    first = pd.DataFrame(rows)
    drawn = sensitivity.design(first)
    sensitivity.by_input(first, drawn=drawn)
    renumbered = first.assign(cluster=100 * first["input"] + 2 - first["cluster"])  # same splits, ids reversed
    finer = first.assign(cluster=np.where(first.index % 5 == 0, 99, first["cluster"]))  # other splits
    for later in (renumbered, finer, first):
        assert sensitivity.by_input(later, drawn=drawn) == sensitivity.by_input(later)
    assert len(drawn.nulls) == 8  # each row's first split, and its finer one; the renumbered split reused


def test_comparing_two_wordings_is_paired_per_input(store, stub):
    # Wording A answers right for every input; wording B gets Peru wrong.
    def respond(body):
        prompt = body["messages"][-1]["content"]
        if prompt.startswith("Name") and "Peru" in prompt:
            return "Cusco."
        return capital_of(body)

    stub.respond = respond
    run_id = plan.create(store, grid_spec(stub))
    asyncio.run(runner.execute(store, run_id))
    result = spread.compare_runs(store, (run_id, [], [0]), (run_id, [], [1]), method="exact")
    assert result["paired_inputs"] == 3
    assert result["top_meaning_changed"] == 1
    changed = [row for row in result["per_input"] if not row["same_top_meaning"]]
    assert [row["input"] for row in changed] == [1] and changed[0]["top_b"] == "Cusco."
    assert result["representative_a"] == "Lima." and result["representative_b"] == "Cusco."


def test_a_golden_item_from_a_templated_run_keeps_its_input_and_can_feed_a_new_run(store, stub, tmp_path):
    stub.respond = capital_of
    run_id = plan.create(store, grid_spec(stub))
    asyncio.run(runner.execute(store, run_id))
    with store.connection() as db:
        peru = next(r for r in responses.of_run(db, run_id) if r["input"] == 1 and r["variant"] == 1)
    labels.label(store, peru["id"], "ana", labels.Label("pass"))
    golden.create_set(store, "capitals")
    golden.add_responses(store, "capitals", [peru["id"]], who="ana")
    (item,) = golden.items(store, "capitals")
    assert item["vars"] == {"country": "Peru", "expected": "Lima"}
    assert item["template"] == "Name the capital city of {{ country }}." and item["system"] == "Answer in one word."
    assert item["prompt"] == "Name the capital city of Peru."
    assert (item["prompt_name"], item["prompt_version"]) == ("terse", 1)  # a named variant is versioned under its name
    assert item["accepted"] == ["Lima."]  # only answers to the same input
    rows = golden.as_inputs(store, "capitals")
    assert rows[0]["country"] == "Peru" and rows[0]["reference"] == "Lima."
    data = golden_files.export(store, "capitals", "jsonl")
    record = json.loads(data)
    assert record["input"]["template"] == item["template"] and record["source"]["prompt_version"] == 1
    other = tmp_path / "other.db"  # export → import into another database → export: the same bytes
    golden_files.import_bytes(Store(other), "capitals", data, "jsonl")
    assert golden_files.export(Store(other), "capitals", "jsonl") == data
    csv_copy = tmp_path / "csv.db"
    golden_files.import_bytes(Store(csv_copy), "capitals", golden_files.export(store, "capitals", "csv"), "csv")
    assert golden.items(Store(csv_copy), "capitals")[0]["template"] == item["template"]


def test_a_prompt_blind_model_gets_a_wording_share_whose_interval_reaches_0(stub, tmp_path):
    """The stub answers from one list whatever the wording: `spread show --json` must not
    find a wording effect (the plug-in share alone read about 0.17 here)."""
    import threading

    draws, lock = random.Random(7), threading.Lock()
    answers = ["Paris.", "Lyon.", "Marseille.", "Nice."]

    def blind(body):
        with lock:
            return answers[draws.randrange(len(answers))]

    stub.respond = blind
    db = tmp_path / "blind.db"
    spec = grid_spec(stub, variants=[plan.Variant("What is the capital of {{country}}?"),
                                     plan.Variant("Name the capital city of {{country}}."),
                                     plan.Variant("{{country}}: capital?")],
                     temperatures=[1.0], n=8, seed=None, concurrency=1)
    run_id = plan.create(Store(db), spec)
    asyncio.run(runner.execute(Store(db), run_id))
    shown = last_json(cli("--db", str(db), "show", str(run_id), "--json", "--method", "exact"))
    rows = shown["wording"]
    assert len(rows) == len(CAPITALS)
    for row in rows:
        assert set(row) >= {"input", "model", "wording_share", "wording_share_low", "wording_share_high",
                            "p_value", "p_value_holm"}
        assert row["wording_share_low"] == 0.0 <= row["wording_share"] <= row["wording_share_high"]
        assert row["p_value"] <= row["p_value_holm"]


def test_mutual_information_of_each_shuffle_is_the_plug_in_estimate():
    from sklearn.metrics import mutual_info_score

    from core.analyse import sensitivity

    rng = np.random.default_rng(5)
    for n, variants, clusters in ((2, 2, 1), (12, 2, 3), (40, 3, 25), (60, 2, 60), (30, 4, 5)):
        codes = rng.integers(0, clusters, n)
        observed = rng.permutation(np.arange(n) % variants)
        rows = np.vstack([observed] + [rng.permutation(observed) for _ in range(20)])
        ours = sensitivity.mutual_information(rows, np.unique(codes, return_inverse=True)[1], variants,
                                              len(np.unique(codes)))
        assert ours == pytest.approx([mutual_info_score(row, codes) for row in rows], abs=1e-9)
