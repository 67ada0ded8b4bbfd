"""Plan and run: `spread run`, `resume`, `cancel`, `runs`."""

from __future__ import annotations

import asyncio
import os
import sys

import click

from core import store
from core.cli.common import json_option, print_json, read_text
from core.config import SpreadError
from core.run import plan, runner


@click.command("run")
@click.option("--prompt", help="the user message")
@click.option("--prompt-file", metavar="PATH", help="read the user message from a UTF-8 file (- for stdin)")
@click.option("--system", default="", help="the system message")
@click.option("--system-file", metavar="PATH", help="read the system message from a UTF-8 file")
@click.option("--model", "models", multiple=True, required=True, metavar="ID",
              help="a litellm model id; repeat for several (local/gemma-3-270m is the embedded model)")
@click.option("--temperature", "temperatures", type=float, multiple=True, required=True, metavar="T",
              help="a sampling temperature in 0..2; repeat for several")
@click.option("--n", type=int, required=True, help=f"samples per cell (1..{plan.MAX_N})")
@click.option("--max-tokens", type=int, default=256, metavar="K", show_default=True, help="answer length limit")
@click.option("--seed", type=int, help="base seed: sample i uses seed+i, so a run repeats exactly")
@click.option("--top-p", type=float, help="nucleus sampling threshold in (0, 1]")
@click.option("--concurrency", type=int, default=8, metavar="C", show_default=True,
              help="calls in flight at once, across all models")
@click.option("--per-model", type=int, metavar="C",
              help="also at most C calls in flight per model (default: no per-model limit, except the embedded "
                   "model's own slots)")
@click.option("--api-base", metavar="URL", help="OpenAI-compatible server for the non-local models")
@click.option("--timeout", type=float, default=120.0, metavar="S", show_default=True, help="seconds per call")
@click.option("--max-attempts", type=int, default=4, show_default=True, help="attempts per sample for transient errors")
@click.option("--no-stream", is_flag=True, help="ask for whole answers (no time to first token)")
@click.option("--name", help="a name for the prompt (versions are kept per name)")
@json_option
def run_command(prompt, prompt_file, system, system_file, models, temperatures, n, max_tokens, seed, top_p,
                concurrency, per_model, api_base, timeout, max_attempts, no_stream, name, as_json):
    """Sample a prompt over models × temperatures × N, storing each answer as it arrives, and wait."""
    if (prompt is None) == (prompt_file is None):
        raise click.UsageError("give one of --prompt or --prompt-file")
    if system_file and system:
        raise click.UsageError("give --system or --system-file, not both")
    prompt = read_text(prompt_file) if prompt_file else prompt
    system = read_text(system_file) if system_file else system
    if not 1 <= max_attempts <= 20:
        raise SpreadError("max attempts must be in 1..20")
    spec = plan.RunSpec(
        prompt=prompt, system=system, models=list(models), temperatures=list(temperatures), n=n,
        max_tokens=max_tokens, seed=seed, top_p=top_p, concurrency=concurrency, per_model_concurrency=per_model,
        api_base=api_base, timeout_s=timeout, max_attempts=max_attempts, stream=not no_stream, name=name or "",
    )
    run_id = plan.create(spec, created_by=os.environ.get("USER", ""))
    if not as_json:
        print(f"run {run_id}: {spec.planned()} samples", file=sys.stderr)
    return execute(run_id, as_json, retry_errors=False)


@click.command("resume")
@click.argument("run_id", type=int)
@click.option("--retry-errors", is_flag=True, help="also sample again the cells that ended in an error")
@json_option
def resume_command(run_id, retry_errors, as_json):
    """Fill only the cells an interrupted run is missing."""
    with store.connect() as db:
        if store.get_run(db, run_id) is None:
            raise SpreadError(f"no run with id {run_id}")
    return execute(run_id, as_json, retry_errors=retry_errors)


def execute(run_id: int, as_json: bool, *, retry_errors: bool) -> int:
    """Run the engine with a progress bar (rate and ETA) on stderr; print the summary."""
    from tqdm import tqdm

    bar = None

    def on_answer(progress: runner.Progress, row: dict) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=progress.planned, initial=progress.received - 1, unit="answer",
                       file=sys.stderr, dynamic_ncols=True, disable=as_json)
        bar.update(1)
        bar.set_postfix(errors=progress.errors, refresh=False)

    pool = runner.prepare_own_process(run_id, retry_errors=retry_errors)
    try:
        result = asyncio.run(runner.execute(run_id, retry_errors=retry_errors, on_answer=on_answer, pool=pool))
    finally:
        if pool is not None:
            pool.join()  # already closed by the engine, unless it failed before it began
        if bar is not None:
            bar.close()
    if as_json:
        print_json(result)
        return 0
    cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.6f}"
    print(f"run {run_id} {result['status']}: {result['responses']} answers, {result['errors']} errors, "
          f"cost {cost}, {result['wall_s']:.1f} s")
    print(f"see the answers: spread show {run_id}")
    return 0


@click.command("cancel")
@click.argument("run_id", type=int)
def cancel_command(run_id):
    """Ask the worker running a run, in any process, to stop after the calls in flight."""
    runner.request_cancel(run_id)
    print(f"run {run_id}: cancel requested")


@click.command("runs")
@json_option
def runs_command(as_json):
    """List runs, newest first."""
    with store.connect() as db:
        runs = store.list_runs(db)
    if as_json:
        print_json(runs)
        return
    if not runs:
        print("no runs yet: spread run --prompt ... --model local/gemma-3-270m --temperature 1 --n 5")
    for run in runs:
        print(f"{run['id']:>5}  {run['status']:<11} {run['answers']:>5}/{run['planned']:<5} "
              f"{run['errors']:>3} err  {run['created_at'][:19]}  {run['name']}")


COMMANDS = [run_command, resume_command, cancel_command, runs_command]
