"""What the engine observes: metrics (JSON and Prometheus text), logs, and search itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from simulator.prometheus_text import CONTENT_TYPE, exposition
from simulator.state import Simulator


def router(sim: Simulator) -> APIRouter:
    api = APIRouter()

    @api.get("/metrics", tags=["metrics"], response_class=Response)
    async def prometheus_metrics() -> Response:
        text = exposition(deployment.metrics() for deployment in sim)
        return Response(text, media_type=CONTENT_TYPE)

    @api.get("/metrics/{d}", tags=["metrics"])
    async def metrics(d: str) -> dict[str, Any]:
        return sim.get(d).metrics().as_dict()

    @api.get("/logs/{d}", tags=["logs"])
    async def logs(
        d: str, since: datetime | None = None, until: datetime | None = None
    ) -> dict[str, Any]:
        lines = sim.get(d).logs(_utc(since), _utc(until))
        return {"deployment": d, "lines": [line.as_dict() for line in lines]}

    @api.get("/search/{d}", tags=["search"])
    async def search(d: str, q: str = "") -> Any:
        outcome = sim.search(d, q)
        if outcome.failed:
            return JSONResponse(
                {"detail": "search failed", "deployment": d, "variant": outcome.variant},
                status_code=500,
            )
        return {"deployment": d, "variant": outcome.variant, "results": outcome.results}

    return api


def _utc(at: datetime | None) -> datetime | None:
    """Query times without an offset are taken as UTC."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)
