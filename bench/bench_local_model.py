"""Speed and answers of the embedded models (a measurement, not a test).

    .venv/bin/python bench/bench_local_model.py [--model ID ...] [--tokens 64] [--repeat 3] [--no-quiz]

For each embedded model (both by default): the time to find its GGUF and to load it,
tokens/s for one request at a time and for four parallel requests (the server's slots),
then the same samples called directly and taken through Spread (a run: streamed,
stored) with the same settings, medians of several repetitions. Then a quiz: 20 short
factual questions sent as a new user would (the question alone, as Spread sends it to
that model), how many it answers right at temperature 0 and how many of 5 samples per
question at temperature 1. An answer is right when it contains the expected word
(numbers as whole words); the model's first 32 tokens count.
"""

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.models import local_llm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", action="append", choices=list(local_llm.MODELS),
                        help="an embedded model (repeatable; default: all of them)")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=8, help="samples per comparison, direct and through Spread")
    parser.add_argument("--no-quiz", action="store_true", help="speed only, without the 20 questions")
    args = parser.parse_args()
    results = {}
    for model in args.model or list(local_llm.MODELS):
        results[model] = speed(model, args)
        if not args.no_quiz:
            results[model]["quiz"] = quiz(model)
    print(json.dumps(results, indent=2))


def speed(model: str, args) -> dict:
    start = time.perf_counter()
    local_llm.model_path(model)
    found = time.perf_counter() - start
    local_llm.server(model)
    loaded = time.perf_counter() - start - found
    local_llm.tokens_per_second(8, model_id=model)  # warm-up
    results = {"gguf_s": round(found, 2), "load_s": round(loaded, 2)}
    for parallel in (1, 4):
        runs = [local_llm.tokens_per_second(args.tokens, parallel, model) for _ in range(args.repeat)]
        results[f"tokens_per_s_parallel_{parallel}"] = round(statistics.median(runs), 1)
        results[f"tokens_per_s_parallel_{parallel}_all"] = [round(r, 1) for r in runs]
    direct, spread = [], []
    for k in range(args.repeat):
        direct.append(direct_tokens_per_second(model, args.tokens, args.samples, seed=k * 1000))
        spread.append(spread_tokens_per_second(model, args.tokens, args.samples, seed=k * 1000))
    results["samples"] = args.samples
    results["direct_tokens_per_s"] = round(statistics.median(direct), 1)
    results["through_spread_tokens_per_s"] = round(statistics.median(spread), 1)
    results["through_spread_over_direct"] = round(statistics.median(spread) / statistics.median(direct), 2)
    results["direct_all"] = [round(x, 1) for x in direct]
    results["through_spread_all"] = [round(x, 1) for x in spread]
    return results


# Short factual questions a newcomer might try, each with the word a right answer contains.
QUESTIONS = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the capital of Italy?", "Rome"),
    ("What is the capital of Germany?", "Berlin"),
    ("What is the capital of Spain?", "Madrid"),
    ("What is the capital of Australia?", "Canberra"),
    ("What is the capital of Canada?", "Ottawa"),
    ("What is the capital of Egypt?", "Cairo"),
    ("What is 2 + 2?", "4|four"),
    ("What is 7 times 8?", "56"),
    ("What is 12 squared?", "144"),
    ("What is 100 minus 37?", "63"),
    ("What is 9 plus 10?", "19|nineteen"),
    ("How many days are there in a week?", "7|seven"),
    ("How many legs does a spider have?", "8|eight"),
    ("What colour is the sky on a clear day?", "blue"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("What is the chemical formula of water?", "H2O|H₂O"),
    ("At how many degrees Celsius does water freeze?", "0|zero"),
]
QUIZ_SAMPLES = 5
QUIZ_TOKENS = 32


def right(answer: str, expected: str) -> bool:
    return re.search(rf"\b({expected})\b", answer, re.IGNORECASE) is not None


def quiz(model: str) -> dict:
    """Right answers at temperature 0 (one each) and at temperature 1 (5 seeded samples
    each), 4 requests at a time (the server's slots)."""
    from concurrent.futures import ThreadPoolExecutor

    def ask(job):
        (question, expected), temperature, seed = job
        out = local_llm.generate([{"role": "user", "content": question}],
                                 {"max_tokens": QUIZ_TOKENS, "temperature": temperature, "seed": seed}, model)
        return question, temperature, out["text"], right(out["text"], expected)

    jobs = [(q, 0.0, 0) for q in QUESTIONS] + [(q, 1.0, s) for q in QUESTIONS for s in range(QUIZ_SAMPLES)]
    start = time.perf_counter()
    with ThreadPoolExecutor(local_llm.PARALLEL_SLOTS) as pool:
        answers = list(pool.map(ask, jobs))
    cold = [a for a in answers if a[1] == 0.0]
    hot = [a for a in answers if a[1] == 1.0]
    return {
        "questions": len(QUESTIONS),
        "right_at_t0": sum(a[3] for a in cold),
        "right_at_t1": sum(a[3] for a in hot), "samples_at_t1": len(hot),
        "wrong_at_t0": {q: text for q, _, text, ok in cold if not ok},
        "seconds": round(time.perf_counter() - start, 1),
    }


PROMPT = "Write a long story about a lighthouse keeper."


def direct_tokens_per_second(model: str, max_tokens: int, samples: int, seed: int) -> float:
    """The embedded model called directly, 4 at a time (its slots), Spread's default stops."""
    from concurrent.futures import ThreadPoolExecutor

    messages = [{"role": "user", "content": PROMPT}]
    start = time.perf_counter()
    with ThreadPoolExecutor(local_llm.PARALLEL_SLOTS) as pool:
        outs = list(pool.map(lambda i: local_llm.generate(messages, {"max_tokens": max_tokens, "temperature": 1.0,
                                                                     "seed": seed + i}, model), range(samples)))
    return sum(o["completion_tokens"] or 0 for o in outs) / (time.perf_counter() - start)


def spread_tokens_per_second(model: str, max_tokens: int, samples: int, seed: int) -> float:
    """The same samples as a Spread run (streamed, stored), timed by the engine."""
    import asyncio
    import os
    import tempfile

    from core.store import Store, embeddings, now_iso, responses, runs, write
    from core.run import plan, runner

    with tempfile.TemporaryDirectory() as tmp:
        db = os.path.join(tmp, "local.db")
        spec = plan.RunSpec(prompt=PROMPT, models=[model], temperatures=[1.0], n=samples,
                            max_tokens=max_tokens, seed=seed, concurrency=local_llm.PARALLEL_SLOTS)
        summary = asyncio.run(runner.execute(Store(db), plan.create(Store(db), spec)))
        with Store(db).connection() as conn:
            tokens = sum(r["completion_tokens"] or 0 for r in responses.of_run(conn, summary["run_id"]))
    return tokens / summary["wall_s"]


if __name__ == "__main__":
    main()
