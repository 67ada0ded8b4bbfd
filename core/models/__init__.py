"""Models: how a model is called. The endpoint catalogue (endpoints/: what an endpoint is,
its secrets, validation, storage and calls), the model catalogue and prices (catalogue.py), the
routes of a call (direct HTTP, litellm, Router groups, the embedded model), a model's
reply as Spread reads it, and rate limits.

May import: the base modules, core.store and core.prompts.
"""
