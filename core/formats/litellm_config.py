"""The endpoint catalogue in and out as a LiteLLM proxy `config.yaml`, the format many
teams already keep their endpoints in, taken as they run it in production:

    model_list:
      - model_name: team-llama                     # the endpoint's name
        litellm_params:
          model: openai/meta-llama/Llama-3.1-8B-Instruct
          api_base: os.environ/TEAM_VLLM_BASE      # any value may read a variable
          api_key: os.environ/TEAM_VLLM_KEY        # a credential: only ever a variable's name
          rpm: 60
          tpm: 100000
          timeout: 300
          max_parallel_requests: 8
          input_cost_per_token: 0.0000002          # Spread keeps USD per million tokens
          output_cost_per_token: 0.0000006
          top_k: 40                                # anything else: a parameter of every call
        model_info: {max_input_tokens: 8192}       # kept (mode, base_model, prices, …)
      - model_name: gpt-4o                         # one name, several entries: a model group
        litellm_params: {model: azure/gpt-4o, api_base: os.environ/AZURE_EU_BASE, …}
      - model_name: gpt-4o
        litellm_params: {model: azure/gpt-4o, api_base: os.environ/AZURE_US_BASE, …}
      - model_name: team-embed
        litellm_params: {model: openai/bge-m3, api_base: http://tei:8080/v1}
        model_info: {mode: embedding}              # an embedding endpoint, for meaning clusters
    router_settings: {routing_strategy: simple-shuffle, cooldown_time: 30}

Import is all or nothing: `preview()` reads every entry and lists every problem of every
entry at once (`ImportRefused.problems`); `apply()` adds the lot in one transaction. A
credential written into the file (api_key, azure_ad_token, aws_secret_access_key,
vertex_credentials, anything litellm masks as sensitive, or inside an api_base: user info
or a key-like query parameter) is refused by its field's name; its value is never
repeated, stored or exported. A tokenizer's bos_token/eos_token is text, not a
credential. `${VAR}` (which LiteLLM sends as written) is refused with the
`os.environ/VAR` it meant. Entries that are neither chat nor embedding models (images,
audio, rerank) are listed as skipped.

`include:` files are read as LiteLLM's proxy reads them: each path relative to the file
that names it (else, as LiteLLM falls back, to the root config's folder), included files'
own includes too, each file once; a list in an included file extends the same list, any
other value replaces it.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from core.config import SpreadError
from core.models import endpoints, groups
from core.models.endpoints import REFERENCE, RUN_PARAMS, Endpoint
from core.store import Store

# litellm_params Spread reads into an endpoint's own settings, not its parameters.
SETTINGS = {"model", "api_base", "base_url", "api_key", "rpm", "tpm", "timeout", "stream_timeout",
            "max_parallel_requests", "input_cost_per_token", "output_cost_per_token", "litellm_credential_name"}
# Values people write for "no key" on a keyless server; the fix is to drop the line.
PLACEHOLDER_KEYS = {"", "none", "null", "empty", "no-key", "nokey", "no_key", "dummy", "fake", "fake-key", "x",
                    "na", "n/a", "-", "not-needed", "unused", "sk-1234", "sk-fake", "sk-no-key-required"}
SECTIONS_USED = {"model_list", "router_settings", "credential_list"}


class ImportRefused(SpreadError):
    """Nothing imported: every problem of every entry, one line each (no value of a credential)."""

    def __init__(self, problems: list[str], notes: list[str] | None = None):
        self.problems, self.notes = problems, notes or []
        entries = len({p.split(":", 1)[0] for p in problems})
        super().__init__(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} in {entries} "
                         f"entr{'y' if entries == 1 else 'ies'}, nothing imported: " + "; ".join(problems))


@dataclass
class Preview:
    endpoints: list[Endpoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was left out or changed, and why
    skipped: list[str] = field(default_factory=list)  # entries that are not chat or embedding models
    replace: bool = False


def preview(store: Store, text: str, *, path: str | Path | None = None, replace: bool = False) -> Preview:
    """What importing this config would add, or ImportRefused listing every problem. `path`
    is the config's own file, where its `include:` files are found (none for an upload)."""
    data = _yaml(text, "the file")
    result, problems = Preview(replace=replace), []
    if isinstance(data, dict) and "include" in data:
        data = _with_includes(data, Path(path) if path else None, problems, result.notes)
    if problems and not (isinstance(data, dict) and data.get("model_list")):
        raise ImportRefused(problems, result.notes)  # the model_list may be in the file that could not be read
    if not isinstance(data, dict) or not isinstance(data.get("model_list"), list):
        raise SpreadError("no model_list in the file: expected a LiteLLM proxy config.yaml")
    if not data["model_list"]:
        raise SpreadError("the model_list is empty")
    ignored_sections = sorted(k for k in data if k not in SECTIONS_USED)
    if ignored_sections:
        result.notes.append(f"ignored: {', '.join(ignored_sections)} (only the model_list makes endpoints)")
    router = _router_settings(data.get("router_settings"), result.notes)
    credentials = data.get("credential_list") if isinstance(data.get("credential_list"), list) else []
    named: dict[str, list[tuple[str, Endpoint]]] = {}
    for position, entry in enumerate(data["model_list"], start=1):
        where = f"entry {position}"
        if isinstance(entry, dict) and isinstance(entry.get("model_name"), str):
            where += f" ({entry['model_name']!r})"
        deployment, notes, entry_problems, skipped = _deployment(entry, credentials)
        if skipped:
            result.skipped.append(f"{where}: {skipped}")
            continue
        if deployment is not None:
            entry_problems += _every_problem(deployment)
        problems += [f"{where}: {p}" for p in entry_problems]
        result.notes += [f"{where}: {note}" for note in notes]
        if deployment is not None and not entry_problems:
            named.setdefault(deployment.name, []).append((where, deployment))
    existing = set(endpoints.names(store))
    for name, members in named.items():
        try:
            endpoint = members[0][1] if len(members) == 1 else _group(name, members, router)
            endpoint = endpoints.validate(endpoint)
        except SpreadError as e:
            problems.append(f"{members[0][0]}: {e}")
            continue
        if endpoint.name in existing and not replace:
            problems.append(f"{members[0][0]}: an endpoint named {endpoint.name!r} already exists (import with "
                            "replace, or remove it first)")
            continue
        result.endpoints.append(endpoint)
    if problems:
        raise ImportRefused(problems, result.notes)
    return result


def _yaml(text: str, what: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise SpreadError(f"{what} is not valid YAML{line}") from None


def _with_includes(data: dict, path: Path | None, problems: list[str], notes: list[str]) -> dict:
    """The config with its `include:` files merged in, as LiteLLM's proxy merges them
    (litellm/proxy/common_utils/config_includes.py)."""
    merged = {k: v for k, v in data.items() if k != "include"}
    if path is None:
        problems.append("include: the files it names are read only from a config on disk (spread models import "
                        "PATH), not from an upload")
        return merged
    root = path.resolve()
    pending = [(entry, root) for entry in _include_entries(data, "include", problems)]
    loaded, read = {root}, []
    while pending:
        entry, declared_in = pending.pop(0)
        location = _include_location(entry, declared_in, root, notes)
        if location in loaded:
            continue
        loaded.add(location)
        try:
            included = _yaml(location.read_text(encoding="utf-8"), f"include {entry}")
        except SpreadError as e:
            problems.append(str(e))
            continue
        except (OSError, UnicodeDecodeError) as e:
            problems.append(f"include {entry}: cannot read {location}: {getattr(e, 'strerror', None) or e}")
            continue
        if not isinstance(included, dict):
            problems.append(f"include {entry}: not a YAML mapping")
            continue
        read.append(entry)
        for key, value in included.items():
            if key == "include":
                continue
            earlier = merged.get(key)
            merged[key] = [*earlier, *value] if isinstance(earlier, list) and isinstance(value, list) else value
        pending += [(e, location) for e in _include_entries(included, f"include in {entry}", problems)]
    if read:
        notes.append(f"included: {', '.join(read)}")
    return merged


def _include_entries(config: dict, where: str, problems: list[str]) -> list[str]:
    entries = config.get("include")
    if entries is None:
        return []
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        problems.append(f"{where}: 'include' must be a list of file paths")
        return []
    return entries


def _include_location(entry: str, declared_in: Path, root: Path, notes: list[str]) -> Path:
    """Next to the config that names it; LiteLLM also finds one next to the root config."""
    declared = Path(os.path.abspath(declared_in.parent / entry))
    beside_root = Path(os.path.abspath(root.parent / entry))
    if beside_root == declared or not beside_root.exists():
        return declared
    if not declared.exists():
        notes.append(f"include {entry}: not next to {declared_in.name}, read from the root config's folder "
                     "(as LiteLLM does)")
        return beside_root
    return declared


# `${VAR}`, `$VAR`: a shell's way to read a variable, which LiteLLM sends as written.
SHELL_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Z_][A-Z0-9_]*)")


def _shell_variables(params: dict, problems: list[str]) -> dict:
    """The parameters without `${VAR}` values, each refused with the reference LiteLLM reads."""
    kept = {}
    for name, value in params.items():
        found = SHELL_VARIABLE.fullmatch(value.strip()) if isinstance(value, str) else None
        if found:
            variable = found[1] or found[2]
            problems.append(f"{name}: LiteLLM does not read {value.strip()} as a variable: write {REFERENCE}{variable}")
            continue
        kept[name] = value
    return kept


# What to set aside, after a setting is refused, to find the entry's next problem.
SET_ASIDE = {"api_base": {"api_base": None}, "key_env": {"key_env": None}, "params": {"params": {}},
             "price": {"price_in": None, "price_out": None}, "max_concurrency": {"max_concurrency": None},
             "rpm": {"rpm": None}, "timeout": {"timeout_s": None}, "tpm": {"tpm": None}}


def _every_problem(endpoint: Endpoint) -> list[str]:
    """Every setting of one entry that endpoints.validate refuses, not only the first."""
    problems, check_id = [], True
    for _ in range(len(SET_ASIDE) + 2):
        try:
            endpoints.validate(endpoint, check_id=check_id)
            break
        except SpreadError as e:
            problems.append(str(e))
            if e.field == "model" and check_id:
                check_id = False  # an unknown id: the other settings can still be read
            elif e.field in SET_ASIDE:
                endpoint = dataclasses.replace(endpoint, **SET_ASIDE[e.field])
            else:
                break
    return problems


def _router_settings(settings, notes: list[str]) -> dict:
    if not isinstance(settings, dict):
        return {}
    kept = {k: v for k, v in settings.items() if k in groups.ROUTER_SETTINGS}
    left = sorted(k for k in settings if k not in groups.ROUTER_SETTINGS)
    if left:
        notes.append(f"router_settings: {', '.join(left)} ignored (Spread keeps the routing strategy, retries "
                     "and cooldowns of each model group)")
    return kept


def _deployment(entry, credentials: list) -> tuple[Endpoint | None, list[str], list[str], str | None]:
    """One entry as an endpoint: (endpoint or None, notes, every problem, why it was skipped)."""
    notes: list[str] = []
    if not isinstance(entry, dict):
        return None, notes, ["not a mapping with model_name and litellm_params"], None
    problems = []
    name = entry.get("model_name")
    if not isinstance(name, str) or not name.strip():
        problems.append("no model_name")
    elif "*" in name:
        problems.append("wildcard model names are not endpoints: list each model")
    params = entry.get("litellm_params")
    if not isinstance(params, dict) or not isinstance(params.get("model"), str):
        return None, notes, problems + ["no litellm_params.model"], None
    info = entry.get("model_info") if isinstance(entry.get("model_info"), dict) else {}
    mode = info.get("mode") or _mode_in_price_map(params["model"])
    if mode not in (None, *endpoints.MODES):
        return None, notes, [], f"mode {mode} skipped (Spread uses chat and embedding endpoints)"
    params, info = _dates_as_text(params, notes), _dates_as_text(info, notes)
    params = _shell_variables(_with_credential(params, credentials, problems), problems)
    written = endpoints.written_secrets("", {k: v for k, v in params.items() if k != "api_key"})
    written += [f"model_info.{n}" for n in endpoints.written_secrets("", info)]
    for base_name in ("api_base", "base_url"):  # a key inside the URL: refused, the URL set aside
        base = params.get(base_name)
        if isinstance(base, str) and not base.startswith(REFERENCE) and (carried := endpoints.url_credentials(base)):
            written += [f"{base_name} ({place})" for place in carried]
            params = {k: v for k, v in params.items() if k != base_name}
    key = params.get("api_key")
    key_env = None
    if key is not None:
        if isinstance(key, str) and key.startswith(REFERENCE):
            key_env = key[len(REFERENCE):]
        elif isinstance(key, str) and key.strip().lower() in PLACEHOLDER_KEYS:
            # Safe to name: a placeholder is not a key.
            problems.append(f"api_key {key!r} is a placeholder: for a server without a key, drop the api_key "
                            f"line; else give it as {REFERENCE}NAME")
        else:
            written.insert(0, "api_key")
    if written:
        # Never repeat the values: they may be real credentials.
        several = len(written) > 1
        problems.append(f"credential{'s' if several else ''} written in the file: {', '.join(written)} (give "
                        f"{'each' if several else 'it'} as {REFERENCE}NAME; the value{'s were' if several else ' was'} "
                        "not imported)")
    prices = [params.get(k, info.get(k)) for k in ("input_cost_per_token", "output_cost_per_token")]
    price_in, price_out = (_per_million(p, problems) for p in prices)
    if "stream_timeout" in params:
        notes.append("stream_timeout ignored (Spread times each call with timeout)")
    extra = {}
    for key_name, value in params.items():
        if key_name in SETTINGS:
            continue
        if key_name in RUN_PARAMS:
            notes.append(f"{key_name} ignored (a run sets it)")
            continue
        if not endpoints.written_secrets(key_name, value):  # refused above; the other settings are still checked
            extra[key_name] = value
    info = {k: v for k, v in info.items() if not endpoints.written_secrets(k, v)}  # as for the parameters
    if mode == "embedding" and "mode" not in info:
        info["mode"] = mode
    if not isinstance(name, str) or not name.strip() or "*" in name:
        return None, notes, problems, None
    return Endpoint(
        name=name, model=params["model"], api_base=params.get("api_base") or params.get("base_url"),
        key_env=key_env, params=extra, price_in=price_in, price_out=price_out,
        max_concurrency=params.get("max_parallel_requests"), rpm=params.get("rpm", entry.get("rpm")),
        timeout_s=params.get("timeout"), tpm=params.get("tpm", entry.get("tpm")), info=info, source="catalogue",
    ), notes, problems, None


def _mode_in_price_map(model: str) -> str | None:
    """litellm's own idea of what a model is (text-embedding-3-small: embedding), if it has one."""
    from core.models import llm

    cost_map = llm.get().model_cost
    found = cost_map.get(model) or cost_map.get(model.split("/", 1)[-1]) or {}
    return found.get("mode")


def _dates_as_text(values: dict, notes: list[str]) -> dict:
    """YAML reads an unquoted 2024-02-01 as a date: keep the text written, and say so."""
    out = {}
    for name, value in values.items():
        if isinstance(value, (datetime.date, datetime.datetime)):
            text = value.isoformat()
            notes.append(f"{name}: YAML read the unquoted {text} as a date; kept as the text {text!r} "
                         "(quote it in the file)")
            value = text
        out[name] = value
    return out


def _with_credential(params: dict, credentials: list, problems: list[str]) -> dict:
    """litellm_credential_name: the named entry of the file's credential_list, merged in
    (the entry's own values win). A proxy's stored credential cannot be read from here."""
    name = params.get("litellm_credential_name")
    if name is None:
        return params
    found = next((c for c in credentials if isinstance(c, dict) and c.get("credential_name") == name), None)
    if found is None or not isinstance(found.get("credential_values"), dict):
        problems.append(f"litellm_credential_name {name!r} is not in the file's credential_list (Spread reads "
                        f"credentials from variables: add its fields as {REFERENCE}NAME)")
        return params
    return {**found["credential_values"], **params}


def _per_million(value, problems: list[str]):
    if value is None:
        return None
    try:
        return round(float(value) * 1e6, 9)
    except (TypeError, ValueError):
        problems.append(f"a cost per token must be a number (got {value!r})")
        return None


def _group(name: str, members: list[tuple[str, Endpoint]], router: dict) -> Endpoint:
    """Several entries under one model_name: one endpoint whose calls the Router spreads."""
    deployments, labels = [], set()
    for k, (_, member) in enumerate(members, start=1):
        label = str(member.info.get("id") or _label(member, members))
        if label in labels:
            label = f"{label} #{k}"
        labels.add(label)
        own_info = {k: v for k, v in member.info.items() if k != "id"}  # the label is its id
        deployments.append(member.settings() | {"name": label, "deployments": [], "router": {}, "info": own_info})
    modes = {member.mode for _, member in members}
    if len(modes) > 1:
        raise SpreadError(f"the deployments of {name!r} mix modes ({', '.join(sorted(modes))})")
    first = members[0][1]
    prices = {(m.price_in, m.price_out) for _, m in members}
    price_in, price_out = prices.pop() if len(prices) == 1 else (None, None)
    info = {k: v for k, v in first.info.items() if k != "id"}  # the group's; each deployment keeps its id
    return Endpoint(name=name, model=first.model, deployments=deployments, router=router, info=info,
                    price_in=price_in, price_out=price_out, rpm=_total(m.rpm for _, m in members),
                    tpm=_total(m.tpm for _, m in members),
                    max_concurrency=_total(m.max_concurrency for _, m in members),
                    timeout_s=max((m.timeout_s for _, m in members if m.timeout_s), default=None),
                    source="catalogue")


def _label(member: Endpoint, members: list[tuple[str, Endpoint]]) -> str:
    """A deployment's label: its model id, with its server when the group repeats the id."""
    same_model = sum(1 for _, m in members if m.model == member.model) > 1
    if same_model and member.api_base:
        base = member.api_base
        return f"{member.model} @ {base[len(REFERENCE):] if base.startswith(REFERENCE) else base}"
    return member.model


def _total(values) -> float | None:
    """The group's limit: the sum of its deployments', when every one has one."""
    values = list(values)
    return sum(values) if values and all(v is not None for v in values) else None


def apply(store: Store, result: Preview, *, who: str = "") -> list[str]:
    """Add every endpoint of a preview in one transaction; returns their names."""
    endpoints.add_all(store, result.endpoints, who=who, replace=result.replace)
    return [e.name for e in result.endpoints]


def export(catalogue: list[Endpoint]) -> str:
    """The catalogue as a LiteLLM proxy config.yaml (credentials as os.environ/NAME, never
    values); a model group as one entry per deployment under its name."""
    import yaml

    entries, router = [], {}
    for endpoint in catalogue:
        if endpoint.deployments:
            router = router or endpoint.router
            for member in endpoint.members():
                entries.append(_entry(endpoint.name, member, {"id": member.name, **member.info}))
        else:
            entries.append(_entry(endpoint.name, endpoint, endpoint.info))
    header = "# Spread's endpoint catalogue as a LiteLLM proxy config (spread models import reads it back)\n"
    config = {"model_list": entries} | ({"router_settings": router} if router else {})
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def _entry(name: str, endpoint: Endpoint, info: dict) -> dict:
    params: dict = {"model": endpoint.model}
    if endpoint.api_base:
        params["api_base"] = endpoint.api_base
    if endpoint.key_env:
        params["api_key"] = REFERENCE + endpoint.key_env
    for key, value in (("rpm", endpoint.rpm), ("tpm", endpoint.tpm)):
        if value:
            params[key] = int(value) if float(value).is_integer() else value
    if endpoint.timeout_s:
        params["timeout"] = endpoint.timeout_s
    if endpoint.max_concurrency:
        params["max_parallel_requests"] = endpoint.max_concurrency
    if endpoint.price_in is not None:
        params["input_cost_per_token"] = float(f"{endpoint.price_in / 1e6:.12g}")
        params["output_cost_per_token"] = float(f"{endpoint.price_out / 1e6:.12g}")
    params.update(endpoint.params)
    entry = {"model_name": name, "litellm_params": params}
    return entry | ({"model_info": dict(info)} if info else {})
