"""The JSON metrics: healthy defaults, faults, and totals that follow the split."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from simulator_testkit import FakeClock

from simulator import create_app, latency

FIGURES = ("error_rate", "p99_latency_seconds", "ndcg_at_10", "sla_recall_at_50")
DEGRADED = {
    "treatment_error_rate": 0.02,
    "treatment_p99_latency_seconds": 0.35,
    "treatment_ndcg_at_10": 0.50,
    "treatment_sla_recall_at_50": 0.90,
    "shard_cpu": 0.97,
    "shard_memory": 0.96,
}


async def metrics(client: httpx.AsyncClient, deployment: str = "search-a") -> dict[str, Any]:
    r = await client.get(f"/metrics/{deployment}")
    assert r.status_code == 200
    body: dict[str, Any] = r.json()
    return body


async def test_healthy_defaults(client: httpx.AsyncClient) -> None:
    m = await metrics(client)
    assert m["deployment"] == "search-a"
    assert m["split"] == {"treatment": 25, "control": 75}
    healthy = {
        "error_rate": 0.0005,
        "p99_latency_seconds": 0.180,
        "ndcg_at_10": 0.5234,
        "sla_recall_at_50": 0.97,
    }
    assert m["baseline"] == healthy
    for variant in ("treatment", "control", "total"):
        for key, value in healthy.items():
            assert m[variant][key] == pytest.approx(value), (variant, key)
    assert m["treatment"]["error_rate"] < 0.001
    assert m["treatment"]["requests_per_second"] == pytest.approx(250.0)
    assert m["control"]["requests_per_second"] == pytest.approx(750.0)
    assert m["total"]["requests_per_second"] == pytest.approx(1000.0)
    assert [s["shard"] for s in m["shards"]] == ["shard-0", "shard-1", "shard-2", "shard-3"]
    assert all(s["cpu"] == 0.45 and s["memory"] == 0.55 for s in m["shards"])
    assert m["max_shard_cpu"] == 0.45
    assert m["max_shard_memory"] == 0.55


async def test_faults_degrade_treatment_and_weigh_into_total(client: httpx.AsyncClient) -> None:
    r = await client.post("/faults/search-a", json=DEGRADED)
    assert r.status_code == 200
    assert r.json() == {"deployment": "search-a", "faults": DEGRADED}
    m = await metrics(client)
    assert m["treatment"]["error_rate"] == 0.02
    assert m["treatment"]["p99_latency_seconds"] == 0.35
    assert m["treatment"]["ndcg_at_10"] == 0.50
    assert m["treatment"]["sla_recall_at_50"] == 0.90
    assert m["control"]["error_rate"] == 0.0005
    assert m["total"]["error_rate"] == pytest.approx(0.25 * 0.02 + 0.75 * 0.0005)
    assert m["total"]["ndcg_at_10"] == pytest.approx(0.25 * 0.50 + 0.75 * 0.5234)
    assert 0.18 < m["total"]["p99_latency_seconds"] < 0.35
    # Shard faults show at the level injected, at the share they were injected at.
    assert m["max_shard_cpu"] == pytest.approx(0.97)
    assert m["max_shard_memory"] == pytest.approx(0.96)
    # Other deployments are not affected.
    assert (await metrics(client, "search-b"))["treatment"]["error_rate"] == 0.0005

    cleared = await client.delete("/faults/search-a")
    assert cleared.status_code == 200
    assert all(v is None for v in cleared.json()["faults"].values())
    m = await metrics(client)
    assert m["treatment"]["error_rate"] == 0.0005
    assert m["max_shard_cpu"] == 0.45


async def test_partial_faults_merge_and_null_clears(client: httpx.AsyncClient) -> None:
    await client.post("/faults/search-a", json={"treatment_error_rate": 0.02})
    r = await client.post("/faults/search-a", json={"shard_cpu": 0.9})
    assert r.json()["faults"]["treatment_error_rate"] == 0.02
    assert r.json()["faults"]["shard_cpu"] == 0.9
    r = await client.post("/faults/search-a", json={"treatment_error_rate": None})
    assert r.json()["faults"]["treatment_error_rate"] is None
    assert r.json()["faults"]["shard_cpu"] == 0.9


@pytest.mark.parametrize(
    "body",
    [
        {"treatment_error_rate": 1.5},
        {"treatment_error_rate": -0.1},
        {"treatment_p99_latency_seconds": 0},
        {"shard_cpu": 2},
        {"treatment_ndcg_at_10": "high"},
        {"unknown_fault": 1},
    ],
)
async def test_fault_validation(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    assert (await client.post("/faults/search-a", json=body)).status_code == 422


async def test_totals_follow_the_split_within_the_window(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await client.post("/faults/search-a", json=DEGRADED)
    clock.advance(10)
    before = await metrics(client)
    assert before["total"]["error_rate"] == pytest.approx(0.25 * 0.02 + 0.75 * 0.0005)

    await client.put("/lb/search-a/split", json={"treatment": 0, "control": 100})
    clock.advance(0.1)
    just_after = await metrics(client)
    assert just_after["split"] == {"treatment": 0, "control": 100}
    # Still elevated: most of the window saw the treatment at 25 %.
    assert just_after["total"]["error_rate"] > 0.001
    assert just_after["total"]["p99_latency_seconds"] > 0.18
    assert just_after["max_shard_cpu"] > 0.9
    # Halfway through the window, half the effect.
    clock.advance(0.9)
    halfway = await metrics(client)
    excess = halfway["total"]["error_rate"] - 0.0005
    assert excess == pytest.approx(0.5 * 0.25 * (0.02 - 0.0005))
    assert halfway["treatment"]["requests_per_second"] == pytest.approx(125.0)

    clock.advance(1.0)  # window_seconds after the change
    settled = await metrics(client)
    for key in FIGURES:
        assert settled["total"][key] == settled["control"][key], key
    assert settled["total"]["p99_latency_seconds"] == 0.18
    assert settled["treatment"]["requests_per_second"] == 0.0
    assert settled["max_shard_cpu"] == 0.45
    assert settled["max_shard_memory"] == 0.55
    # The treatment's own figures are still bad; it just gets no traffic.
    assert settled["treatment"]["error_rate"] == 0.02


async def test_shards_scale_with_treatment_share(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await client.post("/faults/search-b", json={"shard_cpu": 0.85})  # at 50 %
    await client.put("/lb/search-b/split", json={"treatment": 25, "control": 75})
    clock.advance(5)
    m = await metrics(client, "search-b")
    assert m["max_shard_cpu"] == pytest.approx(0.45 + (0.85 - 0.45) / 2)
    await client.put("/lb/search-b/split", json={"treatment": 100, "control": 0})
    clock.advance(5)
    assert (await metrics(client, "search-b"))["max_shard_cpu"] == 1.0  # capped


def test_mixture_p99() -> None:
    assert latency.mixture_p99(0.18, 0.35, 0.0) == 0.18
    assert latency.mixture_p99(0.18, 0.35, 1.0) == 0.35
    assert latency.mixture_p99(0.18, 0.18, 0.5) == 0.18
    shares = [0.001, 0.01, 0.1, 0.25, 0.5, 0.9]
    p99s = [latency.mixture_p99(0.18, 0.35, s) for s in shares]
    assert all(0.18 < p < 0.35 for p in p99s)
    assert p99s == sorted(p99s)
    # A faster treatment pulls the total down instead.
    assert latency.mixture_p99(0.18, 0.10, 0.5) < 0.18


def test_latency_model_p99() -> None:
    assert latency.cdf(0.18, 0.18) == pytest.approx(0.99)
    fractions = latency.bucket_fractions(0.35)
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0


async def test_search_follows_split_and_error_rate(client: httpx.AsyncClient) -> None:
    await client.put("/lb/search-b/split", json={"treatment": 100, "control": 0})
    await client.post("/faults/search-b", json={"treatment_error_rate": 0.5})
    statuses = []
    for i in range(200):
        r = await client.get("/search/search-b", params={"q": f"query {i}"})
        statuses.append(r.status_code)
        assert r.json()["variant"] == "treatment"
        if r.status_code == 200:
            assert len(r.json()["results"]) == 10
    failures = statuses.count(500)
    assert 60 < failures < 140

    await client.put("/lb/search-b/split", json={"treatment": 0, "control": 100})
    for _ in range(50):
        r = await client.get("/search/search-b", params={"q": "x"})
        assert r.json()["variant"] == "control"


async def test_search_is_repeatable(clock: FakeClock) -> None:
    async def run() -> list[tuple[int, str]]:
        fresh = create_app({"s": 50}, clock=clock)
        transport = httpx.ASGITransport(app=fresh)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
            out = []
            for _ in range(30):
                r = await c.get("/search/s", params={"q": "rollback"})
                out.append((r.status_code, r.json()["variant"]))
            return out

    first = await run()
    assert first == await run()
    assert {variant for _, variant in first} == {"control", "treatment"}
