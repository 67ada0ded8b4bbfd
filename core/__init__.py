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
    watch     monitors: golden sets re-sampled on a schedule through the gate, drift signals, alerts
    serve     `spread serve`: an OpenAI-compatible endpoint answering with the majority meaning,
              its calibrated confidence, abstaining when unsure; every request kept as a run
    formats   what crosses the border: promptfoo suites, LiteLLM configs, golden-set files, production traces
    cli       the `spread` command

The exceptions: a run's last step, embedding its answers and scoring its checks, taken
wherever the run executed (run.launch -> evaluate.scoring); a worker's poll running the
monitor checks that are due (run.service -> watch.due); and a run sampled until settled,
judged between rounds by the Spread page's meaning clusters (run.settle -> analyse.settled):
see ALLOWED in tests/test_architecture.py.
"""
