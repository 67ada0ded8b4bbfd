"""Review: labels from people, reviewers' merge and split decisions, and golden sets
built from them (their files are core.formats.golden_files).

May import: the base modules, core.store, core.prompts, core.models, core.run and
core.analyse.
"""
