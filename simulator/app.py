"""The FastAPI application: one simulated search service hosting many deployments."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulator.api_faults import ApiFaultBook
from simulator.calls import CallLedger, IdempotencyStore
from simulator.middleware import TargetSystemsMiddleware
from simulator.routes import admin, observability, targets
from simulator.state import NotFound, Simulator, utc_now


def create_app(
    deployments: dict[str, int] | None = None,
    *,
    window_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], datetime] = utc_now,
    seed: int = 0,
) -> FastAPI:
    """Build the simulator for ``deployments`` (name -> treatment percent at start).

    ``clock`` (monotonic seconds) drives rates and the ``window_seconds`` over which the
    totals follow the split; ``wall_clock`` stamps logs and calls; ``seed`` makes
    ``/search`` repeatable. The model is ``app.state.simulator``.
    """
    sim = Simulator(
        deployments, window_seconds=window_seconds, clock=clock, wall_clock=wall_clock, seed=seed
    )
    api_faults = ApiFaultBook()
    ledger = CallLedger()

    app = FastAPI(
        title="Search service simulator",
        description="Load balancer, config, flags, service control, metrics and logs of "
        "search deployments under canary, with fault injection.",
    )
    app.state.simulator = sim
    app.state.api_faults = api_faults
    app.state.calls = ledger
    app.include_router(targets.router(sim))
    app.include_router(observability.router(sim))
    app.include_router(admin.router(sim, api_faults, ledger))
    app.add_middleware(
        TargetSystemsMiddleware,
        faults=api_faults,
        ledger=ledger,
        idempotency=IdempotencyStore(),
        wall_clock=wall_clock,
    )

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=404)

    return app
