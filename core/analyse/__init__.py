"""Analyse: meaning clusters, spread metrics and the figures drawn from them."""
