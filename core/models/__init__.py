"""Models: how a model is called. The endpoint catalogue (validation, secrets, storage
and test calls in endpoints.py), the model catalogue and prices (catalogue.py), the
routes of a call (direct HTTP, litellm, Router groups, the embedded model), a model's
reply as Spread reads it, and rate limits.

May import: the base modules, core.store and core.prompts.
"""
