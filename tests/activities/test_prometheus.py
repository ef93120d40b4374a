"""The prometheus provider against a real Prometheus scraping the simulator, with the PromQL of
policies/sprint-1.yaml (skipped where `prometheus` is not installed)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from activities.metrics import MetricsReader, Period, PrometheusProvider
from activities.models import BaselineCheckInput
from activities.procedure import RollbackActivities
from activities.targets import Target
from runbook.policy import Policy
from simulator import SimulatorServer
from tests.activities.helpers import ctx
from tests.activities.servers import free_port, settings_for

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed"),
    pytest.mark.timeout(60),
]


@pytest.fixture(scope="module")
def scraped() -> Iterator[SimulatorServer]:
    with SimulatorServer({"canary": 25, "reverted": 0}) as server:
        yield server


@pytest.fixture(scope="module")
def prometheus(scraped: SimulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert PROMETHEUS is not None
    workdir = Path(tmp_path_factory.mktemp("prometheus"))
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: simulator\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{scraped.port}']}}]\n"
    )
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
async def reader(prometheus: str, policy: Policy) -> AsyncIterator[MetricsReader]:
    assert policy.metrics is not None
    metrics = policy.metrics.model_copy(update={"provider": "prometheus"})
    async with httpx.AsyncClient(timeout=2) as http:
        yield MetricsReader(PrometheusProvider(Target(http, "prometheus", prometheus)), metrics)


async def eventually_complete(reader: MetricsReader, deployment: str) -> dict[str, float | None]:
    """Every query answers once Prometheus holds two scrapes of the simulator."""
    source = reader.source
    for _ in range(60):
        try:
            reading = await reader.read(deployment, source.metrics, source.baselines)
        except Exception:  # not ready yet
            await asyncio.sleep(0.5)
            continue
        values = {**reading.values, **{f"baseline {k}": v for k, v in reading.baselines.items()}}
        if all(v is not None for v in values.values()):
            return values
        await asyncio.sleep(0.5)
    pytest.fail(f"prometheus never answered every query: {values}")


async def test_the_policy_promql_reads_the_simulator(reader: MetricsReader) -> None:
    values = await eventually_complete(reader, "canary")
    assert values["error_rate"] == pytest.approx(0.0005, rel=0.05)
    assert values["control_traffic_share"] == pytest.approx(0.75)
    assert values["max_shard_cpu"] == pytest.approx(0.45)
    assert values["max_shard_memory"] == pytest.approx(0.55)
    assert values["max_shard_utilization"] == pytest.approx(0.55)
    assert values["ndcg_at_10"] == pytest.approx(0.5234)
    assert values["sla_recall_at_50"] == pytest.approx(0.97)
    assert values["p99_latency_seconds"] == pytest.approx(0.18, rel=0.1)
    assert values["baseline p99_latency_seconds"] == pytest.approx(0.18, rel=0.1)
    assert values["p99_latency_increase"] == pytest.approx(0.0, abs=0.05)
    # The treatment's failed queries over all of them: 25 % of the traffic, at the same rate.
    assert values["affected_share"] == pytest.approx(0.0005 * 0.25, rel=0.15)
    treatment = await reader.variant("canary", "treatment", reader.source.variants)
    assert treatment["error_rate"] == pytest.approx(0.0005, rel=0.05)
    assert treatment["ndcg_at_10"] == pytest.approx(0.5234)


async def test_baseline_check_through_prometheus(
    reader: MetricsReader, prometheus: str, scraped: SimulatorServer, policy: Policy, redis_url: str
) -> None:
    await eventually_complete(reader, "reverted")
    assert policy.metrics is not None
    on_prometheus = policy.model_copy(
        update={"metrics": policy.metrics.model_copy(update={"provider": "prometheus"})}
    )
    acts = RollbackActivities(
        settings_for(scraped.url, redis_url, prometheus_url=prometheus), policy=on_prometheus
    )
    try:
        result = await acts.check_baseline(
            BaselineCheckInput(ctx=ctx("reverted"), criteria=policy.health_criteria)
        )
    finally:
        await acts.aclose()
    assert result.healthy, result.summary


async def test_the_affected_share_is_read_over_the_rollback_period(reader: MetricsReader) -> None:
    """Issue 20: "user impact" was the error share now; it is the share over the rollback
    period, evaluated at the reversion (Prometheus's `time`) over its length (`{period}`)."""
    await eventually_complete(reader, "canary")
    now = datetime.now(UTC)
    recent = Period(start=now - timedelta(seconds=60), end=now)
    read = await reader.read("canary", ["affected_share"], period=recent)
    assert read.values["affected_share"] == pytest.approx(0.0005 * 0.25, rel=0.15)
    before = Period(start=now - timedelta(hours=2), end=now - timedelta(hours=1))
    earlier = await reader.read("canary", ["affected_share"], period=before)
    assert earlier.values["affected_share"] is None  # Prometheus held nothing then
