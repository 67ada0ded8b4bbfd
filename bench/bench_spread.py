"""Speed of the spread analysis and the Spread page (a measurement, not a test).

    .venv/bin/python bench/bench_spread.py [--answers 1000] [--page-answers 10000] [--repeat 5] [--grid]

Builds runs of synthetic short answers (a few meanings in varied wording, numbers and
names, many distinct texts, as a sampled LLM gives) in a temporary database, then
reports medians of several runs:
- cold: nothing cached, embedding model not loaded (a fresh process per repetition);
- cached: embeddings in the database (what re-opening a run costs);
- page: the Spread page through AppTest for a 10,000-answer run, after the worker has
  cached the run's embeddings (as the app does when a run ends): first open in a new
  server, and re-renders (analysis in st.cache_data).
- with --grid, the page's run is a realistic grid instead of one prompt: 100 inputs ×
  3 wordings × 2 models × 2 temperatures × N; and clustering those answers per input is
  timed against clustering the same answers as one cell (the cost before inputs existed).
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SUBJECTS = ["Canberra", "Sydney", "Melbourne", "Perth"]
FRAMES = ["{x}", "{x}.", "The capital of Australia is {x}.", "It is {x}, I think.", "{x}, of course!",
          "I believe the answer is {x}.", "Answer: {x}", "The capital city is {x}", "{x} is the capital.",
          "Most people say {x}, and that is right.", "Definitely {x}"]


def synthetic_answers(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        text = rng.choice(FRAMES).format(x=rng.choices(SUBJECTS, weights=[6, 3, 1, 1])[0])
        if rng.random() < 0.5:  # tails make many answers distinct
            text += f" It has about {rng.randint(300, 460)} thousand people."
        out.append(text)
    return out


def make_run(db_path: str, n: int, models: int = 4, temperatures=(0.0, 0.5, 1.0, 1.5)) -> int:
    os.environ["SPREAD_DB"] = db_path
    from core.store import Store, embeddings, now_iso, responses, runs, write

    per_cell = max(1, n // (models * len(temperatures)))
    spec = {"prompt": "What is the capital of Australia?", "system": "", "name": "bench",
            "models": [f"openai/m{i}" for i in range(models)], "temperatures": list(temperatures), "n": per_cell}
    texts = synthetic_answers(per_cell * models * len(temperatures))
    with Store(db_path).connection() as db:
        run_id = runs.create_run(db, spec=spec, planned=len(texts))
        rows, k = [], 0
        for m in spec["models"]:
            for t in temperatures:
                for i in range(per_cell):
                    rows.append({"run_id": run_id, "model": m, "temperature": t, "sample_idx": i, "text": texts[k],
                                 "finish_reason": "stop", "prompt_tokens": 12, "completion_tokens": len(texts[k].split()),
                                 "cost_usd": 0.00001, "latency_ms": random.uniform(200, 900), "ttft_ms": 80.0,
                                 "attempts": 1, "created_at": now_iso()})
                    k += 1
        with write(db):
            db["responses"].insert_all(rows)
        runs.set_run_status(db, run_id, "done")
    return run_id


# Three meanings an answer can have, each said with a few of its words: no name, number or
# yes/no for the facts to settle, so the embeddings decide and each threshold cuts its own clusters.
PROSE = [("coastal", "port", "harbour", "ships", "sea", "merchants", "docks", "trade"),
         ("mountain", "valley", "river", "farms", "quiet", "hills", "snow", "pasture"),
         ("industrial", "factories", "smoke", "steel", "workers", "railway", "mills", "busy")]


def prose_answer(rng: random.Random, meaning: int) -> str:
    words = rng.sample(PROSE[meaning], 3) + [rng.choice(PROSE[rng.randrange(3)])]  # and a stray word
    return f"a {words[0]} town with {words[1]}, {words[2]} and {words[3]}"


def make_grid_run(db_path: str, n: int, inputs: int = 100, variants: int = 3, models: int = 2,
                  temperatures=(0.0, 1.0), kind: str = "facts") -> int:
    """A run of `inputs` questions × wordings × models × temperatures, about n answers in all.
    `kind` "facts": answers name one of three cities (facts settle every pair, whatever the
    threshold); "prose": they describe one of three kinds of town in a few words (PROSE)."""
    os.environ["SPREAD_DB"] = db_path
    from core.store import Store, embeddings, now_iso, responses, runs, write

    per_cell = max(1, n // (inputs * variants * models * len(temperatures)))
    spec = {"prompt": "What is the capital of {{country}}?", "system": "", "name": "bench-grid",
            "models": [f"openai/m{i}" for i in range(models)], "temperatures": list(temperatures), "n": per_cell,
            "n_inputs": inputs}
    wordings = [{"label": chr(65 + v), "name": "", "prompt": f"Wording {v}: capital of {{{{country}}}}?", "system": ""}
                for v in range(variants)]
    spec["variants"] = wordings  # as a plan made in the Playground stores them
    rows_in = [{"country": f"Country{i}"} for i in range(inputs)]
    rendered = {(v, i): ("", f"Wording {v}: capital of Country{i}?") for v in range(variants) for i in range(inputs)}
    rng = random.Random(0)
    with Store(db_path).connection() as db:
        run_id = runs.create_run(db, spec=spec, planned=per_cell * inputs * variants * models * len(temperatures),
                                  variants=wordings, inputs=rows_in, rendered=rendered)
        rows = []
        for i in range(inputs):
            cities = [f"City{i}a", f"City{i}b", f"City{i}c"]
            for v in range(variants):
                for m in spec["models"]:
                    for t in temperatures:
                        for s in range(per_cell):
                            meaning = rng.choices(range(3), weights=[6, 2 + v, 1])[0]
                            text = (rng.choice(FRAMES).format(x=cities[meaning]) if kind == "facts"
                                    else prose_answer(rng, meaning))
                            rows.append({"run_id": run_id, "variant": v, "input": i, "model": m, "temperature": t,
                                         "sample_idx": s, "text": text, "finish_reason": "stop", "prompt_tokens": 12,
                                         "completion_tokens": len(text.split()), "cost_usd": 0.00001,
                                         "latency_ms": rng.uniform(200, 900), "ttft_ms": 80.0, "attempts": 1,
                                         "created_at": now_iso()})
        with write(db):
            db["responses"].insert_all(rows)
        runs.set_run_status(db, run_id, "done")
    return run_id


def time_in_fresh_process(db_path: str, run_id: int) -> float:
    code = ("import time,sys; sys.path.insert(0, %r); from core.analyse import spread; from core.store import Store; t=time.perf_counter(); "
            "spread.analyse_run(Store(), %d, method='minilm'); print(time.perf_counter()-t)") % (str(ROOT), run_id)
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, SPREAD_DB=db_path),
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=1000)
    parser.add_argument("--page-answers", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--grid", action="store_true", help="the page's run is a 100-input grid (see above)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        cold = []
        for r in range(args.repeat):
            db = f"{tmp}/cold{r}.db"
            run_id = make_run(db, args.answers)
            cold.append(time_in_fresh_process(db, run_id))
        from core.analyse import spread
        from core.store import Store

        cached = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            analysis = spread.analyse_run(Store(db), run_id, method="minilm")
            cached.append(time.perf_counter() - start)
        results["answers"] = len(analysis.answers)
        results["distinct"] = int(analysis.answers["norm"].nunique())
        results["cold_s_median"] = round(statistics.median(cold), 3)
        results["cold_s_all"] = [round(x, 3) for x in cold]
        results["cached_s_median"] = round(statistics.median(cached), 3)
        results["cached_s_all"] = [round(x, 3) for x in cached]

        from streamlit.runtime.pages_manager import PagesManager
        from streamlit.testing.v1 import AppTest

        original = PagesManager.__init__  # as tests/conftest.py: no legacy pages/ mode

        def init(self, *a, **k):
            original(self, *a, **k)
            PagesManager.uses_pages_directory = False

        PagesManager.__init__ = init

        db = f"{tmp}/page.db"
        run_id = (make_grid_run if args.grid else make_run)(db, args.page_answers)
        os.environ["SPREAD_DB"] = db
        first, again = [], []
        # What the app's worker does when a run ends: embeddings cached before anyone looks.
        from core.analyse import embed

        start = time.perf_counter()
        embed.warm_run(Store(db), run_id)
        results["warm_embeddings_s"] = round(time.perf_counter() - start, 3)
        if args.grid:  # the same answers clustered per input, and as if they were one cell
            from core.store import Store, embeddings, now_iso, responses, runs, write

            with Store(db).connection() as conn:
                rows = responses.of_run(conn, run_id)
            flat = [dict(r, input=0, variant=0) for r in rows]
            per_input, one_cell = [], []
            for _ in range(args.repeat):
                start = time.perf_counter()
                spread.analyse_run(Store(db), run_id, method="minilm", with_map=False)
                per_input.append(time.perf_counter() - start)
                start = time.perf_counter()
                from core.analyse import embed

                spread.analyse(flat, method="minilm", with_map=False,
                               embedder=lambda texts, m: embed.cached(Store(db), texts, m))
                one_cell.append(time.perf_counter() - start)
            results["grid_analysis_per_input_s_median"] = round(statistics.median(per_input), 3)
            results["grid_analysis_as_one_cell_s_median"] = round(statistics.median(one_cell), 3)
        import streamlit as st

        for _ in range(args.repeat):
            st.cache_data.clear()  # a new server process: nothing analysed yet
            fresh = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
            fresh.run()
            fresh.switch_page("pages/spread.py")
            start = time.perf_counter()
            fresh.run()  # first open of the run in a new server: analysis not cached yet
            first.append(time.perf_counter() - start)
        results["page_first_open_after_run_s_median"] = round(statistics.median(first), 3)
        results["page_first_open_after_run_s_all"] = [round(x, 3) for x in first]
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.run()
        at.switch_page("pages/spread.py")
        start = time.perf_counter()
        at.run()  # embeddings cached by the worker; the analysis itself is computed now
        results["page_first_open_s"] = round(time.perf_counter() - start, 3)
        assert not at.exception, at.exception
        for _ in range(args.repeat):
            start = time.perf_counter()
            at.run()  # later renders: the analysis comes from st.cache_data
            again.append(time.perf_counter() - start)
        results["page_answers"] = args.page_answers
        results["page_rerender_s_median"] = round(statistics.median(again), 3)
        results["page_rerender_s_all"] = [round(x, 3) for x in again]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
