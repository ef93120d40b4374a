"""The Prometheus text exposition on ``/metrics``."""

from __future__ import annotations

import math

import httpx
import pytest
from simulator_testkit import (
    Exposition,
    FakeClock,
    bucket_increase,
    histogram_quantile,
    parse_exposition,
)

FAMILIES = {
    "search_requests_total": "counter",
    "search_errors_total": "counter",
    "search_request_duration_seconds": "histogram",
    "search_traffic_share": "gauge",
    "search_ndcg_at_10": "gauge",
    "search_sla_recall_at_50": "gauge",
    "search_shard_cpu_ratio": "gauge",
    "search_shard_memory_ratio": "gauge",
}


async def scrape(client: httpx.AsyncClient) -> Exposition:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse_exposition(r.text)


async def test_exposition_is_well_formed_and_complete(client: httpx.AsyncClient) -> None:
    exposition = await scrape(client)
    assert exposition.types == FAMILIES
    for deployment in ("search-a", "search-b"):
        for variant in ("control", "treatment"):
            labels = {"deployment": deployment, "variant": variant}
            for name in (
                "search_requests_total",
                "search_errors_total",
                "search_request_duration_seconds_sum",
                "search_request_duration_seconds_count",
                "search_traffic_share",
                "search_ndcg_at_10",
                "search_sla_recall_at_50",
            ):
                exposition.value(name, **labels)
            assert len(exposition.select("search_request_duration_seconds_bucket", **labels)) >= 10
        for shard in range(4):
            labels = {"deployment": deployment, "shard": f"shard-{shard}"}
            assert exposition.value("search_shard_cpu_ratio", **labels) == 0.45
            assert exposition.value("search_shard_memory_ratio", **labels) == 0.55
    assert (
        exposition.value("search_traffic_share", deployment="search-a", variant="treatment") == 0.25
    )
    assert exposition.value("search_ndcg_at_10", deployment="search-a", variant="control") == 0.5234


async def test_prometheus_client_parses_it(client: httpx.AsyncClient) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    text = (await client.get("/metrics")).text
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    # prometheus_client names counter families without their ``_total``.
    assert families["search_requests"].type == "counter"
    assert families["search_request_duration_seconds"].type == "histogram"
    assert families["search_traffic_share"].type == "gauge"
    assert len(families["search_shard_cpu_ratio"].samples) == 8


async def test_counters_are_monotonic_and_follow_rates(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    first = await scrape(client)
    clock.advance(10)
    second = await scrape(client)
    await client.put("/lb/search-a/split", json={"treatment": 0, "control": 100})
    await client.post("/faults/search-a", json={"treatment_error_rate": 0.5})
    clock.advance(10)
    third = await scrape(client)

    counters = [
        name for name in third.samples if name[0].endswith(("_total", "_bucket", "_sum", "_count"))
    ]
    assert counters
    for key in counters:
        assert first.samples[key] <= second.samples[key] <= third.samples[key], key

    def rate(a: Exposition, b: Exposition, name: str, variant: str) -> float:
        labels = {"deployment": "search-a", "variant": variant}
        return (b.value(name, **labels) - a.value(name, **labels)) / 10

    assert rate(first, second, "search_requests_total", "treatment") == pytest.approx(250)
    assert rate(first, second, "search_requests_total", "control") == pytest.approx(750)
    assert rate(first, second, "search_errors_total", "control") == pytest.approx(750 * 0.0005)
    # After the rollback the treatment gets no requests, so no errors either, fault or not.
    assert rate(second, third, "search_requests_total", "treatment") == 0
    assert rate(second, third, "search_errors_total", "treatment") == 0
    assert rate(second, third, "search_requests_total", "control") == pytest.approx(1000)
    share = third.value("search_traffic_share", deployment="search-a", variant="treatment")
    assert share == 0.0


async def test_histogram_is_cumulative_and_gives_the_p99(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    await client.post("/faults/search-b", json={"treatment_p99_latency_seconds": 0.35})
    before = await scrape(client)
    clock.advance(30)
    after = await scrape(client)
    for variant, p99 in (("control", 0.18), ("treatment", 0.35)):
        labels = {"deployment": "search-b", "variant": variant}
        buckets = {
            float(dict(label_set)["le"]): value
            for label_set, value in after.select(
                "search_request_duration_seconds_bucket", **labels
            ).items()
        }
        bounds = sorted(buckets)
        assert bounds[-1] == math.inf
        counts = [buckets[b] for b in bounds]
        assert counts == sorted(counts), "buckets must be cumulative"
        assert buckets[math.inf] == after.value("search_request_duration_seconds_count", **labels)

        increase = bucket_increase(before, after, **labels)
        assert histogram_quantile(0.99, increase) == pytest.approx(p99, rel=0.05)
        mean = (
            after.value("search_request_duration_seconds_sum", **labels)
            - before.value("search_request_duration_seconds_sum", **labels)
        ) / (increase[math.inf])
        assert 0 < mean < p99
