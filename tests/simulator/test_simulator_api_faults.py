"""Injected faults of the target systems' APIs: failing and slow calls."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

SPLIT = "/lb/search-a/split"
ROLLBACK = {"treatment": 0, "control": 100}


async def arm(client: httpx.AsyncClient, **fault: Any) -> dict[str, Any]:
    r = await client.post("/faults/api", json=fault)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_fail_the_next_three_calls_then_succeed(client: httpx.AsyncClient) -> None:
    await arm(client, api="lb", mode="fail", count=3, status=503)
    for _ in range(3):
        r = await client.put(SPLIT, json=ROLLBACK)
        assert r.status_code == 503
        assert r.json() == {"detail": "injected fault"}
    # Failed calls did not take effect...
    assert (await client.get(SPLIT)).status_code == 200  # the 4th call to lb succeeds
    assert (await client.get(SPLIT)).json()["treatment"] == 25
    r = await client.put(SPLIT, json=ROLLBACK)
    assert r.status_code == 200
    assert (await client.get(SPLIT)).json()["treatment"] == 0
    assert (await client.get("/faults")).json()["api"] == []


async def test_fault_applies_to_its_api_and_deployment_only(client: httpx.AsyncClient) -> None:
    await arm(client, api="flags", mode="fail", count=1, status=500, deployment="search-b")
    assert (await client.get("/flags/search-a")).status_code == 200
    assert (await client.get(SPLIT)).status_code == 200
    assert (await client.get("/flags/search-b")).status_code == 500
    assert (await client.get("/flags/search-b")).status_code == 200


async def test_until_cleared(client: httpx.AsyncClient) -> None:
    await arm(client, api="metrics", mode="fail", count=-1, status=502)
    for _ in range(5):
        assert (await client.get("/metrics/search-a")).status_code == 502
    assert (await client.get("/metrics")).status_code == 502
    active = (await client.get("/faults")).json()["api"]
    assert len(active) == 1
    assert active[0]["api"] == "metrics"
    assert active[0]["remaining"] == -1
    assert (await client.delete("/faults/api")).status_code == 200
    assert (await client.get("/metrics/search-a")).status_code == 200


async def test_slow_calls_are_served_after_the_delay(client: httpx.AsyncClient) -> None:
    await arm(client, api="config", mode="slow", count=1, delay_seconds=0.3)
    started = time.monotonic()
    r = await client.patch("/config/search-a", json={"ta_nra_early_stop": False})
    assert time.monotonic() - started >= 0.3
    assert r.status_code == 200
    assert r.json()["ta_nra_early_stop"] is False
    started = time.monotonic()
    assert (await client.get("/config/search-a")).status_code == 200
    assert time.monotonic() - started < 0.3


async def test_logs_and_search_can_fail_too(client: httpx.AsyncClient) -> None:
    await arm(client, api="logs", mode="fail", count=1, status=504)
    await arm(client, api="search", mode="fail", count=1, status=503)
    assert (await client.get("/logs/search-a")).status_code == 504
    assert (await client.get("/search/search-a", params={"q": "x"})).status_code == 503
    assert (await client.get("/logs/search-a")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"api": "dns", "mode": "fail"},
        {"api": "lb", "mode": "explode"},
        {"api": "lb", "mode": "fail", "count": 0},
        {"api": "lb", "mode": "fail", "count": -2},
        {"api": "lb", "mode": "fail", "status": 200},
        {"api": "lb", "mode": "slow", "delay_seconds": -1},
    ],
)
async def test_api_fault_validation(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert (await client.post("/faults/api", json=body)).status_code == 422
