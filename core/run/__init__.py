"""Run: the plan, the estimate, the engine that samples it (samplers, writer, leases),
where a run executes (in the app's loop, a process of its own, a worker), its progress,
drafts of plans and rewordings of a prompt written by a model.

May import: the base modules, core.store, core.prompts and core.models.
"""
