"""Execution: where work executes. In the app's process (launch: one background event
loop per process, so a run survives page reruns), in a process of its own (launch's
`python -m core.execution.launch RUN_ID`), or by a worker that claims queued runs and the
monitor checks that are due (service: `spread worker`, and each app server's own).

It sits above the engine and the stages after it, so it hands the engine what they add:
the Spread page's meaning judge for a run sampled until settled, a run's last step
(embed its answers, score its checks, judge it when it is a regression), the
monitors a worker carries, and the analyses an app server makes of the newest runs
before anyone opens them.

May import: the base modules, core.store, core.prompts, core.models, core.run,
core.analyse, core.review, core.evaluate and core.watch.
"""
