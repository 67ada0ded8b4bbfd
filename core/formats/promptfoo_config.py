"""A promptfoo suite (`promptfooconfig.yaml`) as a Spread run, so a team sees the spread
of its own suite over N samples:

    prompts      -> variants: text; files read as promptfoo 0.120 reads them (a bare path
                    is a file; `.txt` split on `---` lines, `.csv` one prompt per row,
                    `.jsonl` one per line, `.md`/`.j2` whole, JSON/YAML chat files — their
                    `{{vars}}` filled per turn — conversation variants)
    providers    -> catalogue endpoints (ids mapped to litellm ids, `apiBaseUrl`, the
                    `config` parameters; a key only as the name of its variable); their
                    tools, tool choice, response format and system instruction become the
                    variants' when every provider asks for the same; `echo` is Spread's
                    built-in echo model
    tests        -> inputs (inline, or CSV / JSONL / YAML / JSON files through file://;
                    `scenarios` crossed with their configs), each test's `assert` its own
                    checks (`$ref` to `assertionTemplates` resolved) and `threshold` its bar
    defaultTest  -> applied to every test: its vars, its asserts (the run's checks), its
                    threshold, its grader (`options.provider`, the judge)

What has no Spread equivalent is left out and listed, one line each (`Suite.skipped`);
with `strict=True` the whole suite is refused instead (`Unmappable`, listing every part).
What Spread reads differently by choice is said in `Suite.notes`. A suite is refused, in
either mode, when a file cannot be read or nothing runnable is left — before anything is
written. `write()` then adds the endpoints and records the run.
"""

from __future__ import annotations

import csv
import glob
import io
import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from core.config import SpreadError, read_yaml
from core.evaluate import checks as checks_module
from core.evaluate.checks import TEST_CHECKS, TEST_THRESHOLD
from core.models import endpoints
from core.models.endpoints import Endpoint
from core.models.llm import ECHO_MODEL
from core.prompts import conversation, shapes, templates
from core.prompts import inputs as inputs_module
from core.run import plan
from core.store import Store

# promptfoo provider prefixes -> litellm's (the model name follows the last colon).
PROVIDERS = {
    "openai": "openai", "anthropic": "anthropic", "azure": "azure", "azureopenai": "azure",
    "bedrock": "bedrock", "vertex": "vertex_ai", "google": "gemini", "gemini": "gemini", "mistral": "mistral",
    "groq": "groq", "ollama": "ollama_chat", "openrouter": "openrouter", "togetherai": "together_ai",
    "deepseek": "deepseek", "perplexity": "perplexity", "fireworks": "fireworks_ai", "cohere": "cohere",
    "xai": "xai", "litellm": "litellm_proxy", "cerebras": "cerebras", "huggingface": "huggingface",
    "replicate": "replicate", "databricks": "databricks",
}
# Providers whose model names hold colons themselves (`bedrock:…-v1:0`, `replicate:owner/model:version`).
COLON_IDS = {"bedrock", "vertex", "litellm", "openrouter", "ollama", "replicate"}
# The middle part of `openai:chat:gpt-4o` (a chat model is what Spread samples).
CHAT_KINDS = {"chat", "messages", "converse"}
# Kinds read as the same model's chat API, and said so.
CHAT_READINGS = {"responses": "OpenAI's Responses API model is called through chat completions",
                 "live": "Gemini's Live (streaming session) model is called through its chat API"}
# Provider `config` keys -> the run's own settings (all the names promptfoo's providers use).
RUN_SETTINGS = {"temperature": "temperature", "max_tokens": "max_tokens", "max_completion_tokens": "max_tokens",
                "max_output_tokens": "max_tokens", "maxOutputTokens": "max_tokens", "top_p": "top_p",
                "topP": "top_p", "seed": "seed"}
# Passed to every call as they are (litellm takes them for the providers that have them).
PASSED_PARAMS = {"top_k", "presence_penalty", "frequency_penalty", "stop", "logit_bias", "reasoning_effort",
                 "user", "api_version", "thinking", "reasoning", "parallel_tool_calls", "verbosity"}
RENAMED_PARAMS = {"topK": "top_k", "stopSequences": "stop", "presencePenalty": "presence_penalty",
                  "frequencyPenalty": "frequency_penalty"}
# Read past with a word: they change nothing Spread sends.
READ_PAST = {"stream": "Spread streams or not by itself", "showThinking": "it only changes promptfoo's display"}
# Gemini's generationConfig keys that are the run's settings or parameters.
GENERATION_SETTINGS = {"temperature": "temperature", "maxOutputTokens": "max_tokens", "max_output_tokens": "max_tokens",
                       "topP": "top_p", "top_p": "top_p", "seed": "seed"}
# Top-level keys with nothing to run: read past without a word.
IGNORED_KEYS = {"description", "tags", "sharing", "outputPath", "writeLatestResults", "metadata", "$schema"}
TOP_LEVEL_REASONS = {
    "redteam": "red-team generation is promptfoo's own (`promptfoo redteam`)",
    "env": "Spread reads keys and settings from its own environment",
    "nunjucksFilters": "custom filters run JavaScript; Spread never runs code",
    "extensions": "extension hooks run code; Spread never runs code",
    "derivedMetrics": "derived metrics are computed by expressions or code after the run",
    "tracing": "Spread records no traces",
}
TEST_KEYS = {"vars", "assert", "threshold", "description", "metadata", "options"}
DEFAULT_N = 5
ENV_TEMPLATE = re.compile(r"^\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
# promptfoo's assertion types (0.120), for reading a CSV `__expected` cell as it does.
PROMPTFOO_TYPES = (
    "answer-relevance bleu classifier contains contains-all contains-any contains-html contains-json contains-sql "
    "contains-xml context-faithfulness context-recall context-relevance conversation-relevance cost equals "
    "factuality finish-reason g-eval gleu guardrails icontains icontains-all icontains-any is-html is-json "
    "is-refusal is-sql is-valid-function-call is-valid-openai-function-call is-valid-openai-tools-call is-xml "
    "javascript latency levenshtein llm-rubric pi meteor model-graded-closedqa model-graded-factuality moderation "
    "perplexity perplexity-score python regex rouge-n ruby similar starts-with trace-error-spans trace-span-count "
    "trace-span-duration webhook human select-best max-score").split()
CSV_ASSERTION = re.compile(r"^(not-)?(" + "|".join(sorted(map(re.escape, PROMPTFOO_TYPES), key=len, reverse=True))
                           + r")(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
CSV_LIST_TYPES = {"contains-all", "contains-any", "icontains-all", "icontains-any"}
CSV_DEFAULT_THRESHOLD = {t: 0.75 for t in ("answer-relevance", "classifier", "context-faithfulness", "context-recall",
                                           "context-relevance", "cost", "latency", "levenshtein", "perplexity-score",
                                           "perplexity", "rouge-n", "starts-with")} | {"similar": 0.8}
# promptfoo's graders that Spread's llm-rubric judge stands in for: the rubric it asks, and why it differs.
GRADED_AS_RUBRIC = {
    "g-eval": ("{value}", "promptfoo's G-Eval scores 0–1 over generated steps; Spread's judge passes or fails the "
                          "answer against the same criteria"),
    "factuality": ("The answer is factually consistent with this reference answer (it may be a subset or a "
                   "superset of it, but never contradicts it): {value}",
                   "promptfoo's factuality picks one of five relations to the reference; Spread's judge passes "
                   "the answer when it does not contradict the reference"),
    "model-graded-closedqa": ("The answer meets this criterion: {value}",
                              "promptfoo's closed-QA grader answers Y/N to the criterion; Spread's judge does "
                              "the same with its own prompt"),
}
GRADED_AS_RUBRIC["model-graded-factuality"] = GRADED_AS_RUBRIC["factuality"]  # promptfoo's older name
# promptfoo's tool-call validators for other providers' call shapes: Spread keeps every
# provider's calls in one shape, so its own validator is the same check.
SAME_CHECK = {"is-valid-function-call": "is-valid-openai-tools-call",
              "is-valid-openai-function-call": "is-valid-openai-tools-call"}
NOT_MAPPED_REASON = {
    "javascript": "runs JavaScript code; Spread never runs code from a check",
    "python": "runs Python code; Spread never runs code from a check",
    "ruby": "runs Ruby code; Spread never runs code from a check",
    "webhook": "sends every answer to a web service; Spread sends answers nowhere",
    "perplexity": "needs the tokens' log-probabilities, which Spread does not record",
    "perplexity-score": "needs the tokens' log-probabilities, which Spread does not record",
}
PROMPT_CODE = re.compile(r"\.(py|js|ts|mjs|cjs|mts|cts|go|rb)(:[\w.]+)?$")
PROMPT_EXTENSIONS = (".cjs", ".cts", ".j2", ".js", ".json", ".jsonl", ".md", ".mjs", ".mts", ".py", ".ts", ".txt",
                     ".yml", ".yaml")
MEDIA = re.compile(r"\.(jpe?g|png|gif|webp|bmp|svg|tiff?|mp3|wav|ogg|flac|m4a|aac|mp4|mov|webm|avi|mkv|pdf)$", re.I)
REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


class Unmappable(SpreadError):
    """What in a suite has no Spread equivalent, or stops it: every item, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} part{'s' if len(problems) != 1 else ''} of the promptfoo config cannot "
                         f"be mapped (nothing was written): " + "; ".join(problems), "config")
        self.problems = problems


@dataclass
class Suite:
    """A mapped suite: the run's plan and the endpoints it needs (its models', its graders')."""

    spec: plan.RunSpec
    endpoints: list[Endpoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what maps with a difference worth knowing
    skipped: list[str] = field(default_factory=list)  # what was left out, and why

    def summary(self) -> dict:
        return {"variants": [plan.variant_label(k, v.name) for k, v in enumerate(self.spec.variants)],
                "inputs": len(self.spec.inputs), "endpoints": list(self.spec.models),
                "temperatures": self.spec.temperatures, "n": self.spec.n,
                "checks": len(self.spec.checks) + sum(len(json.loads(row.get(TEST_CHECKS) or "[]"))
                                                      for row in self.spec.inputs),
                "planned": self.spec.planned(), "notes": self.notes, "skipped": self.skipped}


def read(store: Store, path: str | Path, *, n: int | None = None, strict: bool = True,
         judge_model: str | None = None) -> Suite:
    """The suite in a promptfoo config file, mapped. `strict`: refuse it (Unmappable) when any
    part has no Spread equivalent; else leave those parts out and list them in `skipped`.
    `judge_model` grades every model-graded assertion in place of the suite's graders."""
    path = Path(path)
    data = read_yaml(path, "config")
    if not isinstance(data, dict):
        raise SpreadError(f"{path}: a promptfoo config is a mapping (prompts, providers, tests)", "config")
    reader = _Reader(store, path.parent, strict=strict, judge_model=(judge_model or "").strip() or None)
    return reader.suite(data, n)


def write(store: Store, suite: Suite, *, who: str = "") -> int:
    """Add the suite's endpoints that are not in the catalogue yet, then record the run; its id.
    Every provider is checked first (its key set, its server reachable), so a refusal writes nothing."""
    plan.validate(store, suite.spec)
    check_judges(store, suite)
    add_endpoints(store, suite, who=who)
    return plan.create(store, suite.spec, created_by=who)


def check_judges(store: Store, suite: Suite) -> None:
    """Every judge the checks name can be called (known, its key set, its server reachable):
    a one-line SpreadError before anything is written, not a failed grade after the run."""
    rows = [json.loads(row.get(TEST_CHECKS) or "[]") for row in suite.spec.inputs]
    judges = dict.fromkeys(c["judge"] for c in suite.spec.checks + [c for row in rows for c in row]
                           if c.get("judge"))
    own = {e.name: e for e in suite.endpoints}
    for judge in judges:
        endpoint = own.get(judge) or endpoints.resolve(store, judge)
        try:
            endpoints.check(endpoint)
        except SpreadError as e:
            raise SpreadError(f"the judge {judge!r}: {e}", "checks") from None


def playground_plan(suite: Suite) -> dict:
    """The Playground's plan (its widget keys, as `drafts` keeps them) for a mapped suite:
    every check travels with its input (`test.checks`), so weights and thresholds hold."""
    spec = suite.spec
    systems = {v.system for v in spec.variants}
    if len(systems) > 1 or any(v.messages or v.request() for v in spec.variants):
        raise SpreadError("the Playground has one system message for every wording and no per-suite tools, and "
                          "this suite's prompts differ in theirs or carry tools: run it with spread import-promptfoo",
                          "config")
    default = [checks_module.from_dict(c) for c in spec.checks]
    rows = []
    for row in spec.inputs:
        own = [checks_module.from_dict(c) for c in json.loads(row.get(TEST_CHECKS) or "[]")]
        combined = [c.as_dict() for c in default + own]
        rows.append(row | ({TEST_CHECKS: json.dumps(combined, ensure_ascii=False)} if combined else {}))
    out = {
        "system": spec.variants[0].system if spec.variants else "",
        "variants": list(range(len(spec.variants))), "variant_seq": len(spec.variants),
        "inputs_source": "pasted text" if any(rows) else "none",
        "inputs_pasted": "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows if row),
        "models": list(spec.models), "temperatures": ", ".join(f"{t:g}" for t in spec.temperatures),
        "n": spec.n, "max_tokens": spec.max_tokens or 256, "seed": "" if spec.seed is None else str(spec.seed),
        "concurrency": spec.concurrency, "name": spec.name, "checks_text": "",
    }
    for k, variant in enumerate(spec.variants):
        out[f"prompt_{k}"], out[f"variant_name_{k}"] = variant.prompt, variant.name
    return out


def add_endpoints(store: Store, suite: Suite, *, who: str = "") -> None:
    """The suite's endpoints not in the catalogue yet (the Playground runs them by name)."""
    new = [e for e in suite.endpoints if endpoints.get(store, e.name) is None]
    if new:
        endpoints.add_all(store, new, who=who)


@dataclass
class _Provider:
    endpoint: Endpoint
    settings: dict  # the run's: temperature, max_tokens, top_p, seed
    shape: dict  # the variants': system, tools, tool_choice, response_format
    where: str
    prompts: list | None = None  # the prompt labels promptfoo limits it to


class _Reader:
    def __init__(self, store: Store, base: Path, *, strict: bool, judge_model: str | None):
        self.base, self.store, self.strict, self.judge_model = base, store, strict, judge_model
        self.problems: list[str] = []
        self.skipped: list[str] = []
        self.notes: list[str] = []
        self.graders: list[Endpoint] = []
        self.templates: dict = {}
        self.chat_templates: dict[str, tuple[str, str]] = {}  # input column -> (template, where)

    def problem(self, text: str) -> None:
        """What stops the suite in either mode (a file that cannot be read, nothing left to run)."""
        self.problems.append(text)

    def skip(self, text: str) -> None:
        """What is left out of the suite (in strict mode: what refuses it)."""
        if text not in self.skipped:
            self.skipped.append(text)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def suite(self, data: dict, n: int | None) -> Suite:
        handled = {"prompts", "providers", "targets", "tests", "defaultTest", "evaluateOptions", "scenarios",
                   "assertionTemplates"}
        for key in sorted(set(data) - IGNORED_KEYS - handled):
            self.skip(f"top-level {key!r} left out: {TOP_LEVEL_REASONS.get(key, 'no Spread equivalent')}")
        templates_ = data.get("assertionTemplates") or {}
        self.templates = templates_ if isinstance(templates_, dict) else {}
        options = data.get("evaluateOptions") or {}
        for key in sorted(set(options) - {"maxConcurrency", "repeat", "cache", "showProgressBar", "delay"}):
            self.skip(f"evaluateOptions.{key} left out: no Spread equivalent")
        variants = self.variants(data.get("prompts"))
        providers = self.providers(data.get("providers", data.get("targets")))
        variants = _unique_names(self.apply_shapes(variants, providers))
        default = self.default_test(data.get("defaultTest"))
        rows = self.tests(data.get("tests"), data.get("scenarios"), default)
        rows = self.fill_unset(variants, rows)
        settings = self.run_settings([p.settings for p in providers])
        if not self.problems:  # (a refusal already listed says why)
            if data.get("prompts") is not None and not variants:
                self.problem("no prompt is left to run")
            if data.get("providers", data.get("targets")) is not None and not providers:
                self.problem("no provider is left to run")
        if self.strict:
            self.problems += self.skipped
        if self.problems:
            raise Unmappable(self.problems)
        repeat = options.get("repeat")
        models = [p.endpoint for p in providers]
        spec = plan.RunSpec(
            variants=variants, inputs=rows, models=[e.name for e in models],
            temperatures=settings["temperatures"], n=n or (repeat if isinstance(repeat, int) and repeat > 1
                                                            else DEFAULT_N),
            max_tokens=settings.get("max_tokens", 256), top_p=settings.get("top_p"), seed=settings.get("seed"),
            checks=[c.as_dict() for c in default["checks"]], name=str(data.get("description") or "")[:100],
            concurrency=int(options.get("maxConcurrency") or 8),
            endpoints={e.name: e.settings() for e in models},
        )
        try:
            spec = plan.validate(self.store, spec, check_providers=False)
        except SpreadError as e:
            raise Unmappable([str(e)]) from None
        added = models + [g for g in self.graders if g.name not in {e.name for e in models}]
        return Suite(spec, added, self.notes, self.skipped)

    # --- prompts ----------------------------------------------------------------------
    def variants(self, prompts) -> list[plan.Variant]:
        if prompts is None:
            self.problem("no prompts")
            return []
        if isinstance(prompts, str):
            prompts = [prompts]
        if isinstance(prompts, dict):  # the legacy map {path: label}
            prompts = [{"raw": key, "label": label} for key, label in prompts.items()]
        if not isinstance(prompts, list):
            self.problem("prompts: a list of prompts")
            return []
        out = []
        for number, item in enumerate(prompts, start=1):
            label, where, config = "", f"prompt {number}", {}
            if isinstance(item, dict):
                label = str(item.get("label") or "")
                config = item.get("config") or {}
                for key in sorted(set(item) - {"id", "raw", "label", "config"}):
                    self.skip(f"{where}: {key!r} left out: no Spread equivalent")
                item = item.get("raw") if item.get("raw") is not None else item.get("id")
            if isinstance(item, list):  # the messages themselves
                made = [self.conversation(item, label, where)]
            elif isinstance(item, str):
                made = self.prompt(item, label, where)
            else:
                self.problem(f"{where}: neither text, messages nor a file")
                made = []
            shape = self.prompt_config(config, where)
            out += [replace(v, **shape) for v in made if v is not None]
        return out

    def prompt_config(self, config, where: str) -> dict:
        """A prompt's own `config`: its response format, tools and tool choice are the variant's."""
        if not isinstance(config, dict):
            self.skip(f"{where}: config left out: not a mapping")
            return {}
        shape = {}
        for name, value in config.items():
            if name in ("response_format", "responseFormat"):
                shape["response_format"] = self.response_format(value, where)
            elif name == "tools":
                shape["tools"] = self.tools(value, where)
            elif name in ("tool_choice", "toolChoice"):
                shape["tool_choice"] = _tool_choice(value)
            else:
                self.skip(f"{where}: config.{name} left out: a prompt's own settings other than its response "
                          "format and tools have no Spread equivalent")
        return {k: v for k, v in shape.items() if v is not None}

    def prompt(self, raw: str, label: str, where: str) -> list[plan.Variant]:
        """One prompt entry as promptfoo reads it: a file (or a glob of files) when it looks
        like a path, else text — itself a chat when it is a JSON or YAML list of messages."""
        if not _maybe_file_path(raw):
            return [self.text_prompt(raw, label, where)]
        target = raw[len("file://"):] if raw.startswith("file://") else raw
        if PROMPT_CODE.search(target):
            self.skip(f"{where} ({raw}) left out: a prompt function runs code; Spread never runs code")
            return []
        if glob.has_magic(target):
            found = sorted(glob.glob(str(self.base / target)))
            if not found:
                return [self.text_prompt(raw, label, where)]  # promptfoo's fallback: the text itself
            out = []
            for k, path in enumerate(found, start=1):
                out += self.prompt("file://" + str(Path(path).relative_to(self.base)), label, f"{where}.{k}")
            return out
        path = self.base / target
        suffix = path.suffix.lower()
        if not path.is_file() and suffix not in PROMPT_EXTENSIONS:
            self.note(f"{where}: promptfoo reads {raw!r} as a file path; no such file, so it is sent as text")
            return [self.text_prompt(raw, label, where)]
        text = self.read_file(target, where)
        if text is None:
            return []
        name = label or path.stem
        if suffix == ".txt":
            parts = _split_prompts(text)
            return [self.text_prompt(part, name if len(parts) == 1 else f"{name} {k}", where, parse_chat=False)
                    for k, part in enumerate(parts, start=1)]
        if suffix == ".csv":
            rows = _csv_prompts(text)
            return [self.text_prompt(p, row_label or label or f"{path.stem} {k}", f"{where} row {k}")
                    for k, (p, row_label) in enumerate(rows, start=1)]
        if suffix == ".jsonl":
            lines = [line for line in text.splitlines() if line.strip()]
            return [self.text_prompt(line, name if len(lines) == 1 else f"{name} {k}", f"{where} line {k}")
                    for k, line in enumerate(lines, start=1)]
        if suffix in (".json", ".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                if not templates.is_jinja(text):
                    self.problem(f"{where} ({raw}): not valid {suffix[1:].upper()}")
                    return []
                return [self.chat_template(text, name, f"{where} ({raw})")]
            if isinstance(data, str):
                return [self.text_prompt(data, name, where)]
            if isinstance(data, dict) and isinstance(data.get("messages"), list):
                data = data["messages"]
            variant = self.conversation(data, name, f"{where} ({raw})")
            return [variant] if variant else []
        return [self.text_prompt(text, name, where, parse_chat=False)]  # .md, .j2 and others: whole

    def chat_template(self, text: str, name: str, where: str) -> plan.Variant:
        """A chat file that is JSON or YAML only once its Nunjucks is rendered (loops over a
        history, `| dump`): promptfoo renders it with each test's vars, then reads the
        messages; so does the import, keeping each test's conversation in an input column
        that the variant's one turn places (core/prompts/conversation.py, history turns)."""
        column, k = f"{name} messages", 2
        while column in self.chat_templates:
            column, k = f"{name} messages {k}", k + 1
        self.chat_templates[column] = (text, where)
        self.note(f"{where}: a Nunjucks chat file, rendered with each test's vars at import; each test's "
                  f"conversation is its input column {column!r}")
        turns = [{"role": conversation.HISTORY, "from": column}]
        return plan.Variant(conversation.text(turns), "", name, messages=turns)

    def render_chats(self, values: dict, where: str) -> dict[str, str] | None:
        """Each Nunjucks chat file rendered with one test's vars, as JSON messages; None: refused."""
        out = {}
        for column, (text, file_where) in self.chat_templates.items():
            import yaml

            try:
                rendered = templates.render(text, _nunjucks_values(values))
                messages = conversation.checked(yaml.safe_load(rendered), f"{file_where} for {where}")
            except (SpreadError, TypeError, ValueError, yaml.YAMLError) as e:
                self.problem(f"{file_where}: rendered with the vars of {where}, not a list of messages "
                             f"({' '.join(str(e).split())[:160]})")
                return None
            out[column] = json.dumps(messages, ensure_ascii=False)
        return out

    def text_prompt(self, text: str, label: str, where: str, *, parse_chat: bool = True) -> plan.Variant | None:
        stripped = text.strip()
        if parse_chat and (stripped.startswith("- role:") or stripped.startswith("[")):
            import yaml

            try:
                data = yaml.safe_load(stripped)
            except yaml.YAMLError:
                data = None
            if isinstance(data, list) and data and all(isinstance(m, dict) and "role" in m for m in data):
                return self.conversation(data, label, where)
        return plan.Variant(text, "", label)

    def conversation(self, messages, label: str, where: str) -> plan.Variant | None:
        """A chat prompt: a system and a user turn map onto a variant; longer, a conversation variant."""
        if not (isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)):
            self.problem(f"{where}: a chat prompt is a list of {{role, content}} messages")
            return None
        kept = []
        for number, message in enumerate(messages, start=1):
            content = message.get("content")
            if isinstance(content, list):
                dropped = sorted({str(p.get("type")) for p in content
                                  if isinstance(p, dict) and p.get("type") != "text"})
                if dropped:
                    self.skip(f"{where}: message {number}'s {', '.join(dropped)} part(s) left out: Spread sends "
                              "text only")
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
            elif content is not None and not isinstance(content, str):
                content = json.dumps(content, ensure_ascii=False)
            kept.append(dict(message, content=content))
        try:
            checked = conversation.checked(kept, where, templated=True)
        except SpreadError as e:
            self.problem(str(e))
            return None
        roles = [m["role"] for m in checked]
        if roles in (["user"], ["system", "user"]) and all(isinstance(m.get("content"), str) for m in checked):
            return plan.Variant(checked[-1]["content"], checked[0]["content"] if len(roles) == 2 else "", label)
        return plan.Variant(conversation.text(checked), "", label, messages=checked)

    def apply_shapes(self, variants: list[plan.Variant], providers: list[_Provider]) -> list[plan.Variant]:
        """Provider tools, tool choice, response format and system instruction: a Spread run
        sends one set to every model, so they map when every provider asks for the same."""
        out = list(variants)
        limited = [p for p in providers if p.prompts is not None]
        for p in limited:
            self.note(f"{p.where}: promptfoo runs it on the prompts {', '.join(map(str, p.prompts))} only; a Spread "
                      "run samples every prompt on every provider")
        for key in ("system", "tools", "tool_choice", "response_format"):
            values = [p.shape.get(key) for p in providers]
            given = [v for v in values if v is not None]
            if not given:
                continue
            if len(given) < len(values) or any(v != given[0] for v in given):
                for p in providers:
                    if p.shape.get(key) is not None:
                        self.skip(f"{p.where}: its {key.replace('_', ' ')} left out: a Spread run sends the same "
                                  "to every model, and the providers differ in it")
                continue
            value = given[0]
            updated = []
            for variant in out:
                if key == "system":
                    variant = _with_system(variant, value)
                elif key == "tool_choice" and variant.tools is None:
                    self.skip(f"tool choice {value!r} left out: no tools are sent")
                elif getattr(variant, key) is None:  # a prompt's own config wins, as in promptfoo
                    variant = replace(variant, **{key: value})
                updated.append(variant)
            out = updated
        for variant in out:  # a named tool choice: OpenAI's object
            if variant.tool_choice is not None:
                try:
                    variant.tool_choice = shapes.checked_tool_choice(variant.tool_choice, variant.tools)
                except SpreadError as e:
                    self.skip(f"tool choice left out: {e}")
                    variant.tool_choice = None
        return out

    # --- providers --------------------------------------------------------------------
    def providers(self, providers) -> list[_Provider]:
        if providers is None:
            self.problem("no providers")
            return []
        if isinstance(providers, (str, dict)):
            providers = [providers]
        out, names = [], set()
        expanded = []
        for item in providers:  # `file://providers.yaml`: one provider or a list, as promptfoo loads it
            target = item[len("file://"):] if isinstance(item, str) and item.startswith("file://") else ""
            if target.lower().endswith((".yaml", ".yml", ".json")):
                loaded = self.structured_file(target, f"providers {target}")
                expanded += loaded if isinstance(loaded, list) else [loaded] if loaded else []
            else:
                expanded.append(item)
        for number, item in enumerate(expanded, start=1):
            if isinstance(item, str):
                item = {"id": item}
            elif isinstance(item, dict) and "id" not in item and len(item) == 1:
                (pid, rest), = item.items()  # the older {id: {config}} shape
                item = {"id": pid, **(rest or {})}
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                self.problem(f"provider {number}: needs an id")
                continue
            mapped = self.provider(item, f"provider {number} ({item['id'].strip()})")
            if mapped is None:
                continue
            endpoint = mapped.endpoint
            base_name, k = endpoint.name, 2
            while endpoint.name in names:
                endpoint.name, k = f"{base_name} #{k}", k + 1
            names.add(endpoint.name)
            out.append(mapped)
        return out

    def provider(self, item: dict, where: str) -> _Provider | None:
        """One provider as an endpoint with its run settings and request shape, or None
        (left out and listed, or a problem)."""
        pid = item["id"].strip()
        for key in sorted(set(item) - {"id", "label", "config", "prompts"}):
            self.skip(f"{where}: {key!r} left out: no Spread equivalent")
        if pid == "echo":
            endpoint = Endpoint(name=str(item.get("label") or "echo")[:endpoints.MAX_NAME], model=ECHO_MODEL)
            for key in sorted(item.get("config") or {}):
                self.skip(f"{where}: config.{key} left out: the echo model takes no settings")
            return _Provider(endpoint, {}, {}, where, _prompt_labels(item.get("prompts")))
        model = self.model_id(pid, where)
        if model is None:
            return None
        config = item.get("config") or {}
        if isinstance(config, str) and config.startswith("file://"):
            config = self.structured_file(config[len("file://"):], f"{where} config") or {}
        if not isinstance(config, dict):
            self.problem(f"{where}: config is a mapping")
            return None
        config = dict(config)
        api_base = config.pop("apiBaseUrl", None) or config.pop("baseUrl", None)
        host = config.pop("apiHost", None)
        if host and not api_base:
            api_base = host if str(host).startswith("http") else f"https://{host}"
        key_env = config.pop("apiKeyEnvar", None)
        key = config.pop("apiKey", None)
        before = len(self.problems)
        if key is not None:
            match = ENV_TEMPLATE.match(str(key))
            if match and not key_env:
                key_env = match.group(1)
            elif not match:
                self.problem(f"{where}: config.apiKey is written in the file; give the variable's name instead "
                             "(config.apiKeyEnvar: NAME)")
        settings, params, shape = {}, {}, {}
        timeout_s = None
        prefix = pid.split(":")[0]
        for name, value in config.items():
            if name in RUN_SETTINGS:
                settings[RUN_SETTINGS[name]] = value
            elif name in PASSED_PARAMS:
                params[name] = value
            elif name in RENAMED_PARAMS:
                params[RENAMED_PARAMS[name]] = value
            elif name in READ_PAST:
                self.note(f"{where}: config.{name} read past: {READ_PAST[name]}")
            elif name == "region" and prefix == "bedrock":
                params["aws_region_name"] = value
            elif name == "region" and prefix == "vertex":
                params["vertex_location"] = value
            elif name in ("projectId", "project") and prefix == "vertex":
                params["vertex_project"] = value
            elif name in ("timeoutMs", "timeout"):
                timeout_s = float(value) / 1000 if name == "timeoutMs" else float(value)
            elif name == "generationConfig" and isinstance(value, dict):
                self.generation_config(value, where, settings, params, shape)
            elif name == "systemInstruction":
                shape["system"] = self.system_instruction(value, where)
            elif name in ("system", "systemPrompt") and isinstance(value, str):
                shape["system"] = value
            elif name == "tools":
                shape["tools"] = self.tools(value, where)
            elif name == "tool_choice" or name == "toolChoice":
                shape["tool_choice"] = _tool_choice(value)
            elif name in ("response_format", "responseFormat"):
                shape["response_format"] = self.response_format(value, where)
            else:
                self.skip(f"{where}: config.{name} left out: no Spread equivalent")
        if len(self.problems) > before:
            return None
        shape = {k: v for k, v in shape.items() if v is not None}
        endpoint = Endpoint(name=str(item.get("label") or pid)[:endpoints.MAX_NAME], model=model,
                            api_base=api_base, key_env=key_env, params=params, timeout_s=timeout_s)
        try:
            endpoint = endpoints.validate(endpoint)
        except SpreadError as e:
            self.problem(f"{where}: {e}")
            return None
        existing = endpoints.get(self.store, endpoint.name)
        if existing is not None and existing.settings() != endpoint.settings():
            self.problem(f"{where}: the catalogue already has an endpoint named {endpoint.name!r} with other "
                         "settings; give the provider a label")
            return None
        return _Provider(endpoint, settings, shape, where, _prompt_labels(item.get("prompts")))

    def model_id(self, pid: str, where: str) -> str | None:
        """A promptfoo provider id as a litellm id; None (left out, listed) when Spread cannot call it."""
        parts = pid.split(":")
        prefix = parts[0]
        if prefix not in PROVIDERS or len(parts) < 2 or not parts[-1]:
            self.skip(f"{where} left out: not a model provider Spread can call (it maps echo and "
                      f"{', '.join(sorted(PROVIDERS))})")
            return None
        kind = parts[1] if len(parts) > 2 else None
        if kind in CHAT_READINGS and prefix in ("openai", "azure", "google", "vertex"):
            self.note(f"{where}: {CHAT_READINGS[kind]}")
        elif kind is not None and kind not in CHAT_KINDS and prefix not in COLON_IDS:
            self.skip(f"{where} left out: {kind!r} models are not chat models; Spread samples chat models")
            return None
        if kind is not None and (kind in CHAT_KINDS or kind in CHAT_READINGS):
            name = ":".join(parts[2:])
        else:
            name = ":".join(parts[1:])
        return f"{PROVIDERS[prefix]}/{name}"

    def generation_config(self, config: dict, where: str, settings: dict, params: dict, shape: dict) -> None:
        """Gemini's generationConfig: the run's settings, parameters, a response schema, thinking."""
        mime = config.get("responseMimeType", config.get("response_mime_type"))
        schema = config.get("responseSchema", config.get("response_schema"))
        for name, value in config.items():
            if name in GENERATION_SETTINGS:
                settings[GENERATION_SETTINGS[name]] = value
            elif name in RENAMED_PARAMS or name in PASSED_PARAMS:
                params[RENAMED_PARAMS.get(name, name)] = value
            elif name in ("responseMimeType", "response_mime_type", "responseSchema", "response_schema"):
                continue
            elif name in ("thinkingConfig", "thinking_config") and isinstance(value, dict) \
                    and isinstance(value.get("thinkingBudget", value.get("thinking_budget")), int):
                budget = value.get("thinkingBudget", value.get("thinking_budget"))
                params["thinking"] = {"type": "enabled", "budget_tokens": budget}
            elif name in ("response_modalities", "responseModalities") and \
                    [str(m).lower() for m in value or []] in ([], ["text"]):
                continue  # text: what Spread asks for anyway
            else:
                self.skip(f"{where}: config.generationConfig.{name} left out: no Spread equivalent")
        if mime == "application/json" or schema is not None:
            shape["response_format"] = self.response_format(schema if schema is not None else {"type": "json_object"},
                                                            where)
        elif mime not in (None, "text/plain"):
            self.skip(f"{where}: config.generationConfig response type {mime!r} left out")

    def system_instruction(self, value, where: str) -> str | None:
        if isinstance(value, str) and value.startswith("file://"):
            text = self.read_file(value[len("file://"):], f"{where} systemInstruction")
            return None if text is None else text.strip()
        if isinstance(value, dict) and isinstance(value.get("parts"), list):
            return "".join(p.get("text", "") for p in value["parts"] if isinstance(p, dict))
        if isinstance(value, str):
            return value
        self.skip(f"{where}: config.systemInstruction left out: neither text nor {{parts: [{{text}}]}}")
        return None

    def tools(self, value, where: str) -> list[dict] | None:
        """Tools in OpenAI's, Anthropic's or Gemini's shape (inline or file://), as OpenAI's."""
        if isinstance(value, str) and value.startswith("file://"):
            value = self.structured_file(value[len("file://"):], f"{where} tools")
            if value is None:
                return None
        converted = []
        for tool in value if isinstance(value, list) else [value]:
            declarations = tool.get("functionDeclarations", tool.get("function_declarations")) \
                if isinstance(tool, dict) else None
            if isinstance(declarations, list):
                converted += [{"type": "function", "function": _gemini_function(f)} for f in declarations]
            elif isinstance(tool, dict) and "input_schema" in tool and "name" in tool:
                converted.append({"type": "function", "function": {
                    "name": tool["name"], "description": tool.get("description", ""),
                    "parameters": tool["input_schema"]}})
            elif isinstance(tool, dict) and ("function" in tool or "name" in tool):
                converted.append(tool)
            else:
                kind = next(iter(tool), "?") if isinstance(tool, dict) else type(tool).__name__
                self.skip(f"{where}: tool {kind!r} left out: Spread sends function tools only")
        if not converted:
            return None
        try:
            return shapes.checked_tools(converted, f"{where} tools")
        except SpreadError as e:
            self.skip(f"{where}: its tools left out: {e}")
            return None

    def response_format(self, value, where: str) -> dict | None:
        if isinstance(value, str) and value.startswith("file://"):
            value = self.structured_file(value[len("file://"):], f"{where} response_format")
            if value is None:
                return None
        if isinstance(value, dict) and value.get("type") == "json_schema" and isinstance(value.get("schema"), dict) \
                and "json_schema" not in value:  # Responses API shape: {type, name, schema}
            value = {"type": "json_schema", "json_schema": {k: v for k, v in value.items() if k != "type"}}
        if isinstance(value, dict) and value.get("type") == "json_schema":
            inner = value.get("json_schema") or {}
            if isinstance(inner.get("schema"), str) and inner["schema"].startswith("file://"):
                inner = dict(inner, schema=self.structured_file(inner["schema"][len("file://"):],
                                                                f"{where} response_format"))
                value = dict(value, json_schema=inner)
        try:
            out = shapes.checked_response_format(value)
        except SpreadError as e:
            self.skip(f"{where}: its response format left out: {e}")
            return None
        if isinstance(value, dict) and (value.get("json_schema") or {}).get("strict") is not None:
            out["json_schema"]["strict"] = value["json_schema"]["strict"]
        return out

    def run_settings(self, settings: list[dict]) -> dict:
        """Temperatures, max tokens, top_p and seed are the run's in Spread, not an endpoint's."""
        temperatures = sorted({float(s.get("temperature", 0)) for s in settings}) or [0.0]
        if len(temperatures) > 1:
            self.note(f"the providers set different temperatures ({', '.join(map(str, temperatures))}): "
                      "every provider is sampled at each")
        out = {"temperatures": temperatures}
        for name in ("max_tokens", "top_p", "seed"):
            values = {s[name] for s in settings if s.get(name) is not None}
            if len(values) > 1:
                self.note(f"the providers set different {name} ({', '.join(map(str, sorted(values)))}): "
                          f"the run uses {max(values)}")
            if values:
                out[name] = max(values)
        return out

    # --- tests ------------------------------------------------------------------------
    def default_test(self, default) -> dict:
        if isinstance(default, str) and default.startswith("file://"):
            default = self.structured_file(default[len("file://"):], "defaultTest")
        default = default or {}
        if not isinstance(default, dict):
            self.problem("defaultTest: a mapping (vars, assert, threshold, options)")
            default = {}
        for key in sorted(set(default) - TEST_KEYS):
            self.skip(f"defaultTest.{key} left out: no Spread equivalent")
        options = self.options(default.get("options"), "defaultTest")
        judge = self.grader(options.get("provider"), "defaultTest", None)
        return {"vars": self.vars(default.get("vars") or {}, "defaultTest") or {},
                "checks": self.asserts(default.get("assert") or [], "defaultTest", judge),
                "threshold": default.get("threshold"), "judge": judge, "options": options}

    def options(self, options, where: str) -> dict:
        """A test's `options` Spread reads (its grader, var expansion); the rest left out and listed."""
        options = options or {}
        if not isinstance(options, dict):
            self.skip(f"{where}.options left out: not a mapping")
            return {}
        if "providers" in options and "provider" not in options:  # a spelling promptfoo's examples use
            options = {**options, "provider": options["providers"]}
            options.pop("providers")
        for key in sorted(set(options) - {"provider", "disableVarExpansion"}):
            reason = ("it runs code; Spread never runs code" if "transform" in key.lower()
                      else "Spread's judge asks with its own prompt" if key == "rubricPrompt"
                      else "no Spread equivalent")
            self.skip(f"{where}.options.{key} left out: {reason}")
        return options

    def grader(self, provider, where: str, inherited: str | None) -> str | None:
        """The judge a test's `options.provider` names (an id, {id, config}, or {text, embedding})."""
        if provider is None:
            return inherited
        if isinstance(provider, dict) and ("text" in provider or "embedding" in provider) and "id" not in provider:
            if provider.get("embedding") is not None:
                self.note(f"{where}.options.provider.embedding read past: Spread's similar checks use its own "
                          "embedding model")
            return self.grader(provider.get("text"), where, inherited)
        item = {"id": provider} if isinstance(provider, str) else provider
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            self.skip(f"{where}.options.provider left out: not a provider id")
            return inherited
        if self.judge_model:
            self.note(f"{where}: the grader {item['id']} is replaced by --judge-model {self.judge_model}")
            return self.judge_model
        mapped = self.provider(item, f"{where} grader ({item['id']})")
        if mapped is None:
            return inherited
        endpoint = mapped.endpoint
        if endpoint.api_base or endpoint.key_env or endpoint.params or endpoint.timeout_s:
            if endpoint.name not in {g.name for g in self.graders}:
                self.graders.append(endpoint)
            return endpoint.name  # the catalogue entry, with its server and key
        return endpoint.model

    def tests(self, tests, scenarios, default: dict) -> list[dict[str, str]]:
        given = tests is not None or scenarios is not None
        cases = self.test_cases(tests if tests is not None else ([] if scenarios is not None else [{}]), "test")
        cases += self.scenario_cases(scenarios)
        rows = []
        for where, case in cases:
            row_set = self.test_rows(where, case, default)
            rows += row_set
        if given and not rows and not self.problems:
            self.problem("no test is left to run")
        return rows

    def test_cases(self, tests, label: str) -> list[tuple[str, dict]]:
        if isinstance(tests, str):
            tests = [tests]
        if isinstance(tests, dict) and isinstance(tests.get("path"), str):
            tests = [tests["path"]]
        if not isinstance(tests, list):
            self.problem(f"{label}s: a list of tests or a file")
            return []
        cases = []
        for number, item in enumerate(tests, start=1):
            if isinstance(item, str) and REMOTE.match(item) and not item.startswith("file://"):
                self.skip(f"{label}s from {item.split('?')[0]} left out: Spread reads no remote source "
                          "(download it and give file://PATH)")
            elif isinstance(item, str):
                target = item[len("file://"):] if item.startswith("file://") else item
                found = sorted(glob.glob(str(self.base / target))) if glob.has_magic(target) else [target]
                for path in found:
                    cases += self.test_file(str(Path(path).relative_to(self.base)) if glob.has_magic(target) else path)
            elif isinstance(item, dict):
                cases.append((f"{label} {number}", item))
            else:
                self.problem(f"{label} {number}: a mapping (vars, assert) or file://PATH")
        return cases

    def scenario_cases(self, scenarios) -> list[tuple[str, dict]]:
        """promptfoo's scenarios: every config (a set of vars) crossed with every test of the scenario."""
        if scenarios is None:
            return []
        if isinstance(scenarios, str) and scenarios.startswith("file://"):
            scenarios = self.structured_file(scenarios[len("file://"):], "scenarios")
        cases = []
        for number, scenario in enumerate(scenarios if isinstance(scenarios, list) else [], start=1):
            if isinstance(scenario, str) and scenario.startswith("file://"):
                scenario = self.structured_file(scenario[len("file://"):], f"scenario {number}")
            if not isinstance(scenario, dict):
                self.problem(f"scenario {number}: a mapping (config, tests)")
                continue
            for key in sorted(set(scenario) - {"config", "tests", "description"}):
                self.skip(f"scenario {number}: {key!r} left out: no Spread equivalent")
            configs = scenario.get("config") or [{}]
            tests = self.test_cases(scenario.get("tests") or [{}], f"scenario {number} test")
            for k, config in enumerate(configs if isinstance(configs, list) else [configs], start=1):
                config = config if isinstance(config, dict) else {}
                for where, test in tests:
                    merged = {**config, **test}
                    merged["vars"] = {**(config.get("vars") or {}), **(test.get("vars") or {})}
                    merged["assert"] = list(config.get("assert") or []) + list(test.get("assert") or [])
                    cases.append((f"scenario {number} config {k} {where}", merged))
        return cases

    def test_rows(self, where: str, case: dict, default: dict) -> list[dict[str, str]]:
        for key in sorted(set(case) - TEST_KEYS):
            self.skip(f"{where}: {key!r} left out: no Spread equivalent")
        options = self.options(case.get("options"), where)
        judge = self.grader(options.get("provider"), where, default["judge"])
        variables = self.vars(case.get("vars") or {}, where)
        if variables is None:
            return []
        own = self.asserts(case.get("assert") or [], where, judge)
        threshold = case.get("threshold", default["threshold"])
        expand = not (options.get("disableVarExpansion") or default["options"].get("disableVarExpansion"))
        rows = []
        for raw in _combinations(default["vars"] | variables, expand):
            row = {name: _text(value) for name, value in raw.items()}
            chats = self.render_chats(raw, where)
            if chats is None:
                continue
            row.update(chats)
            if own:
                row[TEST_CHECKS] = json.dumps([c.as_dict() for c in own], ensure_ascii=False)
            if threshold is not None:
                row[TEST_THRESHOLD] = checks_module.js_string(threshold)
            try:
                checks_module.validate(own + default["checks"], [row])
            except SpreadError as e:
                self.problem(f"{where}: {e}")
            rows.append(row)
        return rows

    def vars(self, values, where: str) -> dict | None:
        """A test's vars, file:// values read as promptfoo reads them; None: the test is left out."""
        if isinstance(values, str) and values.startswith("file://"):
            values = self.structured_file(values[len("file://"):], f"{where} vars")
        if not isinstance(values, dict):
            self.problem(f"{where}: vars is a mapping of names to values")
            return {}
        out = {}
        for name, value in values.items():
            if isinstance(value, str) and value.startswith("file://"):
                target = value[len("file://"):]
                if PROMPT_CODE.search(target):
                    self.skip(f"{where}: var {name!r} left out (sent empty): it is computed by {target}; Spread "
                              "never runs code")
                    continue
                if MEDIA.search(target):
                    self.skip(f"{where}: var {name!r} left out (sent empty): it is the file {target} (promptfoo "
                              "sends images, audio and video as base64 and PDFs as their text); Spread's variables "
                              "are text")
                    continue
                text = self.read_file(target, f"{where} var {name!r}")
                if text is None:
                    return None
                if Path(target).suffix.lower() in (".yaml", ".yml"):
                    import yaml

                    try:
                        value = json.dumps(yaml.safe_load(text), ensure_ascii=False, separators=(",", ":"))
                    except yaml.YAMLError:
                        self.problem(f"{where}: var {name!r}: {target} is not valid YAML")
                        return None
                else:
                    value = text.strip()
            out[str(name)] = value
        return out

    def asserts(self, asserts, where: str, judge: str | None) -> list:
        if not isinstance(asserts, list):
            self.problem(f"{where}: assert is a list")
            return []
        out = []
        for number, item in enumerate(asserts, start=1):
            check = self.assertion(item, f"{where} assert {number}", judge)
            if check is not None:
                out.append(check)
        return out

    def assertion(self, item, where: str, judge: str | None):
        if isinstance(item, dict) and isinstance(item.get("$ref"), str):
            name = item["$ref"].rsplit("/", 1)[-1]
            if not item["$ref"].startswith("#/assertionTemplates/") or name not in self.templates:
                self.problem(f"{where}: $ref {item['$ref']} names no assertionTemplates entry")
                return None
            item = {**self.templates[name], **{k: v for k, v in item.items() if k != "$ref"}}
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            self.problem(f"{where}: an assertion is a mapping with a type")
            return None
        kind = item["type"].strip()
        base = kind[4:] if kind.startswith("not-") else kind
        if base in NOT_MAPPED_REASON:
            self.skip(f"{where} ({kind}) left out: it {NOT_MAPPED_REASON[base]}")
            return None
        if base == "assert-set":
            self.skip(f"{where} (assert-set) left out: Spread has no groups of checks")
            return None
        for key in ("transform", "contextTransform"):
            if key in item:
                self.skip(f"{where} ({kind}) left out: its {key} runs JavaScript on the answer; Spread never runs "
                          "code")
                return None
        for key in ("rubricPrompt", "config"):
            if key in item:
                self.skip(f"{where} ({kind}) left out: its {key} has no Spread equivalent")
                return None
        if base in SAME_CHECK:
            self.note(f"{base} is read as {SAME_CHECK[base]}: Spread keeps every provider's tool calls in one "
                      "shape, and checks them against the declared tools the same way")
            kind = kind.replace(base, SAME_CHECK[base])
            base = SAME_CHECK[base]
            item = {**item, "type": kind}
        if not checks_module.known(kind) and base in PROMPTFOO_TYPES and base not in GRADED_AS_RUBRIC:
            self.skip(f"{where} ({kind}) left out: Spread has no such check")
            return None
        item = dict(item)
        if isinstance(item.get("value"), str) and item["value"].startswith("file://"):
            target = item["value"][len("file://"):]
            if PROMPT_CODE.search(target):
                self.skip(f"{where} ({kind}) left out: its value is computed by {target}; Spread never runs code")
                return None
            suffix = Path(target.split(":")[0]).suffix.lower()
            if suffix in (".json", ".yaml", ".yml"):
                item["value"] = self.structured_file(target, where)
            elif suffix == ".txt":
                text = self.read_file(target, where)
                item["value"] = None if text is None else text.strip()
            else:
                self.problem(f"{where}: promptfoo reads an assertion's value from .txt, .json or .yaml files "
                             f"(got {target})")
                return None
            if item["value"] is None:
                return None
        if base in GRADED_AS_RUBRIC and not kind.startswith("not-"):
            rubric, why = GRADED_AS_RUBRIC[base]
            value = item.get("value")
            value = "\n".join(map(str, value)) if isinstance(value, list) else str(value or "")
            item = {k: v for k, v in item.items() if k in ("weight", "metric", "provider")}
            item.update(type="llm-rubric", value=rubric.format(value=value))
            self.note(f"{kind} is read as llm-rubric: {why}")
            kind = base = "llm-rubric"
        if kind == "llm-rubric":
            if not str(item.get("value") or "").strip():
                self.skip(f"{where} (llm-rubric) left out: it has no rubric of its own (promptfoo grades it with "
                          "the suite's rubricPrompt)")
                return None
            own = item.pop("provider", None)
            if isinstance(own, (str, dict)):
                judge = self.grader(own, where, judge)
            if self.judge_model:
                judge = self.judge_model
            if not judge:
                self.skip(f"{where} (llm-rubric) left out: no grader is named; promptfoo would use its default "
                          "grader — give --judge-model NAME")
                return None
            item["judge"] = judge
        elif "provider" in item:
            self.note(f"{where}: its provider read past: Spread's {kind} uses Spread's own models, not the "
                      "assertion's provider")
            item.pop("provider")
        try:
            check = checks_module.from_dict(item)
        except SpreadError as e:
            self.skip(f"{where} left out: {e}")
            return None
        if check.base == "similar" or check.type == "not-similar":
            self.note("similar is judged by Spread's meaning equivalence (the rule of its clusters), not by "
                      "promptfoo's embedding similarity at the threshold")
        return check

    def test_file(self, target: str) -> list[tuple[str, dict]]:
        suffix = Path(target).suffix.lower()
        if PROMPT_CODE.search(target):
            self.skip(f"tests from {target} left out: a test generator runs code; Spread never runs code")
            return []
        if suffix == ".csv":
            text = self.read_file(target, f"tests {target}")
            return [] if text is None else self.csv_tests(text, target)
        if suffix in (".jsonl", ".ndjson"):
            text = self.read_file(target, f"tests {target}")
            cases = []
            for line_number, line in enumerate((text or "").splitlines(), start=1):
                if line.strip():
                    try:
                        cases.append((f"{target} line {line_number}", json.loads(line)))
                    except ValueError:
                        self.problem(f"{target} line {line_number}: not JSON")
            return [(where, _as_test(c)) for where, c in cases]
        if suffix in (".yaml", ".yml", ".json"):
            data = self.structured_file(target, f"tests {target}")
            data = data if isinstance(data, list) else [data] if data else []
            return [(f"{target} test {k}", _as_test(c)) for k, c in enumerate(data, start=1)]
        self.problem(f"tests file://{target}: Spread reads tests from .csv, .jsonl, .yaml or .json files")
        return []

    def csv_tests(self, text: str, target: str) -> list[tuple[str, dict]]:
        """promptfoo's CSV: a column per var; `__expected` (or `__expected1`, …) holds an assertion."""
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        cases = []
        for row in reader:
            where = f"{target} line {reader.line_num}"
            test: dict = {"vars": {}, "assert": []}
            thresholds = {}
            for column, value in row.items():
                column, value = (column or "").strip(), value or ""
                if column.startswith("__expected"):
                    if value.strip():
                        test["assert"].append(_csv_assertion(value.strip()))
                elif column == "__threshold":
                    if value.strip():
                        test["threshold"] = float(value)
                elif column.startswith("__config:"):
                    match = re.fullmatch(r"__config:__expected(\d*):threshold", column)
                    if not match:
                        self.problem(f"{where}: column {column!r}: promptfoo takes __config:__expectedN:threshold")
                    elif value.strip():
                        thresholds[int(match.group(1) or 1) - 1] = float(value)
                elif column in ("__description",) or column.startswith("__metadata"):
                    continue
                elif column.startswith("__"):
                    self.skip(f"{target}: column {column!r} left out: no Spread equivalent")
                else:
                    test["vars"][column] = value
            for index, threshold in thresholds.items():
                if index < len(test["assert"]):
                    test["assert"][index]["threshold"] = threshold
            cases.append((where, test))
        return cases

    def fill_unset(self, variants: list[plan.Variant], rows: list[dict]) -> list[dict]:
        """promptfoo's Nunjucks renders a variable no test sets as empty text: so does the run."""
        texts = [t for v in variants for t in ([v.prompt, v.system] if v.messages is None
                                                else [m.get("content") or "" for m in v.messages])]
        names = list(dict.fromkeys(name.split(".")[0].split("[")[0] for t in texts for name in templates.variables(t)))
        rows = rows or [{}]
        unset = [name for name in names if any(name not in row for row in rows)]
        if unset:
            self.note(f"{', '.join('{{' + n + '}}' for n in unset)}: no value in some tests; sent empty, as "
                      "promptfoo's Nunjucks renders a variable that is not set")
        return [{**{name: "" for name in unset}, **row} for row in rows]

    # --- files ------------------------------------------------------------------------
    def read_file(self, target: str, where: str) -> str | None:
        path = Path(target) if Path(target).is_absolute() else self.base / target
        try:
            return path.read_text(encoding="utf-8")
        except OSError as e:
            self.problem(f"{where}: cannot read {target} ({e.strerror or e})")
        except UnicodeDecodeError:
            self.problem(f"{where}: {target} is not UTF-8 text")
        return None

    def structured_file(self, target: str, where: str):
        import yaml

        text = self.read_file(target, where)
        if text is None:
            return None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            self.problem(f"{where}: {target} is not valid YAML or JSON")
            return None


def _maybe_file_path(text: str) -> bool:
    """promptfoo's test for a prompt that names a file (src/prompts/utils.ts, maybeFilePath)."""
    if "\n" in text or any(s in text for s in ("portkey://", "langfuse://", "helicone://")):
        return False
    tokens = text.split(":")
    return (text.startswith("file://") or any(t.endswith(PROMPT_EXTENSIONS) for t in tokens[-2:])
            or (len(text) >= 3 and text[-3] == ".") or (len(text) >= 4 and text[-4] == ".")
            or "*" in text or "/" in text or "\\" in text)


def _split_prompts(text: str) -> list[str]:
    """A .txt prompt file: prompts separated by lines that are `---`, each trimmed."""
    parts, buffer = [], []
    for line in text.splitlines():
        if line.strip() == "---":
            parts.append("\n".join(buffer).strip())
            buffer = []
        else:
            buffer.append(line)
    parts.append("\n".join(buffer).strip())
    return [p for p in parts if p]


def _csv_prompts(text: str) -> list[tuple[str, str]]:
    """A .csv prompt file: one prompt per row of its `prompt` column (and `label`); without
    commas, one per line (a first line `prompt` is the header)."""
    if "," not in text:
        lines = [line for line in text.splitlines() if line.strip()]
        start = 1 if lines and lines[0].strip().lower() == "prompt" else 0
        return [(line, "") for line in lines[start:]]
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    return [(row["prompt"], row.get("label", "")) for row in rows if row.get("prompt")]


def _unique_names(variants: list[plan.Variant]) -> list[plan.Variant]:
    """Variant names are unique in a run: a repeated label gets " #2", " #3"…"""
    seen, out = set(), []
    for variant in variants:
        name, k = variant.name, 2
        while name and name in seen:
            name, k = f"{variant.name} #{k}", k + 1
        seen.add(name)
        out.append(replace(variant, name=name) if name != variant.name else variant)
    return out


def _prompt_labels(prompts) -> list | None:
    if prompts is None:
        return None
    return [prompts] if isinstance(prompts, str) else list(prompts)


def _with_system(variant: plan.Variant, system: str) -> plan.Variant:
    """A provider's system instruction on a variant (before its own system text, as Gemini sends both)."""
    if variant.messages is not None:
        messages = [{"role": "system", "content": system}] + variant.messages
        return replace(variant, messages=messages, prompt=conversation.text(messages))
    return replace(variant, system=system + ("\n\n" + variant.system if variant.system else ""))


def _tool_choice(value):
    if isinstance(value, dict) and value.get("type") in ("tool", "function") and "name" in value:
        return value["name"]  # Anthropic's {type: tool, name}
    if isinstance(value, dict) and value.get("type") in ("auto", "any", "none"):
        return {"any": "required"}.get(value["type"], value["type"])
    if isinstance(value, dict) and isinstance(value.get("functionCallingConfig"), dict):
        mode = str(value["functionCallingConfig"].get("mode", "auto")).lower()
        return {"any": "required"}.get(mode, mode)
    return value


def _gemini_function(declaration: dict) -> dict:
    """A Gemini function declaration as OpenAI's function (its schema types in lower case)."""
    def lower(schema):
        if isinstance(schema, dict):
            return {k: (v.lower() if k == "type" and isinstance(v, str) else lower(v)) for k, v in schema.items()}
        if isinstance(schema, list):
            return [lower(v) for v in schema]
        return schema

    out = {"name": declaration.get("name"), "description": declaration.get("description", "")}
    if declaration.get("parameters") is not None:
        out["parameters"] = lower(declaration["parameters"])
    return out


def _as_test(case) -> dict:
    """A row of a tests file: a test (vars, assert, …), or a bare mapping of vars."""
    if isinstance(case, dict) and set(case) & {"vars", "assert", "options", "threshold"}:
        return case
    return {"vars": case if isinstance(case, dict) else {}}


def _combinations(values: dict, expand: bool) -> list[dict]:
    """promptfoo's rule: a var whose value is a list of text makes one test per item (all
    combinations); a list of anything else (numbers, messages) is passed whole."""
    names = list(values)
    choices = [v if expand and isinstance(v, list) and v and isinstance(v[0], str) else [v]
               for v in values.values()]
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


class _NunjucksObject(dict):
    """A mapping as Nunjucks iterates it: `{% for key, value in mapping %}` gives its pairs."""

    def __iter__(self):
        return iter(self.items())


def _nunjucks_values(value):
    if isinstance(value, dict):
        return _NunjucksObject({k: _nunjucks_values(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_nunjucks_values(v) for v in value]
    return value


def _text(value) -> str:
    """A var as the text a template receives (numbers as JavaScript writes them; objects as JSON)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, (bool, int, float)):
        return checks_module.js_string(value)
    return inputs_module.as_text(value)


def _csv_assertion(text: str) -> dict:
    """A CSV `__expected` cell as promptfoo 0.120 reads it (src/csv.ts, assertionFromString):
    the cell trimmed; `TYPE:VALUE` and `TYPE(THRESHOLD):VALUE` for any of promptfoo's types
    (the value trimmed; list types split on commas); else `equals` the cell."""
    if text.startswith(("javascript:", "fn:", "eval:")) or (text.startswith("file://") and re.search(
            r"\.(js|cjs|mjs|ts|cts|mts)(:\w+)?$", text)):
        return {"type": "javascript", "value": text.split(":", 1)[1] if not text.startswith("file://") else text}
    if text.startswith(("grade:", "llm-rubric:")):
        return {"type": "llm-rubric", "value": text.split(":", 1)[1]}
    if text.startswith("python:") or (text.startswith("file://") and (text.endswith(".py") or ".py:" in text)):
        return {"type": "python", "value": text}
    match = CSV_ASSERTION.match(text)
    if not match:
        return {"type": "equals", "value": text}
    negated, kind, threshold, value = match.groups()
    out: dict = {"type": (negated or "") + kind}
    if kind in CSV_LIST_TYPES:
        if value:
            out["value"] = [part.strip() for part in value.split(",")]
    elif kind in ("contains-json", "is-json"):
        if value is not None:
            out["value"] = value
    else:
        if value is not None:
            out["value"] = value.strip()
        if kind in CSV_DEFAULT_THRESHOLD:
            out["threshold"] = float(threshold) if threshold else CSV_DEFAULT_THRESHOLD[kind]
    if threshold and "threshold" not in out:
        out["threshold"] = float(threshold)
    return out
