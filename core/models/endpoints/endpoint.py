"""What an endpoint is: a named model with its own server, key variable, parameters,
prices, limits and timeout; or a bare litellm id."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields

from core import config
from core.models import catalogue, local_llm

MAX_NAME = 100
KEY_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")
# Set by the run for every call, so an endpoint may not set them.
RUN_PARAMS = {
    "model", "messages", "temperature", "seed", "max_tokens", "max_completion_tokens", "top_p", "n", "stream",
    "stream_options", "timeout", "api_base", "base_url", "api_key", "num_retries", "max_retries",
}
# What Spread does with an endpoint (LiteLLM's model_info.mode): answer, or embed text.
MODES = ("chat", "completion", "responses", "embedding")
# LiteLLM's way to point at a variable (`api_key: os.environ/NAME`); Spread reads it the same way.
REFERENCE = "os.environ/"


@dataclass
class Endpoint:
    name: str  # the label shown in every view; a bare id's name is the id
    model: str  # the litellm model id
    api_base: str | None = None
    key_env: str | None = None  # the variable holding the key, never the key
    params: dict = field(default_factory=dict)  # passed to every call: top_k, response_format, …
    price_in: float | None = None  # USD per million prompt tokens (overrides litellm's map)
    price_out: float | None = None  # USD per million completion tokens
    max_concurrency: int | None = None  # calls in flight
    rpm: float | None = None  # requests per minute
    timeout_s: float | None = None  # seconds per call (else the run's)
    tpm: float | None = None  # tokens per minute (a LiteLLM config's; the router weighs deployments by it)
    deployments: list[dict] = field(default_factory=list)  # a model group: each deployment's settings
    router: dict = field(default_factory=dict)  # a model group's router settings (routing_strategy, …)
    info: dict = field(default_factory=dict)  # LiteLLM's model_info: mode, max_input_tokens, base_model, …
    source: str = "id"  # "catalogue", or "id" for a bare litellm id

    @property
    def mode(self) -> str:
        return "embedding" if (self.info or {}).get("mode") == "embedding" else "chat"

    def members(self) -> list["Endpoint"]:
        """The deployments of a model group, each an endpoint named by its label."""
        return [Endpoint.from_settings(d | {"source": "catalogue"}) for d in self.deployments or []]

    def settings(self) -> dict:
        """What a run records about the endpoint it used: everything but the key."""
        return asdict(self)

    @classmethod
    def from_settings(cls, data: dict) -> "Endpoint":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """The endpoint's own prices, else the settings file's or litellm's (None: unknown)."""
        if prompt_tokens is None or completion_tokens is None:
            return None
        if self.price_in is not None and self.price_out is not None:
            return (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6
        return catalogue.cost_usd(self.model, prompt_tokens, completion_tokens)

    def batch_cost_usd(self, prompt_tokens: int | None, completion_tokens: int | None) -> float | None:
        """At the provider's batch price: litellm's map's batch prices for the model where it
        has them (and the endpoint has no price of its own), else the live price at OpenAI's
        documented discount (core/models/batch.py)."""
        from core.models import batch

        if prompt_tokens is None or completion_tokens is None:
            return None
        per_token = catalogue.batch_prices(self.model) if self.price_in is None or self.price_out is None else None
        if per_token is not None and not (config.settings().get("prices") or {}).get(self.model):
            return prompt_tokens * per_token[0] + completion_tokens * per_token[1]
        live = self.cost_usd(prompt_tokens, completion_tokens)
        return None if live is None else live * batch.DISCOUNT


def bare(model_id: str, api_base: str | None = None) -> Endpoint:
    """A litellm id used directly: the run's API base applies, except to the embedded model."""
    model_id = (model_id or "").strip()
    return Endpoint(name=model_id, model=model_id, api_base=None if local_llm.is_local(model_id) else api_base)
