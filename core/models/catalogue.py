"""The model catalogue: the embedded models, any litellm model id, keys, and prices.

A model id is what litellm takes: `openai/gpt-4o-mini`, `anthropic/claude-...`,
`ollama/llama3`, or `openai/<name>` with an api_base for any OpenAI-compatible
server (vLLM, a LiteLLM proxy, llama.cpp). Keys come from the environment or the
secrets file (see config); their values never leave this process's memory.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

from core import config
from core.config import SpreadError
from core.models import direct, llm, local_llm

# Providers listed by `spread models` and the model picker, with an example id.
KNOWN_PROVIDERS = [
    ("openai", "openai/gpt-4o-mini", ["OPENAI_API_KEY"]),
    ("anthropic", "anthropic/claude-3-5-haiku-latest", ["ANTHROPIC_API_KEY"]),
    ("gemini", "gemini/gemini-2.0-flash", ["GEMINI_API_KEY"]),
    ("mistral", "mistral/mistral-small-latest", ["MISTRAL_API_KEY"]),
    ("groq", "groq/llama-3.1-8b-instant", ["GROQ_API_KEY"]),
    ("together_ai", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", ["TOGETHERAI_API_KEY"]),
    ("openrouter", "openrouter/openai/gpt-4o-mini", ["OPENROUTER_API_KEY"]),
    ("ollama", "ollama/llama3.2", []),
]
# Providers that run without a key (a local server).
KEYLESS = {"ollama", "ollama_chat", "lm_studio", "hosted_vllm", "llamafile", local_llm.PROVIDER}
DEFAULT_API_BASES = {"ollama": "http://localhost:11434", "ollama_chat": "http://localhost:11434"}
# Providers that speak the OpenAI protocol to any server: with an API base they are a
# self-hosted server that may need no key. A cloud provider (anthropic, gemini, …) sent
# to another base still needs its own key.
OPENAI_COMPATIBLE = {"openai", "text-completion-openai", "hosted_vllm", "vllm", "litellm_proxy", "openai_like",
                     "custom_openai"} | KEYLESS


@dataclass
class ModelEntry:
    id: str
    provider: str
    description: str
    keys: list[str]
    key_present: bool

    def as_dict(self) -> dict:
        return asdict(self)


def catalogue() -> list[ModelEntry]:
    """The embedded models first (the default leading), then the known providers and
    whether their key is set."""
    config.load_secrets_into_env()
    entries = [ModelEntry(m.id, local_llm.PROVIDER, m.description, [], True) for m in local_llm.MODELS.values()]
    for provider, example, keys in KNOWN_PROVIDERS:
        present = all(os.environ.get(k) for k in keys)
        what = "no key needed (a local server)" if not keys else (
            f"key {'set' if present else 'missing'}: {', '.join(keys)}")
        entries.append(ModelEntry(example, provider, f"{provider}: {what}", keys, present))
    return entries


def provider_of(model_id: str, api_base: str | None = None) -> str:
    """litellm's provider for a model id, or a SpreadError naming the unknown id."""
    if local_llm.is_local(model_id):
        return local_llm.PROVIDER
    if model_id == llm.ECHO_MODEL:
        return "echo"
    if direct.handles(model_id):  # openai/…, hosted_vllm/…: plain to read, no litellm needed
        return model_id.partition("/")[0]
    litellm = llm.get()
    try:
        _, provider, _, _ = litellm.get_llm_provider(model=model_id, api_base=api_base)
    except Exception:
        raise SpreadError(
            f"unknown model id {model_id!r}: use an endpoint name (spread models list), a litellm id such as "
            "openai/gpt-4o-mini, or openai/<name> with --api-base for an OpenAI-compatible server"
        ) from None
    return provider


def check_model(model_id: str, api_base: str | None = None) -> None:
    """Raise a one-line SpreadError if a run on this model cannot start."""
    model_id = (model_id or "").strip()
    if not model_id:
        raise SpreadError("empty model id")
    config.check_text(model_id, "the model id")
    if api_base:
        config.check_text(api_base, "the api_base")
    if local_llm.is_local(model_id) or model_id == llm.ECHO_MODEL:
        return
    if model_id.startswith(local_llm.PROVIDER + "/"):
        raise SpreadError(f"unknown local model {model_id!r}: the embedded models are {', '.join(local_llm.MODELS)}")
    provider = provider_of(model_id, api_base)
    base = api_base or DEFAULT_API_BASES.get(provider)
    if base:
        check_reachable(base)
    if provider in KEYLESS or (api_base and provider in OPENAI_COMPATIBLE):
        return  # self-hosted servers often need no key
    config.load_secrets_into_env()
    litellm = llm.get()
    env = litellm.validate_environment(model=model_id)
    if not env.get("keys_in_environment", True):
        missing = ", ".join(env.get("missing_keys") or ["an API key"])
        raise SpreadError(f"missing key for {model_id}: set {missing} in the environment or .streamlit/secrets.toml")


def check_reachable(api_base: str, timeout_s: float = 3.0) -> None:
    url = urlparse(api_base)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise SpreadError(f"api_base {api_base!r} is not an http(s) URL")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout_s).close()
    except OSError as e:
        raise SpreadError(f"api_base {api_base} is unreachable: {e.strerror or e}") from None


def api_key_for(model_id: str, api_base: str | None) -> str | None:
    """A placeholder key for keyless OpenAI-compatible servers (the SDK insists on one)."""
    if api_base and model_id.startswith("openai/") and not os.environ.get("OPENAI_API_KEY"):
        return "no-key"
    return None


def secret_values() -> list[str]:
    """Values of the key variables in use, so error text can be scrubbed of them."""
    return [v for k, v in os.environ.items() if k.endswith(("_API_KEY", "_TOKEN", "_SECRET")) and v]


def cost_usd(model_id: str, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
    """Price of one answer: settings override, else litellm's shipped map, else None (unknown)."""
    if prompt_tokens is None or completion_tokens is None:
        return None
    if local_llm.is_local(model_id) or model_id == llm.ECHO_MODEL:
        return 0.0
    override = (config.settings().get("prices") or {}).get(model_id)
    if override:
        return (prompt_tokens * float(override.get("input_per_mtok", 0))
                + completion_tokens * float(override.get("output_per_mtok", 0))) / 1e6
    prices = price_map()
    # A model missing from the map would be priced at a silent $0: call it unknown.
    entry = prices.get(model_id) or prices.get(model_id.split("/", 1)[-1])
    if entry is None:
        return None
    if _flat(entry):
        return prompt_tokens * entry["input_cost_per_token"] + completion_tokens * entry["output_cost_per_token"]
    litellm = llm.get()  # tiers, per-character prices: litellm's own arithmetic
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model_id, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    except Exception:
        return None
    return prompt_cost + completion_cost


def batch_prices(model_id: str) -> tuple[float, float] | None:
    """The model's batch prices per token, in and out, where litellm's map has them
    (`input_cost_per_token_batches`, `output_cost_per_token_batches`); None otherwise."""
    prices = price_map()
    entry = prices.get(model_id) or prices.get(model_id.split("/", 1)[-1]) or {}
    found = entry.get("input_cost_per_token_batches"), entry.get("output_cost_per_token_batches")
    return found if all(isinstance(v, (int, float)) for v in found) else None


@functools.cache
def price_map() -> dict:
    """litellm's bundled price map (what `litellm.model_cost` holds with
    LITELLM_LOCAL_MODEL_COST_MAP set), read as the JSON file it ships: pricing an answer
    needs no `import litellm`, which takes seconds."""
    spec = importlib.util.find_spec("litellm")  # finds the package without importing it
    path = Path(spec.origin).parent / PRICE_MAP
    return json.loads(path.read_text())


PRICE_MAP = "model_prices_and_context_window_backup.json"


def _flat(entry: dict) -> bool:
    """A plain price per token, in and out (no tiers by context size, no per-character price)."""
    return (isinstance(entry.get("input_cost_per_token"), (int, float))
            and isinstance(entry.get("output_cost_per_token"), (int, float))
            and not any("_above_" in key or "tier" in key for key in entry))
