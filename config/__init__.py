"""Settings (`ROLLBACK_…`) and the one way to reach Temporal: shared by every process."""
