"""Watch models after release: monitors re-sample golden sets on a schedule through the
workers and the regression gate, compute drift signals with their statistics, and send
one alert per change of state (monitors, schedule, signals, drift, alerts).

May import: the base modules, core.store, core.prompts, core.models, core.run,
core.analyse, core.review and core.evaluate.
"""
