"""Spread at run time: `spread serve`, an OpenAI-compatible endpoint that asks k times,
answers with the meaning most answers share and how sure that is, abstains or falls back
below a threshold reviewers' labels calibrated, and keeps every request as a run to review.

    routes       the routes and their policy (k, checks, threshold, what to do when unsure)
    vote         the decision on one request's answers: checks, meaning, confidence
    service      one request: read, sample (adaptively), decide, store, reply
    http         the aiohttp server: /v1/chat/completions, /v1/models, /health, auth, streaming
    calibration  how well confidence predicts correctness, from reviewers' labels
    traffic      what the Serve view shows: traffic, confidence, abstentions, latency added

May import: the base modules and every package before it (core.store … core.execution).
"""
