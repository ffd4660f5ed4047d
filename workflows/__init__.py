"""Workflow code: deterministic orchestration only. Side effects live in ``activities``."""
