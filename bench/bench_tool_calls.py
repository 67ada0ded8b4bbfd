"""Cost of comparing answers that are data (a measurement, not a test).

    .venv/bin/python bench/bench_tool_calls.py [--answers 20000] [--repeat 3]

Analyses (exact method, no map) synthetic answers over 10 inputs: plain texts, then tool
calls (two functions, two arguments with a few values each), and prints one JSON line
per kind: the first analysis in the process, and the best of the repetitions (later
ones find each distinct answer's forms cached, as the app's process does). Calls are read, put in canonical form and
written as text once per distinct stored call, so their cost stays near that of text.
"""

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.analyse import spread  # noqa: E402


def rows(n: int, calls: bool) -> list[dict]:
    rng = random.Random(0)
    out = []
    for k in range(n):
        if calls:
            arguments = {"city": rng.choice(["Paris", "Lyon", "Nice"]), "unit": rng.choice(["c", "f"])}
            answer = {"text": "", "tool_calls": json.dumps(
                [{"name": rng.choice(["get_weather", "search"]), "arguments": arguments}])}
        else:
            answer = {"text": rng.choice(["Paris.", "It is Paris", "Lyon.", "The capital is Paris."]),
                      "tool_calls": None}
        out.append(answer | {"id": k + 1, "run_id": 1, "variant": 0, "input": k % 10, "model": "m",
                             "temperature": 1.0, "sample_idx": k // 10})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--answers", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for kind in ("text", "tool calls"):
        data = rows(args.answers, kind == "tool calls")
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            spread.analyse(data, method="exact", with_map=False)
            times.append(time.perf_counter() - start)
        print(json.dumps({"bench": "tool_calls", "answers": args.answers, "kind": kind,
                          "analyse_s_first": round(times[0], 3), "analyse_s_best": round(min(times), 3)}))


if __name__ == "__main__":
    main()
