"""A run plan: prompt variants × inputs × models × temperatures × N samples.

A cell is (variant, input, model, temperature); the plan samples every cell N times.
`validate()` checks a plan and says what is wrong in one line before anything is
written; `create()` records a valid plan (prompt versions, inputs, rendered prompts)
in one transaction.
"""

from __future__ import annotations

import math
import string
from typing import NamedTuple
from dataclasses import asdict, dataclass, field

from core import config
from core.config import SpreadError
from core.models import endpoints, local_llm
from core.prompts import conversation, shapes, templates
from core.prompts import inputs as inputs_module
from core.store import Store, runs

MAX_N = 1000
MAX_PROMPT_CHARS = 1_000_000
MAX_VARIANTS = 26
# A plan above this many calls is refused unless the user raises the cap knowingly:
# a typo in N or a forgotten filter on a big input file should not start 10⁶ calls.
DEFAULT_MAX_CALLS = 20_000
HARD_MAX_CALLS = 1_000_000


class Cell(NamedTuple):
    """One answer to ask for: a (wording, input, model, temperature) cell and its sample."""
    variant: int
    input: int
    model: str
    temperature: float
    sample: int

    @property
    def prompt_key(self) -> tuple[int, int]:
        """(wording, input): what the rendered prompt is stored by."""
        return self.variant, self.input


@dataclass
class Variant:
    """One wording of the prompt. Its label is its name, else A, B, C… by position.

    A conversation variant has `messages` (core/prompts/conversation.py); its `prompt` is
    then the conversation as text (how its version is keyed and shown). Any variant may
    ask for tools, a tool choice and a response format (core/prompts/shapes.py)."""

    prompt: str
    system: str = ""
    name: str = ""
    messages: list[dict] | None = None
    tools: list[dict] | None = None
    tool_choice: str | dict | None = None
    response_format: dict | None = None

    def render(self, values: dict[str, str]) -> tuple[str, str, list[dict]]:
        """(system, prompt, messages) as sent for one input: the system text and the turn
        answered (what meaning is read against), and every message."""
        if self.messages is None:
            system, prompt = templates.render(self.system, values), templates.render(self.prompt, values)
            return system, prompt, messages(system, prompt)
        sent = conversation.render(self.messages, values)
        return conversation.system_text(sent), conversation.last_user_text(sent), sent

    def request(self) -> dict:
        """What the variant adds to each request: tools, tool choice, response format."""
        return {k: v for k, v in (("tools", self.tools), ("tool_choice", self.tool_choice),
                                  ("response_format", self.response_format)) if v is not None}


def variant_label(index: int, name: str = "") -> str:
    if name.strip():
        return name.strip()
    letters = string.ascii_uppercase
    return letters[index] if index < 26 else letters[index // 26 - 1] + letters[index % 26]


@dataclass(kw_only=True)
class RunSpec:
    models: list[str]
    temperatures: list[float]
    n: int
    # One prompt (the shorthand), or several variants.
    prompt: str = ""
    system: str = ""
    variants: list[Variant] = field(default_factory=list)
    # The inputs: each a mapping of variable -> text. Kept in their own table, not in the spec.
    inputs: list[dict[str, str]] = field(default_factory=list)
    name: str = ""
    max_tokens: int | None = 256
    seed: int | None = None  # sample i gets seed + i: reproducible, yet each sample differs
    top_p: float | None = None
    api_base: str | None = None  # for every bare litellm id but the embedded model
    concurrency: int = 8
    # Calls in flight per model: only where set, or where a model declares its own limit
    # (the embedded model's slots).
    per_model_concurrency: int | None = None
    stream: bool = True
    timeout_s: float = 120.0
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_calls: int = DEFAULT_MAX_CALLS
    # Checks on every answer, in promptfoo's assert shape ({type, value, threshold, judge}).
    checks: list[dict] = field(default_factory=list)
    # The part of each answer its meaning is judged by (meaning.EXTRACT_MODES): long answers
    # are rarely meant to be compared whole.
    extract: str = "whole"
    # The catalogue embedding endpoint that clusters this run's answers by default (else MiniLM).
    embeddings: str = ""
    # Each model name's endpoint as it was when the run was planned (settings, no keys):
    # filled by validate(), so a run keeps calling, and showing, what it was planned with.
    endpoints: dict[str, dict] = field(default_factory=dict)
    # Sample each cell in rounds until its consistency is settled (core/run/settle.py): N is
    # then the most samples a cell takes, and `precision` the interval width that stops it.
    until_settled: bool = False
    precision: float = 0.3
    # Reuse stored answers of the same request and sample index (core/run/cache.py).
    cache: bool = False
    # Sample through the provider's batch API, at its batch price (core/run/batched.py).
    batch: bool = False

    def as_dict(self) -> dict:
        """The plan as stored with the run (inputs live in their own table)."""
        data = asdict(self)
        data.pop("inputs")
        data["variants"] = [dict(asdict(v), label=variant_label(k, v.name)) for k, v in enumerate(self.variants)]
        data["n_inputs"] = max(len(self.inputs), 1)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        known = {f for f in cls.__dataclass_fields__} - {"variants", "inputs"}
        spec = cls(**{k: v for k, v in data.items() if k in known})
        spec.variants = [Variant(v["prompt"], v.get("system") or "", v.get("name") or "",
                                 **{k: v.get(k) for k in ("messages", "tools", "tool_choice", "response_format")})
                         for v in data.get("variants") or []] or [Variant(spec.prompt, spec.system)]
        return spec

    def all_variants(self) -> list[Variant]:
        return self.variants or [Variant(self.prompt, self.system)]

    def all_inputs(self) -> list[dict[str, str]]:
        return self.inputs or [{}]

    def rendered(self) -> dict[tuple[int, int], tuple[str, str]]:
        """(variant, input) -> (system, prompt) with every placeholder filled: for a
        conversation, its system text and the turn answered."""
        return {key: (system, prompt) for key, (system, prompt, _) in self._rendered().items()}

    def sent(self) -> dict[tuple[int, int], list[dict]]:
        """(variant, input) -> the messages as sent."""
        return {key: messages for key, (_, _, messages) in self._rendered().items()}

    def _rendered(self) -> dict[tuple[int, int], tuple[str, str, list[dict]]]:
        return {(v, i): variant.render(values)
                for v, variant in enumerate(self.all_variants()) for i, values in enumerate(self.all_inputs())}

    def cells(self, n_inputs: int | None = None) -> list[Cell]:
        """Every (variant, input, model, temperature, sample) of the plan, sample-major: the
        first answers of every cell come before the second ones, so a partial run is even."""
        n_inputs = n_inputs or len(self.all_inputs())
        return [Cell(v, i, m, t, s) for s in range(self.n) for i in range(n_inputs)
                for v in range(len(self.all_variants())) for m in self.models for t in self.temperatures]

    def planned(self) -> int:
        return len(self.all_variants()) * len(self.all_inputs()) * len(self.models) * len(self.temperatures) * self.n

    def seed_for(self, sample_idx: int) -> int | None:
        return None if self.seed is None else self.seed + sample_idx

    def api_base_for(self, model: str) -> str | None:
        return None if local_llm.is_local(model) else self.api_base

    def endpoint(self, model: str) -> endpoints.Endpoint:
        """What a model name of this plan calls: its recorded endpoint, else (plans from
        before the catalogue) the name as a litellm id with the run's API base."""
        if model in self.endpoints:
            return endpoints.Endpoint.from_settings(self.endpoints[model])
        return endpoints.bare(model, self.api_base_for(model))

    def call_for(self, model: str) -> endpoints.Call:
        """How to call a model: its endpoint's server, key, parameters and timeout."""
        return endpoints.how_to_call(self.endpoint(model), self.timeout_s)

    def concurrency_for(self, model: str) -> int | None:
        """A model's own limit on calls in flight, if it has one: the lower of its
        endpoint's and the run's per-model cap, else the embedded model's slots."""
        endpoint = self.endpoint(model)
        caps = [c for c in (endpoint.max_concurrency, self.per_model_concurrency) if c]
        if caps:
            return min(caps)
        return local_llm.PARALLEL_SLOTS if local_llm.is_local(endpoint.model) else None


def messages(system: str, prompt: str) -> list[dict]:
    return ([{"role": "system", "content": system}] if system.strip() else []) + [{"role": "user", "content": prompt}]


def validate(store: Store, spec: RunSpec, *, check_providers: bool = True) -> RunSpec:
    """Normalise a plan or raise a one-line SpreadError. Nothing is written before this passes."""
    spec.variants = _checked_variants(spec)
    spec.prompt, spec.system = spec.variants[0].prompt, spec.variants[0].system
    spec.inputs = inputs_module.checked([dict(row) for row in spec.inputs or []])
    templates.check_inputs([text for v in spec.variants for text in (v.prompt, v.system)], spec.inputs)
    for variant in spec.variants:
        if variant.messages is not None:
            conversation.check_inputs(variant.messages, spec.inputs)
    for model in spec.models or []:
        if not isinstance(model, str):
            raise SpreadError(f"model {model!r} is not a model id", "models")
    models_seen = list(dict.fromkeys(m.strip() for m in spec.models or [] if m and m.strip()))
    if not models_seen:
        raise SpreadError("no model chosen", "models")
    if not spec.temperatures:
        raise SpreadError("no temperature chosen", "temperatures")
    temperatures = []
    for t in spec.temperatures:
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
            raise SpreadError(f"temperature {t!r} is not a number", "temperatures")
        if not 0 <= t <= 2:
            raise SpreadError(f"temperature {t} is outside 0..2", "temperatures")
        if round(float(t), 3) not in temperatures:
            temperatures.append(round(float(t), 3))
    if not isinstance(spec.n, int) or isinstance(spec.n, bool) or not 1 <= spec.n <= MAX_N:
        raise SpreadError(f"N must be a whole number in 1..{MAX_N} (got {spec.n!r})", "n")
    if spec.max_tokens is not None and not (isinstance(spec.max_tokens, int) and 1 <= spec.max_tokens <= 200_000):
        raise SpreadError(f"max tokens must be a whole number in 1..200000 (got {spec.max_tokens!r})", "max_tokens")
    if spec.top_p is not None and not 0 < spec.top_p <= 1:
        raise SpreadError(f"top_p must be in (0, 1] (got {spec.top_p})", "top_p")
    if spec.seed is not None and not (isinstance(spec.seed, int) and 0 <= spec.seed < 2**31 - MAX_N):
        raise SpreadError(f"seed must be a whole number in 0..{2**31 - MAX_N - 1}", "seed")
    if not 1 <= spec.concurrency <= 1024 or (spec.per_model_concurrency is not None
                                             and not 1 <= spec.per_model_concurrency <= 1024):
        raise SpreadError("concurrency must be in 1..1024", "concurrency")
    if spec.api_base is not None and not spec.api_base.strip():
        spec.api_base = None
    if spec.api_base and (carried := endpoints.url_credentials(spec.api_base)):  # never echoed: plans are stored
        raise SpreadError(f"the API base carries a credential ({', '.join(carried)}): a run's plan is stored and "
                          "shared, so give the key in the environment, or add the server as a model endpoint "
                          "whose URL is os.environ/NAME", "api_base")
    spec.models, spec.temperatures = models_seen, temperatures
    # A catalogue name first, then a litellm id: recorded now, so the run keeps these settings.
    spec.endpoints = {m: spec.endpoints.get(m) or endpoints.resolve(store, m, spec.api_base_for(m)).settings()
                      for m in models_seen}
    for model in models_seen:
        if spec.endpoint(model).mode == "embedding":
            raise SpreadError(f"endpoint {model!r} embeds text and gives no answers: sample a chat endpoint, and "
                              "cluster with this one (spread run --embeddings NAME)", "models")
    if not isinstance(spec.max_calls, int) or not 1 <= spec.max_calls <= HARD_MAX_CALLS:
        raise SpreadError(f"the cap on calls must be a whole number in 1..{HARD_MAX_CALLS:,}", "max_calls")
    if spec.planned() > spec.max_calls:
        raise SpreadError(
            f"this plan makes {spec.planned():,} calls ({len(spec.variants)} variants × {len(spec.all_inputs())} "
            f"inputs × {len(spec.models)} models × {len(spec.temperatures)} temperatures × N={spec.n}), above the "
            f"cap of {spec.max_calls:,}; raise the cap knowingly (--max-calls) or plan fewer", "max_calls")
    if spec.until_settled:  # (core/run/settle.py) one line for a precision or ceiling it cannot use
        from core.run import settle

        settle.check_options(spec.precision, spec.n)
    try:
        shapes.check_extract_mode(spec.extract or "whole")
    except ValueError as e:
        raise SpreadError(str(e), "extract") from None
    if spec.embeddings:
        endpoints.embedding_endpoint(store, spec.embeddings.strip())
        spec.embeddings = spec.embeddings.strip()
    first_line = spec.variants[0].prompt.strip().splitlines()[0]
    spec.name = (spec.name or "").strip() or spec.variants[0].name or first_line[:60]
    config.check_text(spec.name, "the name", "name")
    if spec.batch:  # an endpoint without a batch API, named, before anything is written
        from core.models import batch

        batch.check(spec)
    if check_providers:
        for model in spec.models:
            endpoints.check(spec.endpoint(model))  # its message names the endpoint at fault
            check_shapes_supported(spec, model)
    return spec


def check_shapes_supported(spec: RunSpec, model: str) -> None:
    """Refuse, before anything starts, tools or a response format a model cannot take."""
    asked = [v.request() for v in spec.variants]
    tools = any("tools" in a for a in asked)
    schema = any(shapes.schema_of(a.get("response_format")) for a in asked)
    json_mode = any(shapes.wants_json(a.get("response_format")) for a in asked)
    if not (tools or json_mode):
        return
    from core.models import llm  # litellm's model map: imported only when a plan asks for shapes

    problem = llm.unsupported_shapes(spec.endpoint(model).model, tools=tools, schema=schema, json_mode=json_mode)
    if problem:
        raise SpreadError(f"{model}: {problem}; choose another model or drop them from the plan", "models")


def _checked_variants(spec: RunSpec) -> list[Variant]:
    variants = spec.all_variants()
    if len(variants) > MAX_VARIANTS:
        raise SpreadError(f"at most {MAX_VARIANTS} prompt variants in one run (got {len(variants)})", "prompt")
    labels, out = [], []
    for k, variant in enumerate(variants):
        which = "the prompt" if len(variants) == 1 else f"prompt {variant_label(k, variant.name)}"
        variant = _checked_shape(variant, which)
        if not isinstance(variant.prompt, str) or not variant.prompt.strip():
            raise SpreadError(f"{which} is empty", "prompt")
        if len(variant.prompt) + len(variant.system or "") > MAX_PROMPT_CHARS:
            raise SpreadError(f"{which} is longer than {MAX_PROMPT_CHARS:,} characters", "prompt")
        config.check_text(variant.prompt, which, "prompt")
        config.check_text(variant.system or "", f"the system message of {which}", "system")
        config.check_text(variant.name or "", f"the name of {which}", "prompt")
        label = variant_label(k, variant.name)
        if label in labels:
            raise SpreadError(f"two prompt variants are labelled {label!r}: give them different names", "prompt")
        labels.append(label)
        out.append(variant)
    return out


def _checked_shape(variant: Variant, which: str) -> Variant:
    """A variant with its conversation, tools, tool choice and response format checked; a
    conversation's text becomes its prompt, and a system message given beside it opens it."""
    messages = variant.messages
    system = variant.system or ""
    if messages is not None:
        messages = conversation.checked(messages, which, templated=True)
        if system.strip() and not any(turn["role"] == "system" for turn in messages):
            messages = [{"role": "system", "content": system}] + messages
        system = ""
    tools = shapes.checked_tools(variant.tools, f"the tools of {which}") if variant.tools else None
    response_format = (shapes.checked_response_format(variant.response_format)
                       if variant.response_format else None)
    return Variant(conversation.text(messages) if messages is not None else variant.prompt, system,
                   (variant.name or "").strip(), messages, tools,
                   shapes.checked_tool_choice(variant.tool_choice, tools), response_format)


def parse_temperatures(text: str) -> list[float]:
    """ "0, 0.7, 1" -> [0.0, 0.7, 1.0], or a SpreadError naming the bad item."""
    values = []
    for item in text.replace(";", ",").replace(" ", ",").split(","):
        if not item.strip():
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise SpreadError(f"temperature {item.strip()!r} is not a number", "temperatures") from None
    return values


def parse_seed(text: str) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise SpreadError(f"seed {text!r} is not a whole number", "seed") from None


def create(store: Store, spec: RunSpec, *, created_by: str = "", along=None) -> int:
    """Validate the plan and record it; returns the run id. `along(db, run_id)`: what
    another table keeps about the run, written in the same transaction (runs.create_run)."""
    spec = validate(store, spec)
    stored = spec.as_dict()
    with store.connection() as db:
        return runs.create_run(db, spec=stored, planned=spec.planned(), variants=stored["variants"],
                                inputs=spec.all_inputs(), rendered=spec.rendered(), sent=spec.sent(),
                                created_by=created_by, along=along)
