"""Prompts: what is sent to a model. Templates and their placeholders, tables of inputs,
conversations, tools and response formats (shapes, and which part of an answer is
compared).

May import: the base modules (core.config, core.display, core.jsonvalue) and core.store.
"""
