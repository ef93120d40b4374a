"""Call accounting of mutating calls and idempotency-key replay."""

from __future__ import annotations

from typing import Any

import httpx

SPLIT = "/lb/search-a/split"
ROUTE = "PUT /lb/{d}/split"


async def calls(client: httpx.AsyncClient) -> dict[str, Any]:
    body: dict[str, Any] = (await client.get("/calls")).json()
    return body


async def test_mutating_calls_are_counted_by_route(client: httpx.AsyncClient) -> None:
    await client.put(SPLIT, json={"treatment": 10, "control": 90})
    await client.put(SPLIT, json={"treatment": 0, "control": 100})
    await client.put("/lb/search-b/split", json={"treatment": 0, "control": 100})
    await client.patch("/config/search-a", json={"ta_nra_early_stop": False})
    await client.put("/flags/search-a/hedging", json={"enabled": False})
    await client.post("/services/search-a/hedging-service/stop")
    await client.get(SPLIT)  # reads are not counted
    await client.get("/metrics/search-a")

    c = await calls(client)
    assert c["counts"] == {
        ROUTE: 3,
        "PATCH /config/{d}": 1,
        "PUT /flags/{d}/hedging": 1,
        "POST /services/{d}/hedging-service/stop": 1,
    }
    assert c["by_deployment"] == {
        "search-a": {
            ROUTE: 2,
            "PATCH /config/{d}": 1,
            "PUT /flags/{d}/hedging": 1,
            "POST /services/{d}/hedging-service/stop": 1,
        },
        "search-b": {ROUTE: 1},
    }
    first = c["calls"][0]
    assert first["deployment"] == "search-a"
    assert first["api"] == "lb"
    assert first["method"] == "PUT"
    assert first["path"] == SPLIT
    assert first["idempotency_key"] is None
    assert first["replayed"] is False
    assert first["at"].endswith("+00:00")

    assert (await client.delete("/calls")).status_code == 200
    assert await calls(client) == {"calls": [], "counts": {}, "by_deployment": {}}


async def test_idempotency_key_replays_without_applying(client: httpx.AsyncClient) -> None:
    headers = {"Idempotency-Key": "rollback-1"}
    first = await client.put(SPLIT, json={"treatment": 0, "control": 100}, headers=headers)
    assert first.status_code == 200
    # Someone moves the split on; a retry of the first call must not undo that.
    await client.put(SPLIT, json={"treatment": 5, "control": 95})
    again = await client.put(SPLIT, json={"treatment": 0, "control": 100}, headers=headers)
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert (await client.get(SPLIT)).json()["treatment"] == 5

    c = await calls(client)
    assert c["counts"] == {ROUTE: 2}
    assert [call["replayed"] for call in c["calls"]] == [False, False, True]
    assert c["calls"][2]["idempotency_key"] == "rollback-1"

    # The same key on another path or method is a different call.
    other = await client.put(
        "/lb/search-b/split", json={"treatment": 0, "control": 100}, headers=headers
    )
    assert "idempotent-replayed" not in other.headers
    assert (await calls(client))["counts"] == {ROUTE: 3}

    # Replays leave no log line: only the two effective split changes are logged.
    lines = (await client.get("/logs/search-a")).json()["lines"]
    assert sum("split changed" in line["message"] for line in lines) == 2


async def test_injected_failures_are_recorded_as_failed(client: httpx.AsyncClient) -> None:
    await client.post("/faults/api", json={"api": "lb", "mode": "fail", "count": 2})
    headers = {"Idempotency-Key": "k"}
    for _ in range(2):
        r = await client.put(SPLIT, json={"treatment": 0, "control": 100}, headers=headers)
        assert r.status_code == 503
    # The retry with the same key is not answered from the failures: it takes effect.
    r = await client.put(SPLIT, json={"treatment": 0, "control": 100}, headers=headers)
    assert r.status_code == 200
    assert "idempotent-replayed" not in r.headers

    c = await calls(client)
    assert [call["outcome"] for call in c["calls"]] == ["failed", "failed", "applied"]
    assert [call["status"] for call in c["calls"]] == [503, 503, 200]
    assert c["counts"] == {ROUTE: 1}


async def test_rejected_calls_are_not_counted(client: httpx.AsyncClient) -> None:
    await client.put(SPLIT, json={"treatment": 7, "control": 7})
    await client.put("/lb/nope/split", json={"treatment": 0, "control": 100})
    c = await calls(client)
    assert [call["outcome"] for call in c["calls"]] == ["rejected", "rejected"]
    assert c["counts"] == {}
