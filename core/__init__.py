"""Spread's core: plain Python, never Streamlit; the pages and the CLI are thin over it.

The folder tree is the architecture. Packages in the order their imports run (each may
import only the packages before it; tests/test_architecture.py enforces this, imports
inside functions included):

    base      config, display, jsonvalue: settings and pure helpers, import no other Spread module
    store     the database: schema, migrations, queries, copies between engines
    prompts   what is sent: templates, inputs, conversations, response shapes
    models    how a model is called: the endpoint catalogue, routes, limits
    run       the plan, the estimate, the engine
    analyse   meaning clusters, spread metrics, wording sensitivity, charts
    review    labels, reviewers' decisions, golden sets
    evaluate  checks, pass rates, the judge, the regression gate
    watch     monitors: golden sets re-sampled on a schedule through the gate, drift signals, alerts
    execution where work executes: the app's background loop, a run's own process, the worker
              that claims runs and due monitor checks; it hands the engine what later packages
              add (the meaning judge of a run sampled until settled, a run's last step)
    serve     `spread serve`: an OpenAI-compatible endpoint answering with the majority meaning,
              its calibrated confidence, abstaining when unsure; every request kept as a run
    formats   what crosses the border: promptfoo suites, LiteLLM configs, golden-set files, production traces
    cli       the `spread` command

No import runs back up: where the engine needs what a later package computes, the
package that runs it hands it in (execution.launch gives runner.execute the meaning judge).
"""
