"""A promptfoo suite (`promptfooconfig.yaml`) as a Spread run, so a team sees the spread
of its own suite over N samples:

    prompts      -> variants (text prompts, prompt files; a chat prompt file — a JSON or
                    YAML list of {role, content} — becomes a conversation variant)
    providers    -> catalogue endpoints (ids mapped to litellm ids, `apiBaseUrl`, the
                    `config` parameters; a key only as the name of its variable)
    tests        -> inputs (inline, or CSV / JSONL / YAML / JSON files through file://),
                    each test's `assert` its own checks and `threshold` its own bar
    defaultTest  -> applied to every test: its vars, its asserts (the run's checks), its
                    threshold, its grader (`options.provider`, the judge)

Reading is all or nothing: `read()` maps the whole suite or raises `Unmappable`, which
lists everything that cannot map — each item one line, a written key never repeated —
before anything is written. `write()` then adds the endpoints and records the run.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path

from core.config import SpreadError, read_yaml
from core.evaluate import checks as checks_module
from core.evaluate.checks import TEST_CHECKS, TEST_THRESHOLD
from core.run import endpoints, inputs as inputs_module, plan
from core.run.endpoints import Endpoint

# promptfoo provider prefixes -> litellm's (the model name follows the last colon).
PROVIDERS = {
    "openai": "openai", "anthropic": "anthropic", "azure": "azure", "azureopenai": "azure",
    "bedrock": "bedrock", "vertex": "vertex_ai", "google": "gemini", "gemini": "gemini", "mistral": "mistral",
    "groq": "groq", "ollama": "ollama_chat", "openrouter": "openrouter", "togetherai": "together_ai",
    "deepseek": "deepseek", "perplexity": "perplexity", "fireworks": "fireworks_ai", "cohere": "cohere",
    "xai": "xai", "litellm": "litellm_proxy", "cerebras": "cerebras", "huggingface": "huggingface",
}
# The middle part of `openai:chat:gpt-4o` (a chat model is what Spread samples).
CHAT_KINDS = {"chat", "messages", "converse"}
# Provider `config` keys that become the run's own settings, the endpoint's, or a parameter.
RUN_SETTINGS = {"temperature", "max_tokens", "top_p", "seed"}
PASSED_PARAMS = {"top_k", "presence_penalty", "frequency_penalty", "stop", "response_format", "logit_bias",
                 "reasoning_effort", "user", "api_version", "region", "max_completion_tokens"}
# Top-level keys with nothing to run: read past without a word.
IGNORED_KEYS = {"description", "tags", "sharing", "outputPath", "writeLatestResults", "metadata", "$schema"}
TEST_KEYS = {"vars", "assert", "threshold", "description", "metadata", "options"}
DEFAULT_N = 5
ENV_TEMPLATE = re.compile(r"^\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")
# Each assertion of a CSV column `__expected`: `TYPE:VALUE`, `TYPE(THRESHOLD):VALUE`, else an exact value.
CSV_ASSERTION = re.compile(r"^(?P<type>[a-z-]+)(?:\((?P<threshold>[0-9.]+)\))?:(?P<value>.*)$", re.DOTALL)
CSV_ALIASES = {"grade": "llm-rubric", "fn": "javascript", "eval": "javascript"}


class Unmappable(SpreadError):
    """What in a suite has no Spread equivalent: every item, one line each."""

    def __init__(self, problems: list[str]):
        super().__init__(f"{len(problems)} part{'s' if len(problems) != 1 else ''} of the promptfoo config cannot "
                         f"be mapped (nothing was written): " + "; ".join(problems), "config")
        self.problems = problems


@dataclass
class Suite:
    """A mapped suite: the run's plan and the endpoints it needs."""

    spec: plan.RunSpec
    endpoints: list[Endpoint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what maps with a difference worth knowing

    def summary(self) -> dict:
        return {"variants": [plan.variant_label(k, v.name) for k, v in enumerate(self.spec.variants)],
                "inputs": len(self.spec.inputs), "endpoints": [e.name for e in self.endpoints],
                "temperatures": self.spec.temperatures, "n": self.spec.n,
                "checks": len(self.spec.checks) + sum(len(json.loads(row.get(TEST_CHECKS) or "[]"))
                                                      for row in self.spec.inputs),
                "planned": self.spec.planned(), "notes": self.notes}


_VARIANT_TAKES_MESSAGES = "messages" in {f.name for f in fields(plan.Variant)}


def read(path: str | Path, *, n: int | None = None, db_path=None) -> Suite:
    """The suite in a promptfoo config file, mapped; or Unmappable listing every part that is not."""
    path = Path(path)
    data = read_yaml(path, "config")
    if not isinstance(data, dict):
        raise SpreadError(f"{path}: a promptfoo config is a mapping (prompts, providers, tests)", "config")
    reader = _Reader(path.parent, db_path)
    return reader.suite(data, n)


def write(suite: Suite, *, who: str = "", db_path=None) -> int:
    """Add the suite's endpoints that are not in the catalogue yet, then record the run; its id.
    Every provider is checked first (its key set, its server reachable), so a refusal writes nothing."""
    plan.validate(suite.spec, db_path=db_path)
    add_endpoints(suite, who=who, db_path=db_path)
    return plan.create(suite.spec, created_by=who, db_path=db_path)


def playground_plan(suite: Suite) -> dict:
    """The Playground's plan (its widget keys, as `drafts` keeps them) for a mapped suite:
    every check travels with its input (`test.checks`), so weights and thresholds hold."""
    spec = suite.spec
    systems = {v.system for v in spec.variants}
    if len(systems) > 1 or any(getattr(v, "messages", None) for v in spec.variants):
        raise SpreadError("the Playground has one system message for every wording, and this suite's prompts "
                          "differ in theirs: run it with spread import-promptfoo", "config")
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


def add_endpoints(suite: Suite, *, who: str = "", db_path=None) -> None:
    """The suite's endpoints not in the catalogue yet (the Playground runs them by name)."""
    new = [e for e in suite.endpoints if endpoints.get(e.name, db_path=db_path) is None]
    if new:
        endpoints.add_all(new, who=who, db_path=db_path)


class _Reader:
    def __init__(self, base: Path, db_path):
        self.base, self.db_path, self.problems, self.notes = base, db_path, [], []

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def suite(self, data: dict, n: int | None) -> Suite:
        for key in sorted(set(data) - IGNORED_KEYS - {"prompts", "providers", "targets", "tests", "defaultTest",
                                                      "evaluateOptions"}):
            self.problem(f"top-level {key!r}: no Spread equivalent")
        options = data.get("evaluateOptions") or {}
        for key in sorted(set(options) - {"maxConcurrency", "repeat", "cache", "showProgressBar", "delay"}):
            self.problem(f"evaluateOptions.{key}: no Spread equivalent")
        variants = self.variants(data.get("prompts"))
        found = self.endpoints(data.get("providers", data.get("targets")))
        default = self.default_test(data.get("defaultTest"))
        rows = self.tests(data.get("tests"), default)
        settings = self.run_settings([settings for _, settings in found])
        if self.problems:
            raise Unmappable(self.problems)
        repeat = options.get("repeat")
        spec = plan.RunSpec(
            variants=variants, inputs=rows, models=[e.name for e, _ in found],
            temperatures=settings["temperatures"], n=n or (repeat if isinstance(repeat, int) and repeat > 1
                                                            else DEFAULT_N),
            max_tokens=settings.get("max_tokens", 256), top_p=settings.get("top_p"), seed=settings.get("seed"),
            checks=[c.as_dict() for c in default["checks"]], name=str(data.get("description") or "")[:100],
            concurrency=int(options.get("maxConcurrency") or 8),
            endpoints={e.name: e.settings() for e, _ in found},
        )
        try:
            spec = plan.validate(spec, check_providers=False, db_path=self.db_path)
        except SpreadError as e:
            raise Unmappable([str(e)]) from None
        return Suite(spec, [e for e, _ in found], self.notes)

    # --- prompts ----------------------------------------------------------------------
    def variants(self, prompts) -> list[plan.Variant]:
        if prompts is None:
            self.problem("no prompts")
            return []
        if isinstance(prompts, str):
            prompts = [prompts]
        if isinstance(prompts, dict):  # {file://path: label}
            prompts = [{"id": key, "label": label} for key, label in prompts.items()]
        out = []
        for number, item in enumerate(prompts, start=1):
            label = ""
            if isinstance(item, dict):
                label = str(item.get("label") or "")
                item = item.get("raw") if item.get("raw") is not None else item.get("id")
            if not isinstance(item, str):
                self.problem(f"prompt {number}: neither text nor file://PATH")
                continue
            if item.startswith("file://"):
                out += self.prompt_file(item, label, number)
            else:
                out.append(plan.Variant(item, "", label))
        return out

    def prompt_file(self, reference: str, label: str, number: int) -> list[plan.Variant]:
        target = reference[len("file://"):]
        if re.search(r"\.(py|js|ts|mjs|cjs)(:\w+)?$", target):
            self.problem(f"prompt {number} ({reference}): a prompt function runs code; Spread never runs code")
            return []
        text = self.read_file(target, f"prompt {number}")
        if text is None:
            return []
        suffix = Path(target).suffix.lower()
        if suffix in (".json", ".yaml", ".yml"):
            import yaml

            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError:
                self.problem(f"prompt {number} ({reference}): not valid {suffix[1:].upper()}")
                return []
            if isinstance(data, str):
                return [plan.Variant(data, "", label or Path(target).stem)]
            variant = self.conversation(data, label or Path(target).stem, f"prompt {number} ({reference})")
            return [variant] if variant else []
        parts = [p for p in re.split(r"\n-{3,}\n", text) if p.strip()] if suffix == ".txt" else [text]
        name = label or Path(target).stem
        return [plan.Variant(part.strip("\n"), "", name if len(parts) == 1 else f"{name} {k}")
                for k, part in enumerate(parts, start=1)]

    def conversation(self, messages, label: str, where: str) -> plan.Variant | None:
        """A chat prompt: a system and a user turn map onto a variant; a longer conversation
        needs variants that hold messages."""
        if not (isinstance(messages, list) and messages and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in messages)):
            self.problem(f"{where}: a chat prompt is a list of {{role, content}} messages with text content")
            return None
        roles = [m["role"] for m in messages]
        if roles in (["user"], ["system", "user"]):
            return plan.Variant(messages[-1]["content"], messages[0]["content"] if len(roles) == 2 else "", label)
        if _VARIANT_TAKES_MESSAGES:
            last_user = next(m["content"] for m in reversed(messages) if m["role"] == "user") \
                if "user" in roles else ""
            return plan.Variant(last_user, "", label, messages=[dict(m) for m in messages])
        self.problem(f"{where}: a conversation of {len(messages)} turns ({', '.join(roles)}); this version of "
                     "Spread maps a system and a user turn only")
        return None

    # --- providers --------------------------------------------------------------------
    def endpoints(self, providers) -> list[tuple[Endpoint, dict]]:
        if providers is None:
            self.problem("no providers")
            return []
        if isinstance(providers, (str, dict)):
            providers = [providers]
        out, names = [], set()
        for number, item in enumerate(providers, start=1):
            if isinstance(item, str):
                item = {"id": item}
            elif isinstance(item, dict) and "id" not in item and len(item) == 1:
                (pid, rest), = item.items()  # the older {id: {config}} shape
                item = {"id": pid, **(rest or {})}
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                self.problem(f"provider {number}: needs an id")
                continue
            mapped = self.endpoint(item, number)
            if mapped is None:
                continue
            endpoint, settings = mapped
            base_name, k = endpoint.name, 2
            while endpoint.name in names:
                endpoint.name, k = f"{base_name} #{k}", k + 1
            names.add(endpoint.name)
            out.append((endpoint, settings))
        return out

    def endpoint(self, item: dict, number: int) -> tuple[Endpoint, dict] | None:
        pid = item["id"].strip()
        where = f"provider {number} ({pid})"
        before = len(self.problems)
        for key in sorted(set(item) - {"id", "label", "config"}):
            self.problem(f"{where}: {key!r} has no Spread equivalent")
        parts = pid.split(":")
        prefix = parts[0]
        if prefix not in PROVIDERS or len(parts) < 2 or not parts[-1]:
            self.problem(f"{where}: not a model provider Spread can call (it maps {', '.join(sorted(PROVIDERS))})")
            return None
        if len(parts) > 2 and parts[1] not in CHAT_KINDS and prefix not in ("bedrock", "vertex", "litellm"):
            self.problem(f"{where}: {parts[1]!r} models are not chat models; Spread samples chat models")
            return None
        model_name = ":".join(parts[2:]) if len(parts) > 2 and parts[1] in CHAT_KINDS else ":".join(parts[1:])
        config = dict(item.get("config") or {})
        api_base = config.pop("apiBaseUrl", None) or config.pop("baseUrl", None)
        host = config.pop("apiHost", None)
        if host and not api_base:
            api_base = host if str(host).startswith("http") else f"https://{host}"
        key_env = config.pop("apiKeyEnvar", None)
        key = config.pop("apiKey", None)
        if key is not None:
            match = ENV_TEMPLATE.match(str(key))
            if match and not key_env:
                key_env = match.group(1)
            elif not match:
                self.problem(f"{where}: config.apiKey is written in the file; give the variable's name instead "
                             "(config.apiKeyEnvar: NAME)")
        settings, params = {}, {}
        for key_name, value in config.items():
            if key_name in RUN_SETTINGS:
                settings[key_name] = value
            elif key_name in PASSED_PARAMS:
                params[key_name] = value
            else:
                self.problem(f"{where}: config.{key_name} has no Spread equivalent")
        if len(self.problems) > before:
            return None
        endpoint = Endpoint(name=str(item.get("label") or pid)[:endpoints.MAX_NAME],
                            model=f"{PROVIDERS[prefix]}/{model_name}", api_base=api_base, key_env=key_env,
                            params=params)
        try:
            endpoint = endpoints.validate(endpoint)
        except SpreadError as e:
            self.problem(f"{where}: {e}")
            return None
        existing = endpoints.get(endpoint.name, db_path=self.db_path)
        if existing is not None and existing.settings() != endpoint.settings():
            self.problem(f"{where}: the catalogue already has an endpoint named {endpoint.name!r} with other "
                         "settings; give the provider a label")
            return None
        return endpoint, settings

    def run_settings(self, settings: list[dict]) -> dict:
        """Temperatures, max tokens, top_p and seed are the run's in Spread, not an endpoint's."""
        temperatures = sorted({float(s.get("temperature", 0)) for s in settings}) or [0.0]
        if len(temperatures) > 1:
            self.notes.append(f"the providers set different temperatures ({', '.join(map(str, temperatures))}): "
                              "every provider is sampled at each")
        out = {"temperatures": temperatures}
        for name in ("max_tokens", "top_p", "seed"):
            values = {s[name] for s in settings if s.get(name) is not None}
            if len(values) > 1:
                self.notes.append(f"the providers set different {name} ({', '.join(map(str, sorted(values)))}): "
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
        judge = self.options(default.get("options"), "defaultTest", None)
        for key in sorted(set(default) - TEST_KEYS):
            self.problem(f"defaultTest.{key}: no Spread equivalent")
        return {"vars": self.vars(default.get("vars") or {}, "defaultTest"),
                "checks": self.asserts(default.get("assert") or [], "defaultTest", judge),
                "threshold": default.get("threshold"), "judge": judge}

    def options(self, options, where: str, judge: str | None) -> str | None:
        """A test's `options`: its grader (`provider`) becomes the judge of its llm-rubric checks."""
        options = options or {}
        for key in sorted(set(options) - {"provider"}):
            self.problem(f"{where}.options.{key}: no Spread equivalent"
                         + (" (it runs code on the answer; Spread never runs code)" if "transform" in key else ""))
        provider = options.get("provider")
        if isinstance(provider, dict):
            provider = provider.get("id")
        if provider is None:
            return judge
        mapped = self.endpoint({"id": provider} if isinstance(provider, str) else {"id": ""}, 0)
        return mapped[0].model if mapped else judge

    def tests(self, tests, default: dict) -> list[dict[str, str]]:
        if tests is None:
            tests = [{}]
        if isinstance(tests, str):
            tests = [tests]
        cases = []
        for number, item in enumerate(tests, start=1):
            if isinstance(item, str) and item.startswith("file://"):
                cases += self.test_file(item[len("file://"):])
            elif isinstance(item, dict):
                cases.append((f"test {number}", item))
            else:
                self.problem(f"test {number}: a mapping (vars, assert) or file://PATH")
        rows = []
        for where, case in cases:
            for key in sorted(set(case) - TEST_KEYS):
                self.problem(f"{where}: {key!r} has no Spread equivalent")
            judge = self.options(case.get("options"), where, default["judge"])
            own = self.asserts(case.get("assert") or [], where, judge)
            threshold = case.get("threshold", default["threshold"])
            for values in self.expand(default["vars"] | self.vars(case.get("vars") or {}, where)):
                row = dict(values)
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

    def vars(self, values, where: str) -> dict:
        if isinstance(values, str) and values.startswith("file://"):
            values = self.structured_file(values[len("file://"):], f"{where} vars")
        if not isinstance(values, dict):
            self.problem(f"{where}: vars is a mapping of names to values")
            return {}
        out = {}
        for name, value in values.items():
            if isinstance(value, str) and value.startswith("file://"):
                target = value[len("file://"):]
                if Path(target).suffix.lower() not in (".txt", ".md", ".text", ""):
                    self.problem(f"{where}: var {name!r} reads {value}; Spread reads text files only")
                    continue
                value = self.read_file(target, f"{where} var {name!r}")
            out[str(name)] = value
        return out

    def expand(self, values: dict) -> list[dict[str, str]]:
        """promptfoo's rule: a var whose value is a list makes one test per item (all combinations)."""
        names = list(values)
        choices = [v if isinstance(v, list) else [v] for v in values.values()]
        return [{name: _text(v) for name, v in zip(names, combo)} for combo in itertools.product(*choices)]

    def asserts(self, asserts, where: str, judge: str | None) -> list:
        if not isinstance(asserts, list):
            self.problem(f"{where}: assert is a list")
            return []
        out = []
        for number, item in enumerate(asserts, start=1):
            if isinstance(item, dict) and item.get("type") == "assert-set":
                self.problem(f"{where} assert {number}: assert-set has no Spread equivalent")
                continue
            if isinstance(item, dict) and item.get("type") == "llm-rubric" and not item.get("provider"):
                item = dict(item, provider=judge) if judge else item
            if isinstance(item, dict) and isinstance(item.get("provider"), dict):
                item = dict(item, provider=item["provider"].get("id"))
            if isinstance(item, dict) and isinstance(item.get("provider"), str) and ":" in item["provider"]:
                mapped = self.endpoint({"id": item["provider"]}, 0)
                item = dict(item, provider=mapped[0].model if mapped else None)
            try:
                check = checks_module.from_dict(item)
                if check.type == "llm-rubric" and not check.judge:
                    raise SpreadError("llm-rubric needs a grader: set its provider, or defaultTest.options.provider")
            except SpreadError as e:
                self.problem(f"{where} assert {number}: {e}")
                continue
            out.append(check)
        return out

    def test_file(self, target: str) -> list[tuple[str, dict]]:
        suffix = Path(target).suffix.lower()
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
            return [(where, c if isinstance(c, dict) and {"vars", "assert"} & set(c) else {"vars": c})
                    for where, c in cases]
        if suffix in (".yaml", ".yml", ".json"):
            data = self.structured_file(target, f"tests {target}")
            data = data if isinstance(data, list) else [data] if data else []
            return [(f"{target} test {k}", c) for k, c in enumerate(data, start=1)]
        self.problem(f"tests file://{target}: Spread reads tests from .csv, .jsonl, .yaml or .json files")
        return []

    def csv_tests(self, text: str, target: str) -> list[tuple[str, dict]]:
        """promptfoo's CSV: a column per var; `__expected` (or `__expected1`, …) holds an assertion."""
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
        cases = []
        for row in reader:
            where = f"{target} line {reader.line_num}"
            test: dict = {"vars": {}, "assert": []}
            for column, value in row.items():
                column = (column or "").strip()
                if re.fullmatch(r"__expected\d*", column):
                    if value and value.strip():
                        test["assert"].append(_csv_assertion(value))
                elif column == "__threshold":
                    test["threshold"] = float(value) if value.strip() else None
                elif column in ("__description",) or column.startswith("__metadata"):
                    continue
                elif column.startswith("__"):
                    self.problem(f"{where}: column {column!r} has no Spread equivalent")
                else:
                    test["vars"][column] = value
            cases.append((where, test))
        return cases

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
    """`contains:Paris`, `similar(0.8):Paris`, `grade:…` as promptfoo reads them; else an exact value."""
    match = CSV_ASSERTION.match(text.strip())
    if match:
        kind = CSV_ALIASES.get(match.group("type"), match.group("type"))
        base = kind[4:] if kind.startswith("not-") else kind
        if checks_module.known(kind) or kind in checks_module.REFUSED or base in checks_module.REFUSED:
            out = {"type": kind, "value": match.group("value")}
            if match.group("threshold"):
                out["threshold"] = float(match.group("threshold"))
            return out
    if text.strip() in checks_module.DETERMINISTIC:  # a bare type: `is-json`
        return {"type": text.strip()}
    return {"type": "equals", "value": text}
