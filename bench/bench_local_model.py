"""Generation speed of the embedded model (a measurement, not a test).

    .venv/bin/python bench/bench_local_model.py [--tokens 64] [--repeat 3]

Prints the load time, then tokens/s for one request at a time and for four parallel
requests (the server's slots), medians of several repetitions.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.run import local_llm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    local_llm.model_path()
    assembled = time.perf_counter() - start
    local_llm.server()
    loaded = time.perf_counter() - start - assembled
    local_llm.tokens_per_second(8)  # warm-up
    results = {"assemble_s": round(assembled, 2), "load_s": round(loaded, 2)}
    for parallel in (1, 4):
        runs = [local_llm.tokens_per_second(args.tokens, parallel) for _ in range(args.repeat)]
        results[f"tokens_per_s_parallel_{parallel}"] = round(statistics.median(runs), 1)
        results[f"tokens_per_s_parallel_{parallel}_all"] = [round(r, 1) for r in runs]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
