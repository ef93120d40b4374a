"""The worker process: Temporal connection settings, registration of workflows and activities."""
