"""Evaluate: automatic checks on answers, pass rates, the judge, the regression gate
and its power.

May import: the base modules, core.store, core.prompts, core.models, core.run,
core.analyse and core.review.
"""
