"""Spread's core: plain Python, never Streamlit; the pages and the CLI are thin over it.

The folder tree is the architecture. Packages in the order their imports run (each may
import only the packages before it; tests/test_architecture.py enforces this, imports
inside functions included):

    base      config, display, jsonvalue: settings and pure helpers, import no other Spread module
    store     the database: schema, migrations, queries, copies between engines
    prompts   what is sent: templates, inputs, conversations, response shapes
    models    how a model is called: the endpoint catalogue, routes, limits
    run       the plan, the estimate, the engine, where a run executes
    analyse   meaning clusters, spread metrics, wording sensitivity, charts
    review    labels, reviewers' decisions, golden sets
    evaluate  checks, pass rates, the judge, the regression gate
    formats   what crosses the border: promptfoo suites, LiteLLM configs, golden-set files, production traces
    cli       the `spread` command

The one exception is a run's last step, embedding its answers and scoring its checks
(run.runner.execute_and_score, run.own_process): see ALLOWED in tests/test_architecture.py.
"""
