"""Deterministic checks per second on one core (a measurement, not a test).

    .venv/bin/python bench/bench_checks.py [--answers 2000]

Answers of 5 to 60 words; each check type scored on every answer, as scoring does after a
run. The regular expression runs through the JavaScript translation (core/evaluate/jsregex.py).
One JSON line per check type.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.evaluate import checks  # noqa: E402

CHECKS = [{"type": "regex", "value": r"\bParis\b.*\d{1,3}(,\d{3})+"}, {"type": "equals", "value": "Paris"},
          {"type": "contains-any", "value": ["Paris", "Lyon"]}, {"type": "is-json"},
          {"type": "levenshtein", "value": "The capital of France is Paris.", "threshold": 10}]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=2000)
    args = parser.parse_args()
    rng = random.Random(1)
    words = "the capital of France is Paris and it is a large city with 2,100,000 people".split()
    answers = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 60))) for _ in range(args.answers)]
    for spec in CHECKS:
        check = checks.validate([checks.from_dict(spec)])[0]
        start = time.perf_counter()
        for answer in answers:
            checks.deterministic(check, answer, {})
        elapsed = time.perf_counter() - start
        print(json.dumps({"bench": "checks", "type": spec["type"], "answers": len(answers),
                          "answers_per_s": round(len(answers) / elapsed)}))


if __name__ == "__main__":
    main()
