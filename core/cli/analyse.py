"""Analyse: `spread show`."""

from __future__ import annotations

import click

from core.cli.common import json_option, pass_store, print_json
from core.config import SpreadError
from core.prompts import conversation, shapes
from core.store import Store, responses, runs


@click.command("show")
@click.argument("run_id", type=int)
@click.option("--method", type=click.Choice(["minilm", "tfidf", "exact"]),
              help="group answers by meaning (minilm, the default when installed), wording (tfidf) or exact text")
@click.option("--threshold", type=float, help="similarity for two answers to share a cluster (default 0.70, as in the app)")
@click.option("--extract", metavar="MODE",
              help="the part of each answer to compare: whole, first-sentence, final-answer, json:FIELD, "
                   "regex:PATTERN (default: the run's, else whole)")
@click.option("--embeddings", metavar="NAME",
              help="cluster with this catalogue embedding endpoint (model_info mode: embedding; vectors cached "
                   "per model and text); default: the run's, else MiniLM")
@click.option("--second-opinion", metavar="MODEL",
              help="ask this chat endpoint (a catalogue name) or litellm model about pairs near the threshold that "
                   "no fact decides (paid once per pair)")
@json_option
@pass_store
def show_command(store: Store, run_id, method, threshold, extract, embeddings, second_opinion, as_json):
    """One run: per cell counts, errors, tokens, cost, latency, meaning clusters and answers, and
    how much of the spread each input's wording explains (`wording` in --json)."""
    from core.analyse import spread  # numpy, scipy, scikit-learn: only for the commands that analyse

    if threshold is None:
        threshold = spread.DEFAULT_THRESHOLD
    if not 0 < threshold <= 1:
        raise SpreadError("the threshold must be in (0, 1]")
    with store.connection() as db:
        run = runs.get_run(db, run_id)
        if run is None:
            raise SpreadError(f"no run with id {run_id}")
        rows = responses.of_run(db, run_id)
    if embeddings:
        from core.analyse import embed

        if method:
            raise click.UsageError("give --method or --embeddings, not both")
        method = embed.ENDPOINT + embeddings
        embed.embedding_endpoint(store, method)  # a one-line error before any work
    if extract:
        from core.analyse import meaning

        try:
            meaning.check_extract_mode(extract)
        except ValueError as e:
            raise SpreadError(str(e)) from None
    analysis = spread.analyse_run(store, run_id, method=method, threshold=threshold, with_map=False, extract=extract,
                                  second_opinion_model=second_opinion)
    from core.analyse import settled

    settled.attach(store, analysis, run)  # n, settled, stopped_by; the anytime interval of a run sampled until settled
    prompts = {}
    with store.connection() as db:
        prompts = runs.rendered_prompts(db, run_id)
        sent = runs.sent_messages(db, run_id)
    checked = _check_results(store, run_id, analysis, bool(run["spec"].get("until_settled")))  # the run's checks and its inputs' own (an imported suite's)
    by_cell: dict[tuple, list] = {}
    for r in rows:
        answer = {"id": r["id"], "sample_idx": r["sample_idx"], "text": r["text"], "error_type": r["error_type"],
                  "error_message": r["error_message"], "deployment": r.get("deployment"), **shapes.answer_data(r),
                  "cached": r.get("cached_from") is not None, "cached_from": r.get("cached_from")}
        if checked:
            answer["checks"] = checked["by_answer"].get(r["id"], [])
        by_cell.setdefault((r["variant"], r["input"], r["model"], r["temperature"]), []).append(answer)
    for cell in analysis.cells:
        key = (cell["variant"], cell["input"], cell["model"], cell["temperature"])
        cell["answers"] = by_cell.get(key, [])
        cell["system"], cell["prompt"] = prompts.get((cell["variant"], cell["input"]), ("", ""))
        # The whole conversation as sent (the system text and prompt for runs from before it was kept).
        cell["messages"] = conversation.as_sent(sent.get((cell["variant"], cell["input"])), cell["system"],
                                                cell["prompt"])
        if checked:
            rate = checked["cells"].get(key, {})
            cell.update({k: rate.get(k) for k in ("pass_rate", "pass_rate_low", "pass_rate_high")})
    from core.analyse import sensitivity

    wording = sensitivity.table(sensitivity.by_input(analysis.answers))
    if as_json:
        print_json({"run": run, "method": analysis.method, "threshold": analysis.threshold,
                    "extract": analysis.extract, "second_opinion": analysis.second_opinion,
                    "variants": analysis.variants, "inputs": analysis.inputs, "cells": analysis.cells,
                    "by_model": analysis.by_model, "by_temperature": analysis.by_temperature,
                    "by_variant": analysis.by_variant, "by_input": analysis.by_input, "wording": wording})
        return
    several = len(analysis.variants) > 1 or len(analysis.inputs) > 1
    print(f"run {run['id']} · {run['status']} · {run['answers']}/{run['planned']} answers · {run['errors']} errors"
          f" · clusters by {analysis.method} at {analysis.threshold}")
    for variant in analysis.variants:
        print(f"prompt {variant['label']} ({variant['name']} v{variant['version']}): {variant['prompt']}")
    if len(analysis.inputs) > 1:
        print(f"{len(analysis.inputs)} inputs")
    for cell in analysis.cells:
        cost = "unknown" if cell["cost_usd"] is None else f"${cell['cost_usd']:.6f}"
        consistency = "–" if cell["consistency"] is None else (
            f"{cell['consistency']:.0%} [{cell['consistency_low']:.0%}–{cell['consistency_high']:.0%}]")
        where = f"{cell['variant_label']} · input {cell['input'] + 1} · " if several else ""
        stopped = ("" if cell.get("settled") is None else
                   f" · n={cell['n']} " + ("settled" if cell["settled"] else "not settled")
                   + (f" (stopped by {cell['stopped_by']})" if cell["stopped_by"] else " (open)"))
        print(f"\n== {where}{cell['model']} @ T={cell['temperature']}: {cell['count']} answers, "
              f"{cell['errors']} errors, {cell['n_clusters']} meanings, consistency {consistency}{stopped}")
        if len(analysis.inputs) > 1:
            print(f"   prompt: {' '.join(cell['prompt'].split())[:120]}")
        print(f"   tokens in/out {cell['prompt_tokens']}/{cell['completion_tokens']} · latency p50 "
              f"{cell['latency_ms_p50']} ms p95 {cell['latency_ms_p95']} ms · cost {cost}")
        for tool in cell.get("tools", []):
            print(f"   tool {tool['tool']}: {tool['share']:.0%} ({tool['count']})")
        for cluster in cell["clusters"][:5]:
            text = " ".join(cluster["representative"].split())[:120]
            kind = f"[{cluster['kind']}] " if cluster.get("kind") else ""
            print(f"   {cluster['size']:>4} × {kind}{text}")
        errors = [a for a in cell["answers"] if a["error_type"]]
        for answer in errors[:3]:
            print(f"   error #{answer['sample_idx']}: [{answer['error_type']}] {answer['error_message']}")
    if several:
        for title, rows_, key in (("per variant", analysis.by_variant, "variant"), ("per input", analysis.by_input, "input")):
            if len(rows_) > 1:
                print(f"\n{title}:")
                for row in rows_:
                    print(f"   {key} {row[key]}: consistency {row['consistency']} "
                          f"[{row['consistency_low']}–{row['consistency_high']}] over {row['inputs']} input(s)")
    if wording:
        print("\nshare of the spread due to wording (bias-corrected; p raw / Holm-adjusted over rows):")
        for row in wording:
            print(f"   input {row['input'] + 1} · {row['model']}: {row['wording_share']:.0%} "
                  f"[{row['wording_share_low']:.0%}–{row['wording_share_high']:.0%}] · p {row['p_value']} raw, "
                  f"{row['p_value_holm']} Holm")


def _check_results(store: Store, run_id: int, analysis, adaptive: bool) -> dict:
    """The run's checks, scored: per answer its results, per cell its pass rate (`adaptive`:
    the run was sampled until settled, and each cell's interval is the anytime-valid one)."""
    from core.analyse.spread import AXES
    from core.evaluate import rates, scoring

    results = scoring.score_run_sync(store, run_id)
    if not results:
        return {}
    by_answer: dict[int, list] = {}
    for row in results:
        by_answer.setdefault(row["response_id"], []).append(
            {"check": row["check_key"], "type": row["type"], "passed": None if row["passed"] is None
             else bool(row["passed"]), "score": row["score"], "reason": row["reason"]})
    scored = rates.frame(analysis.answers, scoring.verdicts(store, run_id, results))
    cells = {(r["variant"], r["input"], r["model"], r["temperature"]): r
             for r in rates.by_group(scored, AXES, adaptive=adaptive)}
    return {"by_answer": by_answer, "cells": cells}


COMMANDS = [show_command]
