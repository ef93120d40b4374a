"""The metrics providers: paths into the simulator's JSON, and Prometheus answers."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.metrics import HttpJsonProvider, MetricsReader, PrometheusProvider
from activities.targets import Target
from runbook.loading import DEFAULT_POLICY, PolicyError, parse_policy
from runbook.policy import MetricQuery, Metrics, Policy
from runbook.schema import FILE
from simulator import SimulatorServer
from tests.activities.helpers import deploy


def json_reader(sim: SimulatorServer, policy: Policy, http: httpx.AsyncClient) -> MetricsReader:
    assert policy.metrics is not None
    url = policy.metrics.source().url or ""
    return MetricsReader(HttpJsonProvider(Target(http, "metrics", sim.url), url), policy.metrics)


async def test_http_json_reads_the_simulator(simulator: SimulatorServer, policy: Policy) -> None:
    deployment = await deploy(simulator, 25)
    async with httpx.AsyncClient() as http:
        reader = json_reader(simulator, policy, http)
        reading = await reader.read(
            deployment,
            ["error_rate", "control_traffic_share", "max_shard_cpu", "ndcg_at_10"],
            ["p99_latency_seconds"],
        )
        treatment = await reader.variant(deployment, "treatment", ["error_rate", "ndcg_at_10"])
    assert reading.values == {
        "error_rate": pytest.approx(0.0005),
        "control_traffic_share": 0.75,
        "max_shard_cpu": pytest.approx(0.45),
        "ndcg_at_10": pytest.approx(0.5234),
    }
    assert reading.baselines == {"p99_latency_seconds": pytest.approx(0.18)}
    assert treatment == {"error_rate": pytest.approx(0.0005), "ndcg_at_10": pytest.approx(0.5234)}


async def test_a_name_the_policy_does_not_define_is_a_policy_error(
    simulator: SimulatorServer, policy: Policy
) -> None:
    async with httpx.AsyncClient() as http:
        with pytest.raises(ApplicationError) as caught:
            await json_reader(simulator, policy, http).read("x", ["queue_depth"])
    assert caught.value.type == "PolicyIncomplete" and caught.value.non_retryable
    assert "metrics.http_json.metrics has no query for 'queue_depth'" in caught.value.message


def provider_answering(body: Any) -> tuple[HttpJsonProvider, PrometheusProvider, list[str]]:
    queries: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        queries.append(request.url.params.get("query", ""))
        return httpx.Response(200, json=body)

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    target = Target(http, "metrics", "http://m.test")
    return HttpJsonProvider(target, "/metrics/{deployment}"), PrometheusProvider(target), queries


@pytest.mark.parametrize(
    ("path", "complaint"),
    [("total.nope", "answered without 'total.nope'"), ("total.name", "is 'x', not a number")],
)
async def test_http_json_refuses_a_document_without_the_figure(path: str, complaint: str) -> None:
    provider, _, _ = provider_answering({"total": {"name": "x"}})
    with pytest.raises(ApplicationError) as caught:
        await provider.query("d", {"m": MetricQuery(query=path)})
    assert caught.value.non_retryable and complaint in caught.value.message


def vector(*values: str) -> dict[str, Any]:
    result = [{"metric": {"shard": str(i)}, "value": [1.0, v]} for i, v in enumerate(values)]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


async def test_prometheus_reads_one_series_and_scales_it() -> None:
    _, prometheus, queries = provider_answering(vector("0.25"))
    values = await prometheus.query(
        'we"ird', {"share": MetricQuery(query='sum(x{deployment="{deployment}"})', scale=4)}
    )
    assert values == {"share": 1.0}
    assert queries == ['sum(x{deployment="we\\"ird"})']


@pytest.mark.parametrize("body", [vector(), vector("NaN")])
async def test_prometheus_without_data_yet_reads_none(body: dict[str, Any]) -> None:
    _, prometheus, _ = provider_answering(body)
    assert await prometheus.query("d", {"m": MetricQuery(query="x")}) == {"m": None}


async def test_prometheus_scalar() -> None:
    _, prometheus, _ = provider_answering(
        {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "2.5"]}}
    )
    assert await prometheus.query("d", {"m": MetricQuery(query="2.5")}) == {"m": 2.5}


async def test_prometheus_refuses_several_series() -> None:
    _, prometheus, _ = provider_answering(vector("0.1", "0.2"))
    with pytest.raises(ApplicationError) as caught:
        await prometheus.query("d", {"m": MetricQuery(query="shard_cpu")})
    assert caught.value.non_retryable
    assert "answered 2 series" in caught.value.message and "aggregate" in caught.value.message


async def test_prometheus_bad_query_fails_fast() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"status": "error", "errorType": "bad_data", "error": "parse error"}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(bad)) as http:
        prometheus = PrometheusProvider(Target(http, "prometheus", "http://p.test"))
        with pytest.raises(ApplicationError) as caught:
            await prometheus.query("d", {"m": MetricQuery(query="sum(")})
    assert caught.value.non_retryable and "answered 400" in caught.value.message
    assert "parse error" in caught.value.message


def test_the_policy_chooses_a_described_provider() -> None:
    with pytest.raises(ValueError, match="provider is prometheus, but there is no prometheus"):
        Metrics.model_validate(
            {"provider": "prometheus", "http_json": {"url": "/m", "metrics": {}}}, context=FILE
        )


def test_a_policy_whose_checks_have_no_query_is_refused() -> None:
    text = DEFAULT_POLICY.read_text().replace("      max_shard_memory: max_shard_memory\n", "", 1)
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "custom.yaml")
    assert "metrics.http_json has no query for metrics.max_shard_memory" in str(caught.value)
