"""`rollback worker`: run the worker until Ctrl-C."""

from __future__ import annotations

import asyncio
import logging

from config import tracing
from config.connection import connect, metrics_runtime
from config.settings import load_settings
from worker.main import run_worker


def worker() -> None:
    """Run a worker: the rollback workflow and every activity, on the task queue from settings.

    Example: ROLLBACK_TEMPORAL_ADDRESS=temporal:7233 rollback worker
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()

    async def main() -> None:
        address = settings.worker_metrics_address
        runtime = metrics_runtime(address) if address else None
        if address:
            logging.info("metrics on http://%s/metrics", address)
        try:
            await run_worker(lambda: connect(settings, runtime, "rollback-worker"), settings)
        finally:
            if settings.otlp_endpoint:
                tracing.flush()

    asyncio.run(main())
