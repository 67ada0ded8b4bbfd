"""Formats: what crosses Spread's border. promptfoo suites in and out, LiteLLM proxy
configs in and out, golden sets as files (JSONL, CSV, Parquet, OpenAI, promptfoo), and
production traces in (traces/: OTLP, OpenInference, Langfuse, OpenAI logs; `spread collect`).

May import: the base modules, core.store, core.prompts, core.models, core.run,
core.analyse, core.review, core.evaluate, core.watch, core.execution and core.serve.
"""
