"""Run: the plan, the estimate, the engine that samples it (samplers, writer, leases,
rounds until settled), its progress, drafts of plans and rewordings of a prompt written
by a model. Where a run executes is core/execution/.

May import: the base modules, core.store, core.prompts and core.models.
"""
