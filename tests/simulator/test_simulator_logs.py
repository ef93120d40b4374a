"""Logs: a line for every change, and synthetic errors while the treatment fails."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from simulator_testkit import FakeClock


async def lines(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    r = await client.get("/logs/search-a", params=params)
    assert r.status_code == 200
    assert r.json()["deployment"] == "search-a"
    result: list[dict[str, Any]] = r.json()["lines"]
    return result


async def test_changes_are_logged(client: httpx.AsyncClient) -> None:
    await client.put("/lb/search-a/split", json={"treatment": 0, "control": 100})
    await client.patch("/config/search-a", json={"ta_nra_early_stop": False})
    await client.put("/flags/search-a/hedging", json={"enabled": False})
    await client.post("/services/search-a/hedging-service/stop")
    await client.post("/faults/search-a", json={"shard_cpu": 0.9})
    messages = [line["message"] for line in await lines(client)]
    assert any("split changed" in m and "treatment 0%" in m for m in messages)
    assert any("ta_nra_early_stop changed: true -> false" in m for m in messages)
    assert any("hedging disabled" in m for m in messages)
    assert any("hedging-service stopped" in m for m in messages)
    assert any("fault injected" in m and "shard_cpu=0.9" in m for m in messages)
    for line in await lines(client):
        assert line["level"] in {"INFO", "WARN", "ERROR"}
        assert line["variant"] in {"treatment", "control"}
        assert datetime.fromisoformat(line["at"]).utcoffset() == timedelta(0)
    # Other deployments have their own logs.
    other = (await client.get("/logs/search-b")).json()["lines"]
    assert not any("split changed" in line["message"] for line in other)


async def test_since_and_until(client: httpx.AsyncClient) -> None:
    before = datetime.now(UTC)
    await client.put("/lb/search-a/split", json={"treatment": 0, "control": 100})
    after = datetime.now(UTC)
    recent = await lines(client, since=before.isoformat())
    assert [line["message"] for line in recent] == [
        "traffic split changed: treatment 25% / control 75% -> treatment 0% / control 100%"
    ]
    old = await lines(client, until=before.isoformat())
    assert all("split changed" not in line["message"] for line in old)
    assert await lines(client, since=after.isoformat()) == []
    naive = before.replace(tzinfo=None).isoformat()  # taken as UTC
    assert len(await lines(client, since=naive)) == 1
    r = await client.get("/logs/search-a", params={"since": "yesterday"})
    assert r.status_code == 422


async def test_synthetic_errors_while_the_treatment_fails(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    def errors(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [line for line in log if line["level"] == "ERROR"]

    assert errors(await lines(client)) == []
    await client.post("/faults/search-a", json={"treatment_error_rate": 0.02})
    clock.advance(4.5)
    found = errors(await lines(client))
    assert len(found) == 5  # at 0, 1, 2, 3 and 4 s: one per simulated second
    assert all(line["variant"] == "treatment" for line in found)
    stamps = [datetime.fromisoformat(line["at"]) for line in found]
    assert stamps == sorted(stamps)
    assert (stamps[-1] - stamps[0]).total_seconds() == 4.0
    # Reading again without time passing produces nothing new.
    assert len(errors(await lines(client))) == 5

    # Rolled back: no traffic, no errors.
    clock.advance(0.5)
    await client.put("/lb/search-a/split", json={"treatment": 0, "control": 100})
    clock.advance(10)
    assert len(errors(await lines(client))) == 6
