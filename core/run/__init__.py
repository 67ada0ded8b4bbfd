"""Plan and run: the run plan, the models and the engine that samples them."""
