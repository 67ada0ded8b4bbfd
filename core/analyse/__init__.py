"""Analyse: meaning (embeddings, facts, clusters), spread metrics, wording sensitivity,
second opinions and the figures drawn from them. Reviewers' merge and split decisions
reach the analysis as data (stored rows or an argument), never by importing review.

May import: the base modules, core.store, core.prompts, core.models and core.run.
"""
