"""Evaluate: automatic checks on answers and the regression gate."""
