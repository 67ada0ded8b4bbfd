"""Analyse: `spread show`."""

from __future__ import annotations

import click

from core import store
from core.cli.common import json_option, print_json
from core.config import SpreadError


@click.command("show")
@click.argument("run_id", type=int)
@click.option("--method", type=click.Choice(["minilm", "tfidf", "exact"]),
              help="group answers by meaning (minilm, the default when installed), wording (tfidf) or exact text")
@click.option("--threshold", type=float, help="similarity for two answers to share a cluster (default 0.65, as in the app)")
@json_option
def show_command(run_id, method, threshold, as_json):
    """One run: per cell counts, errors, tokens, cost, latency, meaning clusters and answers."""
    from core.analyse import spread  # numpy, scipy, scikit-learn: only for the commands that analyse

    if threshold is None:
        threshold = spread.DEFAULT_THRESHOLD
    if not 0 < threshold <= 1:
        raise SpreadError("the threshold must be in (0, 1]")
    with store.connect() as db:
        run = store.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        rows = store.responses(db, run_id)
    analysis = spread.analyse_run(run_id, method=method, threshold=threshold, with_map=False)
    cells = analysis.cells
    for cell in cells:
        cell["answers"] = [
            {"id": r["id"], "sample_idx": r["sample_idx"], "text": r["text"], "error_type": r["error_type"],
             "error_message": r["error_message"]}
            for r in rows if r["model"] == cell["model"] and r["temperature"] == cell["temperature"]
        ]
    if as_json:
        print_json({"run": run, "method": analysis.method, "threshold": analysis.threshold, "cells": cells,
                    "by_model": analysis.by_model, "by_temperature": analysis.by_temperature})
        return
    spec = run["spec"]
    print(f"run {run['id']} · {run['status']} · {run['answers']}/{run['planned']} answers · {run['errors']} errors"
          f" · clusters by {analysis.method} at {analysis.threshold}")
    print(f"prompt: {spec['prompt']}")
    for cell in cells:
        cost = "unknown" if cell["cost_usd"] is None else f"${cell['cost_usd']:.6f}"
        consistency = "–" if cell["consistency"] is None else (
            f"{cell['consistency']:.0%} [{cell['consistency_low']:.0%}–{cell['consistency_high']:.0%}]")
        print(f"\n== {cell['model']} @ T={cell['temperature']}: {cell['count']} answers, {cell['errors']} errors, "
              f"{cell['n_clusters']} meanings, consistency {consistency}")
        print(f"   tokens in/out {cell['prompt_tokens']}/{cell['completion_tokens']} · latency p50 "
              f"{cell['latency_ms_p50']} ms p95 {cell['latency_ms_p95']} ms · cost {cost}")
        for cluster in cell["clusters"][:5]:
            text = " ".join(cluster["representative"].split())[:120]
            print(f"   {cluster['size']:>4} × {text}")
        errors = [a for a in cell["answers"] if a["error_type"]]
        for answer in errors[:3]:
            print(f"   error #{answer['sample_idx']}: [{answer['error_type']}] {answer['error_message']}")


COMMANDS = [show_command]
