"""promptfoo's own example suites (tests/data/promptfoo-examples) imported and run end to end
against the loopback OpenAI stub, each in a database of its own, with every provider's
`apiBaseUrl` pointed at the stub and placeholder keys set (no network).

A suite counts as run to completion when every planned call answered without an error.
Providers that speak another protocol than OpenAI's chat completions (Anthropic, Bedrock,
Gemini, Vertex, Cohere, Ollama, Azure's deployment paths) cannot be answered by an
OpenAI stub: those suites import, and their calls fail against the stub, as they should.

    .venv/bin/python bench/bench_promptfoo_examples.py [--json]
"""

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
PLACEHOLDER_KEYS = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AZURE_API_BASE", "AZURE_API_KEY", "CEREBRAS_API_KEY",
                    "ANTHROPIC_API_KEY", "COHERE_API_KEY", "OPENROUTER_API_KEY", "GEMINI_API_KEY", "VERTEXAI_PROJECT",
                    "VERTEXAI_LOCATION", "XAI_API_KEY", "GROQ_API_KEY"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp())
    os.environ.update({key: "placeholder" for key in PLACEHOLDER_KEYS}, AZURE_API_VERSION="2024-10-21",
                      SPREAD_SETTINGS=str(home / "settings.toml"), SPREAD_SECRETS=str(home / "secrets.toml"))
    from openai_stub import StubOpenAI
    from test_promptfoo_examples import JUDGE, REFUSED, SUITES, copy_suite

    from core.store import Store, embeddings, now_iso, responses, runs, write
    from core.formats import promptfoo_config
    from core.models import endpoints
    from core.run import runner

    results = {}
    with StubOpenAI() as stub:
        for name in SUITES:
            if name in REFUSED:
                results[name] = "refused at import: " + REFUSED[name]
                continue
            folder = home / name
            folder.mkdir()
            os.environ["SPREAD_DB"] = str(folder / "spread.db")
            endpoints.add(endpoints.Endpoint(name=JUDGE, model="openai/judge", api_base=stub.base_url,
                                             source="catalogue"))
            suite = promptfoo_config.read(copy_suite(name, folder, stub.base_url), n=1, strict=False,
                                          judge_model=JUDGE)
            run_id = promptfoo_config.write(suite)
            asyncio.run(runner.execute(Store(), run_id))
            with Store().connection() as db:
                rows = responses.of_run(db, run_id)
            errors = [row for row in rows if row["error_type"]]
            results[name] = ("completed" if len(rows) == suite.spec.planned() and not errors else
                             f"{len(errors)} of {len(rows)} calls failed: {errors[0]['error_message'][:100]}")
    completed = sum(r == "completed" for r in results.values())
    if args.json:
        print(json.dumps({"suites": len(results), "completed": completed, "results": results}))
    else:
        for name, result in results.items():
            print(f"{name}: {result}")
        print(f"{completed} of {len(results)} suites ran to completion against the stub")
    return 0


if __name__ == "__main__":
    sys.exit(main())
