"""Temporal workflows: the rollback (decision window, Phases 1–3)."""
