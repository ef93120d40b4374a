"""Load balancer, configuration service, feature flags, service control, deployments."""

from __future__ import annotations

from typing import Any

import httpx
import pytest


async def test_healthz_and_deployments(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"ok": True}
    assert (await client.get("/deployments")).json() == {"deployments": ["search-a", "search-b"]}


async def test_split_get_and_set(client: httpx.AsyncClient) -> None:
    r = await client.get("/lb/search-a/split")
    assert r.status_code == 200
    assert r.json() == {"deployment": "search-a", "treatment": 25, "control": 75}

    r = await client.put("/lb/search-a/split", json={"treatment": 0, "control": 100})
    assert r.status_code == 200
    assert r.json() == {"deployment": "search-a", "treatment": 0, "control": 100}
    assert (await client.get("/lb/search-a/split")).json()["treatment"] == 0
    # Other deployments are independent.
    assert (await client.get("/lb/search-b/split")).json()["treatment"] == 50


@pytest.mark.parametrize(
    "body",
    [
        {"treatment": 10, "control": 80},
        {"treatment": 101, "control": -1},
        {"treatment": -5, "control": 105},
        {"treatment": 50.5, "control": 49.5},
        {"treatment": "50", "control": "50"},
        {"treatment": True, "control": 99},
        {"treatment": 50},
        {"treatment": 50, "control": 50, "extra": 1},
        {},
    ],
)
async def test_split_rejects_bad_bodies(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.put("/lb/search-a/split", json=body)
    assert r.status_code == 422, r.text
    assert (await client.get("/lb/search-a/split")).json()["treatment"] == 25


async def test_config_patch(client: httpx.AsyncClient) -> None:
    assert (await client.get("/config/search-a")).json() == {
        "deployment": "search-a",
        "ta_nra_early_stop": True,
    }
    r = await client.patch("/config/search-a", json={"ta_nra_early_stop": False})
    assert r.status_code == 200
    assert r.json() == {"deployment": "search-a", "ta_nra_early_stop": False}
    assert (await client.get("/config/search-a")).json()["ta_nra_early_stop"] is False
    assert (await client.get("/config/search-b")).json()["ta_nra_early_stop"] is True
    bad = await client.patch("/config/search-a", json={"ta_nra_early_stop": "nope"})
    assert bad.status_code == 422


async def test_flags(client: httpx.AsyncClient) -> None:
    assert (await client.get("/flags/search-a")).json() == {
        "deployment": "search-a",
        "flags": {"hedging": True, "ta_nra_optimization": True},
    }
    r = await client.put("/flags/search-a/hedging", json={"enabled": False})
    assert r.status_code == 200
    assert r.json()["flag"] == "hedging"
    assert r.json()["enabled"] is False
    flags = (await client.get("/flags/search-a")).json()["flags"]
    assert flags == {"hedging": False, "ta_nra_optimization": True}

    unknown = await client.put("/flags/search-a/turbo", json={"enabled": False})
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "unknown flag 'turbo'"}
    assert (await client.put("/flags/search-a/hedging", json={})).status_code == 422


async def test_service_control(client: httpx.AsyncClient) -> None:
    path = "/services/search-a/hedging-service"
    assert (await client.get(path)).json()["status"] == "running"
    r = await client.post(f"{path}/stop")
    assert r.status_code == 200
    assert r.json()["service"] == "hedging-service"
    assert r.json()["status"] == "stopped"
    assert (await client.get(path)).json()["status"] == "stopped"
    assert (await client.get("/services/search-b/hedging-service")).json()["status"] == "running"
    assert (await client.post(f"{path}/start")).json()["status"] == "running"

    unknown = await client.post("/services/search-a/indexer/stop")
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "unknown service 'indexer'"}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/lb/nope/split", None),
        ("PUT", "/lb/nope/split", {"treatment": 0, "control": 100}),
        ("GET", "/config/nope", None),
        ("PATCH", "/config/nope", {"ta_nra_early_stop": False}),
        ("GET", "/flags/nope", None),
        ("PUT", "/flags/nope/hedging", {"enabled": False}),
        ("GET", "/services/nope/hedging-service", None),
        ("POST", "/services/nope/hedging-service/stop", None),
        ("GET", "/metrics/nope", None),
        ("GET", "/logs/nope", None),
        ("GET", "/search/nope?q=x", None),
        ("POST", "/faults/nope", {"shard_cpu": 0.9}),
        ("DELETE", "/faults/nope", None),
    ],
)
async def test_unknown_deployment_is_404(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    r = await client.request(method, path, json=body)
    assert r.status_code == 404
    assert r.json() == {"detail": "unknown deployment 'nope'"}


async def test_add_and_reset_deployment(client: httpx.AsyncClient) -> None:
    r = await client.post("/deployments", json={"name": "search-c", "treatment": 10})
    assert r.status_code == 201
    assert (await client.get("/lb/search-c/split")).json()["treatment"] == 10
    assert "search-c" in (await client.get("/deployments")).json()["deployments"]

    await client.put("/lb/search-a/split", json={"treatment": 0, "control": 100})
    await client.put("/flags/search-a/hedging", json={"enabled": False})
    await client.post("/faults/search-a", json={"treatment_error_rate": 0.5})
    r = await client.post("/deployments", json={"name": "search-a", "treatment": 30})
    assert r.status_code == 201
    assert (await client.get("/lb/search-a/split")).json()["treatment"] == 30
    assert (await client.get("/flags/search-a")).json()["flags"]["hedging"] is True
    assert (await client.get("/metrics/search-a")).json()["treatment"]["error_rate"] == 0.0005


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad name", "treatment": 10},
        {"name": "", "treatment": 10},
        {"name": "api", "treatment": 10},
        {"name": "ok", "treatment": 150},
        {"name": "ok"},
    ],
)
async def test_add_deployment_validation(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert (await client.post("/deployments", json=body)).status_code == 422
