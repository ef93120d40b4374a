"""The target systems the rollback engine drives: load balancer, configuration service,
feature flags and service control."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from simulator.schemas import ConfigPatch, FlagUpdate, Split
from simulator.state import Deployment, Simulator


def router(sim: Simulator) -> APIRouter:
    api = APIRouter()

    @api.get("/lb/{d}/split", tags=["load balancer"])
    async def get_split(d: str) -> dict[str, Any]:
        return _split(sim.get(d))

    @api.put("/lb/{d}/split", tags=["load balancer"])
    async def put_split(d: str, body: Split) -> dict[str, Any]:
        deployment = sim.get(d)
        deployment.set_split(body.treatment, body.control)
        return _split(deployment)

    @api.get("/config/{d}", tags=["configuration"])
    async def get_config(d: str) -> dict[str, Any]:
        return _config(sim.get(d))

    @api.patch("/config/{d}", tags=["configuration"])
    async def patch_config(d: str, body: ConfigPatch) -> dict[str, Any]:
        deployment = sim.get(d)
        if body.ta_nra_early_stop is not None:
            deployment.set_ta_nra_early_stop(body.ta_nra_early_stop)
        return _config(deployment)

    @api.get("/flags/{d}", tags=["feature flags"])
    async def get_flags(d: str) -> dict[str, Any]:
        return {"deployment": d, "flags": sim.get(d).flags}

    @api.get("/flags/{d}/{flag}", tags=["feature flags"])
    async def get_flag(d: str, flag: str) -> dict[str, Any]:
        return {"deployment": d, "flag": flag, "enabled": sim.get(d).flag(flag)}

    @api.put("/flags/{d}/{flag}", tags=["feature flags"])
    async def put_flag(d: str, flag: str, body: FlagUpdate) -> dict[str, Any]:
        enabled = sim.get(d).set_flag(flag, body.enabled)
        return {"deployment": d, "flag": flag, "enabled": enabled}

    @api.get("/services/{d}/{service}", tags=["service control"])
    async def get_service(d: str, service: str) -> dict[str, Any]:
        return _service(d, service, sim.get(d).service_status(service))

    @api.post("/services/{d}/{service}/stop", tags=["service control"])
    async def stop_service(d: str, service: str) -> dict[str, Any]:
        return _service(d, service, sim.get(d).set_service_running(service, running=False))

    @api.post("/services/{d}/{service}/start", tags=["service control"])
    async def start_service(d: str, service: str) -> dict[str, Any]:
        return _service(d, service, sim.get(d).set_service_running(service, running=True))

    return api


def _split(deployment: Deployment) -> dict[str, Any]:
    treatment, control = deployment.split
    return {"deployment": deployment.name, "treatment": treatment, "control": control}


def _config(deployment: Deployment) -> dict[str, Any]:
    return {"deployment": deployment.name, "ta_nra_early_stop": deployment.ta_nra_early_stop}


def _service(d: str, service: str, status: str) -> dict[str, Any]:
    return {"deployment": d, "service": service, "status": status}
