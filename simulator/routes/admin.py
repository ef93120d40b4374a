"""The simulator's own controls: deployments, fault injection, call accounting."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from simulator.api_faults import ApiFaultBook
from simulator.calls import CallLedger
from simulator.schemas import ApiFaultIn, DeploymentFaultsIn, NewDeployment
from simulator.state import Simulator


def router(sim: Simulator, api_faults: ApiFaultBook, ledger: CallLedger) -> APIRouter:
    api = APIRouter()

    @api.get("/healthz", tags=["simulator"])
    async def healthz() -> dict[str, Any]:
        return {"ok": True}

    @api.get("/deployments", tags=["simulator"])
    async def list_deployments() -> dict[str, Any]:
        return {"deployments": sim.names}

    @api.post("/deployments", status_code=201, tags=["simulator"])
    async def put_deployment(body: NewDeployment) -> dict[str, Any]:
        treatment, control = sim.put(body.name, body.treatment).split
        return {"deployment": body.name, "treatment": treatment, "control": control}

    @api.get("/faults", tags=["faults"])
    async def all_faults() -> dict[str, Any]:
        return {
            "deployments": {d.name: d.faults.active() for d in sim if d.faults.active()},
            "api": [fault.as_dict() for fault in api_faults.active()],
        }

    @api.post("/faults/api", status_code=201, tags=["faults"])
    async def arm_api_fault(body: ApiFaultIn) -> dict[str, Any]:
        fault = api_faults.arm(
            body.api,
            body.mode,
            body.count,
            status=body.status,
            delay_seconds=body.delay_seconds,
            deployment=body.deployment,
        )
        return fault.as_dict()

    @api.delete("/faults/api", tags=["faults"])
    async def clear_api_faults() -> dict[str, Any]:
        api_faults.clear()
        return {"api": []}

    @api.post("/faults/{d}", tags=["faults"])
    async def inject(d: str, body: DeploymentFaultsIn) -> dict[str, Any]:
        faults = sim.get(d).inject(body.changes())
        return {"deployment": d, "faults": faults.as_dict()}

    @api.delete("/faults/{d}", tags=["faults"])
    async def clear(d: str) -> dict[str, Any]:
        return {"deployment": d, "faults": sim.get(d).clear_faults().as_dict()}

    @api.get("/calls", tags=["calls"])
    async def calls() -> dict[str, Any]:
        return ledger.as_dict()

    @api.get("/calls/inflight", tags=["calls"])
    async def inflight() -> dict[str, Any]:
        """Calls to the target systems being served right now."""
        return {"inflight": ledger.inflight()}

    @api.delete("/calls", tags=["calls"])
    async def reset_calls() -> dict[str, Any]:
        ledger.reset()
        return ledger.as_dict()

    return api
