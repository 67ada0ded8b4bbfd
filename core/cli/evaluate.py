"""Evaluate: checks and the regression gate."""

COMMANDS: list = []
