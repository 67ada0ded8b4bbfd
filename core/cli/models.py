"""Models: `spread models` (the embedded models and providers) and the endpoint catalogue:
`spread models add | list | test | remove | import | export`."""

from __future__ import annotations

import asyncio
import sys

import click

from core.cli.common import json_option, pass_store, print_json, read_text, reviewer
from core.config import SpreadError
from core.store import Store


@click.group("models", invoke_without_command=True)
@json_option
@click.pass_context
def models_group(ctx, as_json):
    """The embedded models (the default first), then providers and whether their key is
    set (never the key).
    Subcommands manage the shared catalogue of named endpoints."""
    if ctx.invoked_subcommand is not None:
        return
    from core.models import catalogue

    entries = [e.as_dict() for e in catalogue.catalogue()]
    if as_json:
        print_json(entries)
        return
    for entry in entries:
        print(f"{entry['id']:<55} {entry['description']}")


@models_group.command("add")
@click.argument("name")
@click.option("--model", "model_id", required=True, metavar="ID",
              help="the litellm model id, e.g. openai/<served-name> for vLLM or a LiteLLM proxy")
@click.option("--api-base", metavar="URL", help="the server, e.g. http://gpu-1:8000/v1")
@click.option("--key-env", metavar="VAR",
              help="the NAME of the environment variable (or secrets entry) holding the key; never the key")
@click.option("--param", "param_texts", multiple=True, metavar="KEY=VALUE",
              help="a parameter for every call (VALUE read as JSON when it is), e.g. top_k=40; repeatable")
@click.option("--price-in", type=float, metavar="USD_PER_M", help="price per million prompt tokens")
@click.option("--price-out", type=float, metavar="USD_PER_M", help="price per million completion tokens")
@click.option("--max-concurrency", type=int, metavar="C", help="calls in flight at most")
@click.option("--rpm", type=float, metavar="R", help="requests per minute at most")
@click.option("--timeout", type=float, metavar="S", help="seconds per call (default: the run's)")
@click.option("--replace", is_flag=True, help="overwrite an endpoint of that name")
@pass_store
def add_command(store: Store, name, model_id, api_base, key_env, param_texts, price_in, price_out, max_concurrency,
                rpm, timeout, replace):
    """Add a named endpoint to the shared catalogue (a run's --model NAME then uses it)."""
    from core.models import endpoints

    endpoint = endpoints.Endpoint(
        name=name, model=model_id, api_base=api_base, key_env=key_env,
        params=endpoints.parse_params(list(param_texts)), price_in=price_in, price_out=price_out,
        max_concurrency=max_concurrency, rpm=rpm, timeout_s=timeout)
    endpoint = endpoints.add(store, endpoint, who=reviewer(), replace=replace)
    print(f"endpoint {endpoint.name!r} {'saved' if replace else 'added'}: {_summary(endpoint)}")


@models_group.command("list")
@json_option
@pass_store
def list_command(store: Store, as_json):
    """The catalogue: each endpoint's settings and whether it is ready (key present, server reachable)."""
    from core.models import endpoints

    rows = []
    for endpoint in endpoints.list_endpoints(store):
        rows.append(endpoint.settings() | endpoints.readiness(endpoint, timeout_s=2.0))
    if as_json:
        print_json(rows)
        return
    if not rows:
        print("no endpoints yet: spread models add NAME --model ID [--api-base URL] [--key-env VAR] …")
    for row in rows:
        state = "ready" if row["ready"] else f"not ready: {row['problem']}"
        print(f"{row['name']:<30} {row['model']:<40} key {row['key']:<10} server {row['server']:<12} {state}")


@models_group.command("test")
@click.argument("name")
@json_option
@pass_store
def test_command(store: Store, name, as_json):
    """Make one short call to an endpoint (or a litellm id): the answer, latency, the model the
    server reports, tokens and cost, or the error in one line."""
    from core.models import endpoints

    result = asyncio.run(endpoints.try_call(endpoints.resolve(store, name)))
    if as_json:
        print_json(result)
        return 0 if result["ok"] else 1
    if not result["ok"]:
        print(f"spread: error: {result['error']}", file=sys.stderr)
        return 1
    cost = "unknown" if result["cost_usd"] is None else f"${result['cost_usd']:.6f}"
    answer = " ".join((result["answer"] or "").split())[:200]
    print(f"{name}: {answer!r}")
    print(f"latency {result['latency_ms']:.0f} ms · model reported {result['provider_model']} · tokens "
          f"{result['prompt_tokens']}/{result['completion_tokens']} · cost {cost}")
    return 0


@models_group.command("remove")
@click.argument("name")
@pass_store
def remove_command(store: Store, name):
    """Remove an endpoint from the catalogue (runs made with it keep its settings)."""
    from core.models import endpoints

    endpoints.remove(store, name)
    print(f"endpoint {name!r} removed")


@models_group.command("import")
@click.argument("file")
@click.option("--replace", is_flag=True, help="overwrite endpoints of the same names")
@click.option("--dry-run", is_flag=True, help="show what would be added, and add nothing")
@json_option
@pass_store
def import_command(store: Store, file, replace, dry_run, as_json):
    """Import the model_list of a LiteLLM proxy config.yaml, all entries or none: model groups,
    embedding entries, credentials as os.environ/NAME only (a written one is refused by name)."""
    from core.formats import litellm_config

    try:
        preview = litellm_config.preview(store, read_text(file), path=None if file == "-" else file, replace=replace)
    except SpreadError as refused:  # every problem of every entry (or why the file is not a config)
        if as_json:
            print_json({"added": [], "problems": getattr(refused, "problems", [str(refused)]),
                        "notes": getattr(refused, "notes", []), "dry_run": dry_run})
        raise
    if not dry_run:
        litellm_config.apply(store, preview, who=reviewer())
    if as_json:
        print_json({"added": [e.name for e in preview.endpoints] if not dry_run else [],
                    "endpoints": [e.settings() for e in preview.endpoints], "notes": preview.notes,
                    "skipped": preview.skipped, "dry_run": dry_run})
        return
    verb = "would add" if dry_run else "added"
    for endpoint in preview.endpoints:
        print(f"{verb} {endpoint.name!r}: {_summary(endpoint)}")
    for line in [f"skipped {s}" for s in preview.skipped] + [f"note: {n}" for n in preview.notes]:
        print(line, file=sys.stderr)


@models_group.command("export")
@click.option("--out", metavar="FILE", help="write here (default: stdout)")
@pass_store
def export_command(store: Store, out):
    """The catalogue as a LiteLLM proxy config.yaml model_list (keys as os.environ/NAME)."""
    from core.formats import litellm_config
    from core.models import endpoints

    text = litellm_config.export(endpoints.list_endpoints(store))
    if out:
        try:
            with open(out, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            raise SpreadError(f"cannot write {out}: {e.strerror or e}") from None
        print(f"catalogue written to {out}", file=sys.stderr)
    else:
        sys.stdout.write(text)


def _summary(endpoint) -> str:
    if endpoint.deployments:
        return (f"a model group of {len(endpoint.deployments)} deployments "
                f"({', '.join(d['name'] for d in endpoint.deployments)})"
                + (f" · routing {endpoint.router['routing_strategy']}" if endpoint.router.get("routing_strategy")
                   else "") + (" · embedding" if endpoint.mode == "embedding" else ""))
    parts = [endpoint.model] + (["embedding"] if endpoint.mode == "embedding" else [])
    if endpoint.api_base:
        parts.append(f"at {endpoint.api_base}")
    if endpoint.key_env:
        parts.append(f"key ${endpoint.key_env}")
    if endpoint.params:
        parts.append("params " + ", ".join(f"{k}={v}" for k, v in endpoint.params.items()))
    if endpoint.price_in is not None:
        parts.append(f"${endpoint.price_in:g}/${endpoint.price_out:g} per M tokens")
    if endpoint.max_concurrency:
        parts.append(f"≤{endpoint.max_concurrency} in flight")
    if endpoint.rpm:
        parts.append(f"{endpoint.rpm:g} rpm")
    if endpoint.tpm:
        parts.append(f"{endpoint.tpm:g} tpm")
    if endpoint.timeout_s:
        parts.append(f"timeout {endpoint.timeout_s:g} s")
    return " · ".join(parts)


COMMANDS = [models_group]
