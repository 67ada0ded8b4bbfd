"""The wording share on a model that ignores the prompt, and on one that does not (a
measurement, not a test).

Simulated tables of (input, wording, meaning), clustered already: a prompt-blind model
draws every answer from one distribution of meanings whatever the wording; a
prompt-bound one gives wording A's answers a different top meaning from wording B's.
For each, over many tables, the plug-in share I / H (what Spread reported before issue
15), the bias-corrected share, and how often an interval lies wholly above 0 (a row, and
a whole table of rows) or a row is "beyond noise" (Holm).

    .venv/bin/python bench/bench_wording.py [--tables 200] [--inputs 6] [--wordings 3] [--n 8]
"""

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from core.analyse import sensitivity  # noqa: E402

MEANINGS = np.array([0.55, 0.25, 0.15, 0.05])  # one common answer and a tail


def table(rng: np.random.Generator, inputs: int, wordings: int, n: int, bound: bool) -> pd.DataFrame:
    rows = []
    for input_idx in range(inputs):
        for variant in range(wordings):
            # Prompt-bound: wording 0 keeps the distribution, the others swap the top two meanings.
            p = MEANINGS if not bound or variant == 0 else MEANINGS[[1, 0, 2, 3]]
            for meaning in rng.choice(len(MEANINGS), size=n, p=p):
                rows.append({"input": input_idx, "model": "m", "variant": variant,
                             "cluster": input_idx * 10 + int(meaning)})
    return pd.DataFrame(rows)


def measure(tables: int, inputs: int, wordings: int, n: int, bound: bool, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    plugin, corrected, rows_above, tables_above, matters = [], [], 0, 0, 0
    started = time.perf_counter()
    for k in range(tables):
        result = sensitivity.by_input(table(rng, inputs, wordings, n, bound), seed=k)
        plugin += [row["wording_share_plugin"] for row in result]
        corrected += [row["wording_share"] for row in result]
        above = sum(row["wording_share_low"] > 0 for row in result)
        rows_above += above
        tables_above += above > 0
        matters += sum(row["wording_matters"] for row in result)
    total = tables * inputs
    return {"model": "prompt-bound" if bound else "prompt-blind", "tables": tables, "inputs": inputs,
            "wordings": wordings, "n": n, "plugin_share_mean": round(float(np.mean(plugin)), 4),
            "corrected_share_mean": round(float(np.mean(corrected)), 4),
            "rows_interval_above_0": round(rows_above / total, 4),
            "tables_with_a_row_above_0": round(tables_above / tables, 4),
            "rows_beyond_noise_holm": round(matters / total, 4),
            "seconds_per_table": round((time.perf_counter() - started) / tables, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=200)
    parser.add_argument("--inputs", type=int, default=6)
    parser.add_argument("--wordings", type=int, default=3)
    parser.add_argument("--n", type=int, default=8, help="answers per wording and input")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for bound in (False, True):
        print(json.dumps(measure(args.tables, args.inputs, args.wordings, args.n, bound, args.seed)))


if __name__ == "__main__":
    main()
