"""The endpoint catalogue in and out as a LiteLLM proxy `config.yaml`, the format many
teams already keep their endpoints in:

    model_list:
      - model_name: team-llama                     # the endpoint's name
        litellm_params:
          model: openai/meta-llama/Llama-3.1-8B-Instruct
          api_base: http://gpu-1:8000/v1
          api_key: os.environ/TEAM_VLLM_KEY        # a variable's name, never a key
          rpm: 60
          timeout: 300
          max_parallel_requests: 8
          input_cost_per_token: 0.0000002          # Spread keeps USD per million tokens
          output_cost_per_token: 0.0000006
          top_k: 40                                # anything else: a parameter of every call

Import is all or nothing: `preview()` reads every entry and reports each bad one by its
position and name; `apply()` adds the lot in one transaction. A key written into the
file is refused and never repeated in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.config import SpreadError
from core.run import endpoints
from core.run.endpoints import REFERENCE, RUN_PARAMS, Endpoint

# litellm_params Spread reads into an endpoint's own settings, not its parameters.
SETTINGS = {"model", "api_base", "base_url", "api_key", "rpm", "tpm", "timeout", "stream_timeout",
            "max_parallel_requests", "input_cost_per_token", "output_cost_per_token"}
MAX_ERRORS_SHOWN = 5


@dataclass
class Preview:
    endpoints: list[Endpoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out, and why
    replace: bool = False


def preview(text: str, *, replace: bool = False, db_path=None) -> Preview:
    """What importing this config would add, or a SpreadError listing every bad entry."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise SpreadError(f"the file is not valid YAML{line}") from None
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
        raise SpreadError("no model_list in the file: expected a LiteLLM proxy config.yaml")
    if not data["model_list"]:
        raise SpreadError("the model_list is empty")
    result, errors, seen = Preview(replace=replace), [], set()
    existing = set(endpoints.names(db_path=db_path))
    ignored_sections = sorted(k for k in data if k != "model_list")
    if ignored_sections:
        result.notes.append(f"ignored: {', '.join(ignored_sections)} (only the model_list makes endpoints)")
    for position, entry in enumerate(data["model_list"], start=1):
        where = f"entry {position}"
        if isinstance(entry, dict) and isinstance(entry.get("model_name"), str):
            where += f" ({entry['model_name']!r})"
        try:
            endpoint, notes = _endpoint(entry)
            endpoint = endpoints.validate(endpoint)
        except SpreadError as e:
            errors.append(f"{where}: {e}")
            continue
        if endpoint.name in seen:
            errors.append(f"{where}: a second entry named {endpoint.name!r} (LiteLLM load-balances those; "
                          "Spread keeps one endpoint per name)")
            continue
        if endpoint.name in existing and not replace:
            errors.append(f"{where}: an endpoint named {endpoint.name!r} already exists (import with replace, "
                          "or remove it first)")
            continue
        seen.add(endpoint.name)
        result.endpoints.append(endpoint)
        result.notes += [f"{endpoint.name}: {note}" for note in notes]
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f"; and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise SpreadError(f"{len(errors)} bad entr{'y' if len(errors) == 1 else 'ies'}, nothing imported: "
                          f"{shown}{more}")
    return result


def _endpoint(entry) -> tuple[Endpoint, list[str]]:
    if not isinstance(entry, dict):
        raise SpreadError("not a mapping with model_name and litellm_params")
    name = entry.get("model_name")
    if not isinstance(name, str) or not name.strip():
        raise SpreadError("no model_name")
    if "*" in name:
        raise SpreadError("wildcard model names are not endpoints: list each model")
    params = entry.get("litellm_params")
    if not isinstance(params, dict) or not isinstance(params.get("model"), str):
        raise SpreadError("no litellm_params.model")
    info = entry.get("model_info") if isinstance(entry.get("model_info"), dict) else {}
    notes = []
    key = params.get("api_key")
    key_env = None
    if key is not None:
        if not isinstance(key, str) or not key.startswith(REFERENCE):
            # Never repeat it: it may be a real key.
            raise SpreadError(f"api_key is written in the file: give it as {REFERENCE}NAME (the key was not "
                              "imported)")
        key_env = key[len(REFERENCE):]
    price_in = _per_million(params.get("input_cost_per_token", info.get("input_cost_per_token")))
    price_out = _per_million(params.get("output_cost_per_token", info.get("output_cost_per_token")))
    for setting in ("tpm", "stream_timeout"):
        if setting in params:
            notes.append(f"{setting} ignored (Spread limits requests per minute and seconds per call)")
    extra = {}
    for key_name, value in params.items():
        if key_name in SETTINGS:
            continue
        if key_name in RUN_PARAMS:
            notes.append(f"{key_name} ignored (a run sets it)")
            continue
        extra[key_name] = value
    return Endpoint(
        name=name, model=params["model"], api_base=params.get("api_base") or params.get("base_url"),
        key_env=key_env, params=extra, price_in=price_in, price_out=price_out,
        max_concurrency=params.get("max_parallel_requests"), rpm=params.get("rpm", entry.get("rpm")),
        timeout_s=params.get("timeout"), source="catalogue",
    ), notes


def _per_million(value):
    if value is None:
        return None
    try:
        return round(float(value) * 1e6, 9)
    except (TypeError, ValueError):
        raise SpreadError(f"a cost per token must be a number (got {value!r})") from None


def apply(result: Preview, *, who: str = "", db_path=None) -> list[str]:
    """Add every endpoint of a preview in one transaction; returns their names."""
    endpoints.add_all(result.endpoints, who=who, replace=result.replace, db_path=db_path)
    return [e.name for e in result.endpoints]


def export(catalogue: list[Endpoint]) -> str:
    """The catalogue as a LiteLLM proxy config.yaml (keys as os.environ/NAME, never values)."""
    import yaml

    entries = []
    for endpoint in catalogue:
        params: dict = {"model": endpoint.model}
        if endpoint.api_base:
            params["api_base"] = endpoint.api_base
        if endpoint.key_env:
            params["api_key"] = REFERENCE + endpoint.key_env
        if endpoint.rpm:
            params["rpm"] = int(endpoint.rpm) if float(endpoint.rpm).is_integer() else endpoint.rpm
        if endpoint.timeout_s:
            params["timeout"] = endpoint.timeout_s
        if endpoint.max_concurrency:
            params["max_parallel_requests"] = endpoint.max_concurrency
        if endpoint.price_in is not None:
            params["input_cost_per_token"] = float(f"{endpoint.price_in / 1e6:.12g}")
            params["output_cost_per_token"] = float(f"{endpoint.price_out / 1e6:.12g}")
        params.update(endpoint.params)
        entries.append({"model_name": endpoint.name, "litellm_params": params})
    header = "# Spread's endpoint catalogue as a LiteLLM proxy config (spread models import reads it back)\n"
    return header + yaml.safe_dump({"model_list": entries}, sort_keys=False, allow_unicode=True)
