"""Run time: `spread serve` (an OpenAI-compatible endpoint) and `spread calibrate`."""

from __future__ import annotations

import click

from core.store import Store
from core.cli import evaluate
from core.cli.common import json_option, pass_store, print_json
from core.config import SpreadError


def _checks(check_texts, checks_file) -> tuple:
    """The route checks: deterministic and tool checks only (a judge or a reference has no place
    on the request's path)."""
    from core.evaluate import checks as checks_module

    given = [checks_module.parse(text) for text in check_texts]
    given += checks_module.read_file(checks_file) if checks_file else []
    for check in given:
        _servable(check, checks_module)
    return tuple(checks_module.validate(given)) if given else ()


def _servable(check, checks_module):
    from core.evaluate import tool_checks

    if check.base not in checks_module.DETERMINISTIC and check.type not in tool_checks.TYPES:
        raise SpreadError(f"check {check.type!r} cannot filter served answers: it needs a judge model or a reference "
                          "answer; use the deterministic and tool-call checks (is-json, contains, max-length, "
                          "is-valid-openai-tools-call, …)", "checks")
    return check


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to listen on")
@click.option("--port", type=int, default=8700, show_default=True, help="the port (0: any free port, printed)")
@click.option("--route", "route_texts", multiple=True, metavar="NAME=MODEL[,MODEL…]",
              help="a route callers name in `model`: its answers are sampled from these models in turn (endpoint "
                   "names or litellm ids); repeatable")
@click.option("--config", "config_file", metavar="FILE",
              help="routes from a YAML/JSON file (routes: NAME: {models, k, min_confidence, on_low, checks}); the "
                   "options here are their defaults")
@click.option("--k", type=int, default=5, show_default=True, help="answers asked per request")
@click.option("--max-k", type=int, default=20, show_default=True,
              help="the largest k a request may ask for (its `k`, or `spread: {k}`)")
@click.option("--no-adaptive", is_flag=True,
              help="always ask k answers (default: ask --first-round first, and stop there when they all agree)")
@click.option("--first-round", type=int, default=3, show_default=True, metavar="R",
              help="adaptive k: the answers asked first")
@click.option("--min-confidence", metavar="C|calibrated:P",
              help="the largest meaning's share of k needed to answer (0..1), or calibrated:P, the lowest share at "
                   "which reviewers' labels show precision ≥ P (see spread calibrate); default: always answer")
@click.option("--on-low", default="abstain", show_default=True, metavar="abstain|fallback:ROUTE|best",
              help="below the threshold: abstain, ask another route, or answer anyway, flagged")
@click.option("--abstain-status", type=int, default=200, show_default=True, metavar="CODE",
              help="HTTP status of an abstention: 200 sends an ordinary completion saying so; e.g. 422 or 503 sends "
                   "an OpenAI-shaped error")
@click.option("--abstain-message", default=None, metavar="TEXT", help="what an abstention says")
@click.option("--token-env", metavar="VAR",
              help="require `Authorization: Bearer TOKEN`, the token read from this environment variable")
@click.option("--api-base", metavar="URL",
              help="OpenAI-compatible server for the routes' bare litellm ids (endpoints have their own)")
@click.option("--temperature", type=float, default=None, metavar="T",
              help="temperature when a request sets none (default 1, OpenAI's)")
@click.option("--max-tokens", type=int, default=None, metavar="N", help="answer length limit when a request sets none")
@click.option("--method", default=None, metavar="minilm|tfidf|exact|endpoint:NAME",
              help="how meaning is compared (default: MiniLM embeddings with Spread's fact rules)")
@click.option("--timeout", type=float, default=60.0, show_default=True, metavar="S", help="seconds per upstream call")
@click.option("--max-attempts", type=int, default=2, show_default=True,
              help="attempts per answer for transient upstream errors")
@click.option("--concurrency", type=int, default=256, show_default=True, metavar="C",
              help="upstream calls in flight at once, across requests")
@click.option("--quiet", is_flag=True, help="no line per request on stderr (start and stop are still said)")
@click.option("--workers", type=int, default=1, show_default=True, metavar="W",
              help="processes answering on the one port: one Python process answers about a hundred k = 5 "
                   "requests a second on one core; this one supervises the others and starts another for one "
                   "that dies")
@evaluate.check_option
@evaluate.checks_file_option
@pass_store
def serve_command(store: Store, host, port, route_texts, config_file, k, max_k, no_adaptive, first_round,
                  min_confidence, on_low, abstain_status, abstain_message, token_env, api_base, temperature,
                  max_tokens, method, timeout, max_attempts, concurrency, quiet, workers, check_texts, checks_file):
    """Serve an OpenAI-compatible endpoint that asks each route k times, answers with the
    meaning most answers share and its confidence (a `spread` object and an
    X-Spread-Confidence header), abstains or falls back below the threshold, and stores
    every request as a run to review."""
    from core.serve import calibration, http, routes
    from core.serve.service import Service

    if not route_texts and not config_file:
        raise click.UsageError("give --route NAME=MODEL[,MODEL…] (repeatable) or --config FILE")
    if not 1 <= max_attempts <= 10:
        raise SpreadError("--max-attempts must be in 1..10")
    if not 1 <= concurrency <= 1024:
        raise SpreadError("--concurrency must be in 1..1024")
    if not 1 <= workers <= 64:
        raise SpreadError(f"--workers must be in 1..64 (got {workers})")
    if timeout <= 0:
        raise SpreadError("--timeout must be above 0")
    if temperature is not None and not 0 <= temperature <= 2:
        raise SpreadError(f"--temperature must be in 0..2 (got {temperature:g})")
    if method:
        from core.analyse import embed

        if method not in embed.METHODS and not method.startswith(embed.ENDPOINT):
            raise SpreadError(f"--method must be one of {', '.join(embed.METHODS)} or endpoint:NAME (got {method!r})")
    threshold = routes.Threshold.parse(min_confidence)
    low = routes.OnLow.parse(on_low)
    checks = _checks(check_texts, checks_file)
    found = routes.routes_from_options(route_texts, k=k, threshold=threshold, on_low=low, checks=checks,
                                       temperature=temperature, max_tokens=max_tokens)
    if config_file:
        defaults = routes.Route("", ("",), k, threshold, low, checks, 1.0 if temperature is None else temperature,
                                max_tokens)
        from core.evaluate import checks as checks_module

        def read(items):
            if not isinstance(items, list):
                raise SpreadError("checks must be a list of {type, value}")
            return checks_module.validate([_servable(checks_module.from_dict(item), checks_module) for item in items])

        for name, route in routes.routes_from_file(config_file, defaults, read).items():
            if name in found:
                raise SpreadError(f"route {name!r} is given both by --route and in {config_file}")
            found[name] = route
    settings = routes.Settings(
        found, host=host, port=port, token_env=token_env, adaptive=not no_adaptive, first_round=first_round,
        max_k=max_k, abstain_status=abstain_status, abstain_message=abstain_message or routes.ABSTAIN_MESSAGE,
        method=method, api_base=api_base, timeout_s=timeout, max_attempts=max_attempts, concurrency=concurrency,
    ).check()
    token = http.token_from(token_env)
    settings.routes = calibration.resolve_thresholds(store, settings.routes)
    service = Service(store, settings)
    service.prepare()
    http.run(service, host=host, port=port, token=token, quiet=quiet,
             workers=http.Workers(workers, store.absolute) if workers > 1 else None)


@click.command("calibrate")
@click.option("--run", "run_id", type=int, help="a run: each input's largest meaning, against reviewers' labels")
@click.option("--route", help="a route of spread serve: every served request's confidence, against the labels of "
                               "the answer it chose")
@click.option("--golden", "golden_set", metavar="SET",
              help="a golden set: the runs made on its items (regressions), their largest meanings against labels")
@click.option("--precision", type=float, default=0.95, show_default=True, metavar="P",
              help="the precision whose 95% lower bound the suggested threshold reaches")
@click.option("--bins", type=int, default=5, show_default=True, help="confidence bins of the reliability table")
@click.option("--method", default=None, metavar="minilm|tfidf|exact",
              help="how meaning is compared for --run and --golden (default: MiniLM)")
@json_option
@pass_store
def calibrate_command(store: Store, run_id, route, golden_set, precision, bins, method, as_json):
    """How well consistency (the largest meaning's share) predicts that the answer is right:
    a reliability table by confidence bin with Wilson intervals, AUROC with its interval,
    and the lowest threshold whose precision's 95% lower bound reaches P."""
    from core.serve import calibration

    given = [x for x in (run_id, route, golden_set) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give one of --run RUN_ID, --route NAME or --golden SET")
    if not 0 < precision < 1:
        raise SpreadError(f"--precision must be in (0, 1) (got {precision:g})")
    if not 1 <= bins <= 20:
        raise SpreadError("--bins must be in 1..20")
    if run_id is not None:
        points = calibration.points_for_run(store, run_id, method=method)
    elif route is not None:
        points = calibration.points_for_route(store, route)
    else:
        points = calibration.points_for_golden(store, golden_set, method=method)
    report = calibration.report(points, precision=precision, bins=bins)
    report["source"] = {"run": run_id, "route": route, "golden": golden_set}
    if as_json:
        print_json(report)
        return
    click.echo(calibration.as_text(report))


COMMANDS = [serve_command, calibrate_command]
