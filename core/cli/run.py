"""Plan and run: `spread run`, `resume`, `cancel`, `runs`."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import click

from core.cli import evaluate
from core.cli.common import json_option, pass_store, print_json, read_text
from core.config import SpreadError
from core.prompts import conversation, inputs, shapes
from core.run import plan, settle
from core.store import Store, responses
from core.store import runs as run_rows


@click.command("run")
@click.option("--prompt", "prompts", multiple=True,
              help="the user message, {{name}} for a variable; repeat for several wordings (variants A, B, …)")
@click.option("--prompt-file", "prompt_files", multiple=True, metavar="PATH",
              help="read a variant's user message from a UTF-8 file (- for stdin); repeatable, after the --prompt ones")
@click.option("--messages-file", "messages_files", multiple=True, metavar="FILE",
              help="a conversation as a variant: a JSON or YAML list of {role, content} ({{name}} in any turn; "
                   '{"role": "history", "from": "COLUMN"} places an input\'s conversation); repeatable, after the '
                   "--prompt ones")
@click.option("--tools-file", metavar="FILE", help="tools the model may call: an OpenAI tools list, JSON or YAML "
              "(calls are stored and compared, never executed)")
@click.option("--tool-choice", metavar="auto|none|required|NAME", help="whether, or which, tool the model must call")
@click.option("--response-format", metavar="json|SCHEMA_FILE",
              help="ask for JSON, or for JSON valid against a JSON Schema file (OpenAI json_schema, through litellm)")
@click.option("--label", "labels", multiple=True, metavar="NAME",
              help="a short name for each variant, in order (default A, B, C…); a named variant is versioned under it")
@click.option("--system", default="", help="the system message (may use {{name}} too); opens a conversation "
              "that has none")
@click.option("--system-file", metavar="PATH", help="read the system message from a UTF-8 file")
@click.option("--vars-file", metavar="FILE", help="a table of inputs: .csv (a header row), .jsonl or .json")
@click.option("--var", "var_pairs", multiple=True, metavar="NAME=VALUE",
              help="a variable; repeat for several. Alone they form one input; with --vars-file, every input gets them")
@click.option("--inputs-from-golden", metavar="SET", help="use a golden set's items as the inputs")
@click.option("--inputs-from-run", type=int, metavar="RUN_ID", help="use an earlier run's inputs")
@click.option("--inputs-from-traces", is_flag=True,
              help="use distinct real inputs from stored production calls (spread import-traces / collect); "
                   "with --sample; without a prompt, each conversation is replayed as a history turn")
@click.option("--trace-filter", metavar="EXPR", help="which production calls to draw from: space-separated "
              "key=value among since, until, service, model, prompt (e.g. 'service=shop since=7d')")
@click.option("--sample", type=int, metavar="N", help="how many distinct production inputs to draw")
@click.option("--strategy", type=click.Choice(["random", "diverse"]), default="random", show_default=True,
              help="random, or diverse: farthest-point over the inputs' embeddings, near-duplicates dropped")
@click.option("--model", "models", multiple=True, required=True, metavar="NAME|ID",
              help="an endpoint's name (spread models list), else a litellm model id; repeat for several "
                   "(embedded: local/smollm2-135m-instruct, local/gemma-3-270m)")
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
@click.option("--api-base", metavar="URL",
              help="OpenAI-compatible server for the models given as litellm ids (endpoints have their own)")
@click.option("--timeout", type=float, default=120.0, metavar="S", show_default=True, help="seconds per call")
@click.option("--max-attempts", type=int, default=4, show_default=True, help="attempts per sample for transient errors")
@click.option("--max-calls", type=int, default=plan.DEFAULT_MAX_CALLS, metavar="N", show_default=True,
              help="refuse a plan of more calls than this (raise it knowingly)")
@click.option("--no-stream", is_flag=True, help="ask for whole answers (no time to first token)")
@click.option("--name", help="a name for the run and its prompt (versions are kept per name)")
@click.option("--extract", default="whole", show_default=True, metavar="MODE",
              help="the part of each answer its meaning is judged by: whole, first-sentence, final-answer, "
                   "json:FIELD, regex:PATTERN")
@click.option("--embeddings", metavar="NAME",
              help="the catalogue embedding endpoint that clusters this run's answers by default (else MiniLM)")
@click.option("--until-settled", is_flag=True,
              help="sample each cell in rounds and stop it once its consistency interval (anytime-valid) is "
                   "narrower than --precision; a cell split between meanings goes on to --max-n (docs/cost.md)")
@click.option("--max-n", type=int, metavar="N", help="with --until-settled: the most samples a cell takes "
              "(default: --n)")
@click.option("--precision", type=float, metavar="W", help="with --until-settled: the width of the 95% interval "
              f"of a cell's consistency that settles it, in (0, 1) (default {settle.DEFAULT_PRECISION})")
@click.option("--cache", "use_cache", is_flag=True,
              help="reuse stored answers of the very same request (endpoint, messages, tools, response format, "
                   "parameters, seed) and sample index: an identical plan costs nothing again, a larger N samples "
                   "only the new indices, repeats never become copies (docs/cost.md)")
@click.option("--batch", "use_batch", is_flag=True,
              help="send each round through the provider's batch API (OpenAI-compatible /v1/files + /v1/batches, "
                   "Anthropic's Message Batches, the Gemini API's batch mode, Together's Batch API) "
                   "at its batch price: cheaper, slower (minutes to hours); resume polls the same batch")
@click.option("--dry-run", is_flag=True, help="print the estimate (calls, tokens, cost range) and write nothing")
@evaluate.check_option
@evaluate.checks_file_option
@evaluate.judge_option
@evaluate.judge_samples_option
@json_option
@pass_store
def run_command(store: Store, prompts, prompt_files, messages_files, tools_file, tool_choice, response_format,
                labels, system, system_file, vars_file, var_pairs, inputs_from_golden, inputs_from_run,
                inputs_from_traces, trace_filter, sample, strategy, models, temperatures, n, max_tokens, seed,
                top_p, concurrency, per_model, api_base, timeout, max_attempts, max_calls, no_stream, name,
                extract, embeddings, until_settled, max_n, precision, use_cache, use_batch, dry_run, check_texts,
                checks_file, judge_model, judge_samples, as_json):
    """Sample prompt variants × inputs × models × temperatures × N, storing each answer as it
    arrives, and wait."""
    texts = list(prompts) + [read_text(path) for path in prompt_files]
    conversations = [conversation.read_file(path) for path in messages_files]
    traced = _traced_inputs(store, inputs_from_traces, trace_filter, sample, strategy)
    if traced is not None and not texts and not conversations:
        from core.formats.traces import production

        conversations = [production.replay(traced)]  # each production conversation, as it was
    if not texts and not conversations:
        raise click.UsageError("give --prompt, --prompt-file or --messages-file (repeat any for several variants)")
    if system_file and system:
        raise click.UsageError("give --system or --system-file, not both")
    if len(labels) > len(texts) + len(conversations):
        raise click.UsageError(f"{len(labels)} labels for {len(texts) + len(conversations)} prompt variants")
    system = read_text(system_file) if system_file else system
    if not until_settled and (max_n is not None or precision is not None):
        raise click.UsageError("--max-n and --precision go with --until-settled")
    if until_settled:
        n = max_n if max_n is not None else n
        precision = settle.DEFAULT_PRECISION if precision is None else precision
        settle.check_options(precision, n)
    if not 1 <= max_attempts <= 20:
        raise SpreadError("max attempts must be in 1..20")
    names = list(labels) + [""] * (len(texts) + len(conversations) - len(labels))
    shape = _prompt_shape(tools_file, tool_choice, response_format)
    rows = _inputs(store, vars_file, var_pairs, inputs_from_golden, inputs_from_run, traced)
    checks = evaluate.read_checks(check_texts, checks_file, rows, judge_model, judge_samples)
    spec = plan.RunSpec(
        variants=[plan.Variant(text, system, label, **shape) for text, label in zip(texts, names)]
        + [plan.Variant("", system, label, messages, **shape)
           for messages, label in zip(conversations, names[len(texts):])],
        inputs=rows, checks=[c.as_dict() for c in checks],
        models=list(models), temperatures=list(temperatures), n=n, max_tokens=max_tokens, seed=seed, top_p=top_p,
        concurrency=concurrency, per_model_concurrency=per_model, api_base=api_base, timeout_s=timeout,
        max_attempts=max_attempts, stream=not no_stream, name=name or "", max_calls=max_calls, extract=extract,
        embeddings=embeddings or "", until_settled=until_settled, cache=use_cache, batch=use_batch,
        **({"precision": precision} if until_settled else {}),
    )
    if until_settled and not dry_run:
        from core.analyse import settled

        settled.check_meaning_model(store, embeddings or "")  # the rule judges meaning after every round
    if dry_run:
        return _print_estimate(store, spec, as_json)
    run_id = plan.create(store, spec, created_by=os.environ.get("USER", ""))
    if not as_json:
        print(f"run {run_id}: {spec.planned()} samples", file=sys.stderr)
    return execute(store, run_id, as_json, retry_errors=False)


def _prompt_shape(tools_file, tool_choice, response_format) -> dict:
    """Tools, tool choice and response format, the same for every variant of the run."""
    tools = shapes.read_tools(tools_file) if tools_file else None
    return {"tools": tools, "tool_choice": shapes.checked_tool_choice(tool_choice, tools),
            "response_format": shapes.read_response_format(response_format) if response_format else None}


def _traced_inputs(store: Store, inputs_from_traces, trace_filter, sample, strategy) -> list[dict] | None:
    """--inputs-from-traces: N distinct production inputs (core.formats.traces.production)."""
    if not inputs_from_traces:
        if trace_filter or sample is not None:
            raise click.UsageError("--trace-filter and --sample go with --inputs-from-traces")
        return None
    if sample is None:
        raise click.UsageError("--inputs-from-traces needs --sample N")
    from core.formats.traces import production

    return production.sample_inputs(store, sample, strategy=strategy,
                                    where=production.parse_filter(trace_filter or ""))


def _inputs(store: Store, vars_file, var_pairs, golden_set, run_id, traced=None) -> list[dict[str, str]]:
    """The run's inputs from the options: one source of rows, plus --var values for every row."""
    sources = [s for s in (vars_file, golden_set, run_id, traced) if s is not None]
    if len(sources) > 1:
        raise click.UsageError("give one of --vars-file, --inputs-from-golden, --inputs-from-run, "
                               "--inputs-from-traces")
    constants = inputs.from_pairs(list(var_pairs))
    if vars_file:
        rows = inputs.read_file(vars_file)
    elif golden_set:
        from core.review import golden

        rows = golden.as_inputs(store, golden_set)
    elif run_id is not None:
        rows = inputs.from_run(store, run_id)
    elif traced is not None:
        rows = traced
    else:
        return [constants] if constants else []
    return [row | constants for row in rows]  # the command line wins over the file


def _print_estimate(store: Store, spec: plan.RunSpec, as_json: bool) -> int:
    from core.run import estimate

    result = estimate.estimate(store, spec)
    if as_json:
        print_json(result)
        return 0
    print(f"{result['calls']:,} calls = {result['variants']} variants × {result['inputs']} inputs × "
          f"{result['models']} models × {result['temperatures']} temperatures × N={result['n']}")
    ceiling = "no ceiling" if result["completion_tokens_max"] is None else f"at most {result['completion_tokens_max']:,}"
    print(f"prompt tokens {result['prompt_tokens']:,} (counted) · completion tokens {ceiling}")
    for row in result["per_model"]:
        cost = ("unknown price" if not row["price_known"] else
                f"${row['cost_usd_low']:.4f} – " + ("?" if row["cost_usd_high"] is None else f"${row['cost_usd_high']:.4f}"))
        print(f"  {row['model']:<40} {row['calls']:>8,} calls  {row['prompt_tokens']:>10,} prompt tokens  {cost}")
    if result["cost_usd_low"] is not None:
        high = "?" if result["cost_usd_high"] is None else f"${result['cost_usd_high']:.4f}"
        print(f"cost ${result['cost_usd_low']:.4f} – {high}" + ("" if result["cost_complete"] else " (known prices only)"))
    if "batch" in result:
        found = result["batch"]
        high = "?" if found["cost_usd_high"] is None else f"${found['cost_usd_high']:.4f}"
        print(f"through the provider's batch API (--batch): ${found['cost_usd_low']:.4f} – {high} ({found['note']})")
    if "until_settled" in result:
        found = result["until_settled"]
        print(f"until settled (precision {found['precision']:g}): {found['calls_fewest']:,} calls if every cell "
              f"settles at its fewest ({found['samples_per_cell_fewest']} samples) – {found['calls_most']:,} if none "
              f"settles before N={found['samples_per_cell_most']}")
    for note in result["notes"]:
        print(f"note: {note}")
    print("dry run: nothing was written")
    return 0


@click.command("resume")
@click.argument("run_id", type=int)
@click.option("--retry-errors", is_flag=True, help="also sample again the cells that ended in an error")
@json_option
@pass_store
def resume_command(store: Store, run_id, retry_errors, as_json):
    """Fill only the cells an interrupted run is missing."""
    with store.connection() as db:
        if run_rows.get_run(db, run_id) is None:
            raise SpreadError(f"no run with id {run_id}")
    code = execute(store, run_id, as_json, retry_errors=retry_errors)
    if code == 0:  # a regression's run, completed: its verdict is recorded, as a worker would
        from core.evaluate import regress

        judged = asyncio.run(regress.judge(store, run_id))
        if judged is not None:
            print(f"regress {judged['regress_id']} recorded: verdict {judged['gate'] or '— (no gate)'}, pass rate "
                  f"{judged['pass_rate']:.0%} (the Regression page shows it)", file=sys.stderr)
    return code


def execute(store: Store, run_id: int, as_json: bool, *, retry_errors: bool, with_pass_rate: bool = False,
            extra: dict | None = None) -> int:
    """Run the engine with a progress bar (rate and ETA) on stderr; print the summary."""
    from tqdm import tqdm

    from core.execution import launch  # here, not at the top: `spread --help` and `spread runs` never need it

    bar = None
    errors_shown = 0

    def on_answer(progress, row: dict) -> None:
        nonlocal bar, errors_shown
        if bar is None:
            bar = tqdm(total=progress.planned, initial=progress.received - 1, unit="answer",
                       file=sys.stderr, dynamic_ncols=True)
            bar.set_postfix(errors=0, refresh=False)
        bar.update(1)
        if progress.errors != errors_shown:  # (formatting it per answer cost the fan-out)
            errors_shown = progress.errors
            bar.set_postfix(errors=errors_shown, refresh=False)

    pool = launch.prepare_own_process(store, run_id, retry_errors=retry_errors)
    # SIGTERM stops the run gracefully: no new call, the calls in flight end (or are dropped
    # after leases.STOP_WAIT_S), and on PostgreSQL the run is queued for any worker.
    stop = threading.Event()
    try:
        result = launch.run_own_process(launch.execute(store, run_id, retry_errors=retry_errors, pool=pool, stop=stop,
                                                       on_answer=None if as_json else on_answer), stop=stop)
    finally:
        if pool is not None:
            pool.join()  # already closed by the engine, unless it failed before it began
        if bar is not None:
            bar.close()
    if stop.is_set() and result["status"] != "done":
        where = "queued for a worker" if result["status"] == "queued" else "interrupted"
        print(f"run {run_id} stopped: {result['responses']} answers kept; the run is {where} "
              f"(spread resume {run_id} fills the rest)", file=sys.stderr)
        return 130
    result.update(_pass_rate(store, run_id))
    result.update(_calls(store, run_id))
    if with_pass_rate:
        result.setdefault("pass_rate", None)
    if as_json:
        print_json(result | (extra or {}))
        return 0
    cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.6f}"
    print(f"run {run_id} {result['status']}: {result['responses']} answers, {result['errors']} errors, "
          f"cost {cost}, {result['wall_s']:.1f} s")
    if result.get("pass_rate") is not None:
        interval = (f"({result['pass_rate_interval']})" if result.get("pass_rate_low") is None
                    else f"[{result['pass_rate_low']:.0%}–{result['pass_rate_high']:.0%}]")
        print(f"checks: pass rate {result['pass_rate']:.0%} {interval} (spread checks {run_id} for the details)")
    if result.get("cached") or result["calls_saved"]:
        print(f"{result['calls']} calls made of at most {result['planned_max']}"
              + (f"; {result['cached']} answers reused from the cache (no new cost)" if result.get("cached") else ""))
        for row in result["per_model"]:
            cost = "unknown" if row["cost_usd_new"] is None else f"${row['cost_usd_new']:.6f}"
            print(f"  {row['model']}: {row['calls']} calls, {row['calls_saved']} saved, new cost {cost}")
    print(f"see the answers: spread show {run_id}")
    return 0


def _calls(store: Store, run_id: int) -> dict:
    """Samples taken against the most the plan allows; for a run sampled until settled, its cells' outcomes."""
    from core.store import answer_cache, batches, settling

    with store.connection() as db:
        run = run_rows.get_run(db, run_id)
        taken = settling.samples_taken(db, run_id)
        decided = settling.load(db, run_id)
        reused = answer_cache.new_cost(db, run_id)
        made = batches.count(db, run_id)
        per_model = answer_cache.by_model(db, run_id)
    calls = sum(taken.values()) - reused["cached"]
    planned_each = run["planned"] // max(len(run["spec"]["models"]), 1)
    out = {"calls": calls, "planned_max": run["planned"], "calls_saved": run["planned"] - calls, **reused,
           "batches": made,
           "per_model": [{"model": model, **row, "calls_saved": planned_each - row["calls"]}
                         for model, row in per_model.items()]}
    if run["spec"].get("until_settled"):
        out["cells"] = len(decided)
        out["settled"] = sum(d["settled"] for d in decided.values())
        out["stopped_by"] = {reason: sum(d["stopped_by"] == reason for d in decided.values())
                             for reason in ("precision", "max_n")}
    return out


def _pass_rate(store: Store, run_id: int) -> dict:
    """The run's checks, scored now: the overall pass rate for the summary (none without checks)."""
    from core.evaluate import scoring

    results = scoring.score_run_sync(store, run_id)  # the run's checks and its inputs' own (an imported suite's tests)
    if not results:
        return {}
    from core.analyse import spread  # only now: scipy's import alone takes a second
    from core.evaluate import rates

    with store.connection() as db:
        answers = [r for r in responses.of_run(db, run_id) if r["error_type"] is None]
        adaptive = bool(run_rows.get_run(db, run_id)["spec"].get("until_settled"))
    scored = rates.frame(spread.frame(answers), scoring.verdicts(store, run_id, results))
    (overall,) = rates.by_group(scored, [], adaptive=adaptive) or [{}]
    return ({key: overall.get(key) for key in ("pass_rate", "pass_rate_low", "pass_rate_high")}
            | ({"pass_rate_interval": overall["interval"]} if "interval" in overall else {}))


@click.command("import-promptfoo")
@click.argument("file", metavar="FILE")
@click.option("--n", type=int, help="samples per prompt × test × provider (default: evaluateOptions.repeat, else "
                                   f"5; at most {plan.MAX_N})")
@click.option("--judge-model", "judge_model", metavar="NAME",
              help="the judge of every model-graded assertion (llm-rubric; g-eval, factuality and "
                   "model-graded-closedqa read as llm-rubric): a catalogue name or litellm id, in place of the "
                   "suite's graders; without it an assertion with no grader named is left out")
@click.option("--strict", is_flag=True, help="refuse the whole suite if any part has no Spread equivalent (by "
                                             "default such parts are left out and listed)")
@click.option("--dry-run", is_flag=True, help="map the suite and print the plan and its estimate; write nothing")
@json_option
@pass_store
def import_promptfoo_command(store: Store, file, n, judge_model, strict, dry_run, as_json):
    """Run a promptfoo suite (promptfooconfig.yaml): prompts become variants, providers catalogue
    endpoints, tests inputs with their asserts as checks; then sample it N times and score it.
    Parts with no Spread equivalent are left out and each listed (--strict: refuse instead)."""
    from core.formats import promptfoo_config

    try:
        suite = promptfoo_config.read(store, file, n=n, strict=strict, judge_model=judge_model)
    except promptfoo_config.Unmappable as e:
        if as_json:
            print_json({"error": "unmappable", "unmappable": e.problems, "written": False})
        else:
            print(f"spread: error: {len(e.problems)} part(s) of {file} cannot be mapped; nothing was written:",
                  file=sys.stderr)
            for problem in e.problems:
                print(f"  - {problem}", file=sys.stderr)
        return 2
    summary = suite.summary()
    if not as_json:
        if summary["skipped"]:
            print(f"left out of {file} ({len(summary['skipped'])}; --strict refuses instead):")
            for item in summary["skipped"]:
                print(f"  - {item}")
        for note in summary["notes"]:
            print(f"note: {note}")
    if dry_run:
        if as_json:
            from core.run import estimate

            print_json(summary | {"estimate": estimate.estimate(store, suite.spec), "dry_run": True})
            return 0
        print(f"{len(summary['variants'])} prompts × {summary['inputs']} tests × {len(summary['endpoints'])} "
              f"providers × {len(summary['temperatures'])} temperatures × N={summary['n']}: {summary['planned']:,} "
              f"calls; {summary['checks']} checks")
        print(f"endpoints: {', '.join(summary['endpoints'])}")
        print("dry run: nothing was written")
        return 0
    run_id = promptfoo_config.write(store, suite, who=os.environ.get("USER", ""))
    if not as_json:
        print(f"run {run_id}: {summary['planned']} samples", file=sys.stderr)
    return execute(store, run_id, as_json, retry_errors=False, with_pass_rate=True,
                   extra={"skipped": summary["skipped"], "notes": summary["notes"]} if as_json else None)


@click.command("cancel")
@click.argument("run_id", type=int)
@pass_store
def cancel_command(store: Store, run_id):
    """Ask the worker running a run, in any process, to stop after the calls in flight."""
    from core.execution import launch

    launch.request_cancel(store, run_id)
    print(f"run {run_id}: cancel requested")


@click.command("runs")
@json_option
@pass_store
def runs_command(store: Store, as_json):
    """List runs, newest first."""
    from core.store import batches

    with store.connection() as db:
        runs = run_rows.list_runs(db)
        waiting = batches.waiting(db)
    for run in runs:
        if run["id"] in waiting:
            run["waiting"] = waiting[run["id"]]
    if as_json:
        print_json(runs)
        return
    if not runs:
        print("no runs yet: spread run --prompt ... --model local/smollm2-135m-instruct --temperature 1 --n 5")
    for run in runs:
        print(f"{run['id']:>5}  {run['status']:<11} {run['answers']:>5}/{run['planned']:<5} "
              f"{run['errors']:>3} err  {run['created_at'][:19]}  {run['name']}"
              + (f"  ({run['waiting']})" if run.get("waiting") else ""))


@click.command("reword")
@click.option("--prompt", required=True, help="the prompt to reword ({{name}} placeholders are kept)")
@click.option("--model", required=True, metavar="ID", help="the model that rewrites (a capable one: the embedded "
              "base model rewrites poorly)")
@click.option("--k", type=int, default=3, show_default=True, help="how many rewordings")
@click.option("--api-base", metavar="URL", help="OpenAI-compatible server for the model")
@click.option("--seed", type=int, help="base seed for the model's samples")
@json_option
@pass_store
def reword_command(store: Store, prompt, model, k, api_base, seed, as_json):
    """Ask a model for K rewordings of a prompt, to run as variants (--prompt, once each)."""
    from core.run import rewording

    result = asyncio.run(rewording.reword(store, prompt, k, model, api_base=api_base, seed=seed))
    if as_json:
        print_json(result)
        return
    for text in result["rewordings"]:
        print(text)
    for rejected in result["rejected"]:
        print(f"set aside ({rejected['reason']}): {rejected['text']}", file=sys.stderr)
    cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.6f}"
    print(f"{result['calls']} calls, cost {cost}", file=sys.stderr)


COMMANDS = [run_command, resume_command, cancel_command, runs_command, reword_command, import_promptfoo_command]
