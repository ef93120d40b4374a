"""Small builders shared by the activity tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import httpx

from activities.models import IncidentSummary, PersonRef, RoleHolders, StepContext
from simulator import SimulatorServer


def name() -> str:
    return f"search-{uuid4().hex[:8]}"


def ctx(deployment: str, drill: bool = False) -> StepContext:
    return StepContext(
        deployment=deployment,
        rollback_id=f"rollback-{deployment}/run-1",
        channel="#sprint-1-channel",
        drill=drill,
    )


async def deploy(sim: SimulatorServer, treatment: int, **faults: float) -> str:
    """A fresh deployment at `treatment` percent, with treatment/shard faults injected."""
    deployment = name()
    async with httpx.AsyncClient(base_url=sim.url) as http:
        r = await http.post("/deployments", json={"name": deployment, "treatment": treatment})
        r.raise_for_status()
        if faults:
            (await http.post(f"/faults/{deployment}", json=faults)).raise_for_status()
    return deployment


async def sim_get(sim: SimulatorServer, path: str) -> Any:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        r = await http.get(path)
        r.raise_for_status()
        return r.json()


async def sim_post(sim: SimulatorServer, path: str, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        (await http.post(path, json=body)).raise_for_status()


async def sim_delete(sim: SimulatorServer, path: str) -> None:
    async with httpx.AsyncClient(base_url=sim.url) as http:
        (await http.delete(path)).raise_for_status()


async def calls_of(sim: SimulatorServer, deployment: str) -> list[dict[str, Any]]:
    data = await sim_get(sim, "/calls")
    return [c for c in data["calls"] if c["deployment"] == deployment]


def holders(role: str, role_name: str, *people: str) -> RoleHolders:
    return RoleHolders(
        role=role,
        role_name=role_name,
        people=[PersonRef(id=p, name=p.title(), slack_user_id=f"U{p.upper()[:8]}") for p in people],
    )


def incident(deployment: str, phase: int | None = 25, **fields: Any) -> IncidentSummary:
    """A rollback whose traffic was reverted a minute ago (the breach began 5 minutes ago):
    every fact an audience's words name is known."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "instants": {
            "breach": now - timedelta(minutes=5),
            "trigger": now - timedelta(minutes=2),
            "traffic_reverted": now - timedelta(minutes=1),
        },
        "deployment": deployment,
        "trigger": "error_rate",
        "trigger_name": "Trigger 1: Critical Error Rate",
        "phase": phase,
        "reason": "error rate 5% on the treatment",
        "decided_by": ["system"],
        "drill": False,
        "started_at": datetime.now(UTC),
        **fields,
    }
    return IncidentSummary(**values)
