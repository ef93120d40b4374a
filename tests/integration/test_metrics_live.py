"""The engine's own metrics on the real dev server: the gateway's /metrics (alerts by source and
outcome, webhook latency, Slack verdicts), /livez and /readyz; the worker's runtime exporting the
Temporal SDK's metrics and the rollbacks' (started, trigger → reversion, decisions,
escalations, steps over budget); and every metric the shipped Grafana dashboard graphs exists."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from config.connection import metrics_runtime
from gateway.app import create_app
from runbook.policy import Policy
from tests.activities.servers import free_port
from tests.gateway.conftest import TOKEN, make_settings
from tests.policies import edited
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.timeout(90)

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "rollback-engine.json"
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "le", "max", "min"}


def names_in(exposition: str) -> set[str]:
    """Metric names a scrape shows: samples, and families declared with no sample yet."""
    found = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            found.add(name)
            if kind == "counter":
                found.add(f"{name}_total")
            if kind == "histogram":
                found |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        elif line and not line.startswith("#"):
            found.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return found


def graphed() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    names = set()
    for expr in exprs:
        without_labels = re.sub(r"\{[^}]*\}|\[[^\]]*\]|by \([^)]*\)", " ", expr)
        names |= {w for w in re.findall(r"[a-z_][a-z0-9_]*", without_labels)} - PROMQL_WORDS
    return names


async def test_the_gateway_and_the_worker_export_what_the_dashboard_graphs(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    address = f"127.0.0.1:{free_port()}"
    client = await Client.connect(
        local_env.client.service_client.config.target_host,
        data_converter=pydantic_data_converter,
        runtime=metrics_runtime(address),
    )
    settings = make_settings(temporal_address=local_env.client.service_client.config.target_host)
    # A Phase 1 budget the flaky load balancer misses: a step over budget, and an escalation.
    policy = edited(policy, {"procedure.0.steps.0.budget": "1s"})
    app = create_app(settings, policy)
    standins = StandIns(treatment=25, action_faults={"traffic_split": 2})
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as gw,
        Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            activities=standins.activities(),
        ),
    ):
        assert (await gw.get("/livez")).status_code == 200
        deployment = f"search-{uuid4().hex[:8]}"
        alert = {
            "version": "4",
            "status": "firing",
            "receiver": "rollback",
            "groupKey": "{}:{}",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "x", "deployment": deployment, "trigger": "error_rate"},
                    "annotations": {"summary": "errors"},
                    "startsAt": "2026-12-01T00:00:00Z",
                    "fingerprint": "f1",
                },
                {"status": "firing", "labels": {"alertname": "DiskFull"}},
            ],
        }
        sent = await gw.post(
            "/alerts/alertmanager", json=alert, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert sent.status_code == 200, sent.text
        unsigned = await gw.post("/slack/commands", content=b"text=x")
        assert unsigned.status_code == 401
        for _ in range(150):
            status = await operations.status(client, deployment)
            if status.state == "following_up":
                break
            await asyncio.sleep(0.1)
        assert status.state == "following_up", status.state
        ready = await gw.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert "1 polling" in ready.json()["workers"]

        gateway_text = (await gw.get("/metrics")).text
        async with httpx.AsyncClient() as http:
            for _ in range(50):  # the SDK's exporter publishes what workflows record in a moment
                worker_text = (await http.get(f"http://{address}/metrics")).text
                if "rollback_trigger_to_reversion_seconds_count" in worker_text:
                    break
                await asyncio.sleep(0.1)
        await client.get_workflow_handle(f"rollback-{deployment}").terminate("test finished")

    assert 'rollback_gateway_alerts_total{outcome="sent",source="alertmanager"} 1.0' in gateway_text
    assert 'outcome="unmapped",source="alertmanager"} 1.0' in gateway_text
    assert 'rollback_gateway_slack_requests_total{kind="command",verdict="unsigned"} 1.0' in (
        gateway_text
    )
    assert "rollback_gateway_webhook_seconds_bucket" in gateway_text
    assert re.search(r'rollback_started\{[^}]*trigger="error_rate"[^}]*\} 1', worker_text)
    assert re.search(r"rollback_trigger_to_reversion_seconds_count\{[^}]*\} 1", worker_text)
    assert re.search(r'rollback_decisions\{[^}]*via="system"[^}]*\} 1', worker_text)
    assert re.search(r'rollback_steps_over_budget\{[^}]*step="emergency_stop"', worker_text)
    assert re.search(r'rollback_escalations\{[^}]*reason="budget"', worker_text), worker_text
    exported = names_in(gateway_text) | names_in(worker_text)
    missing = graphed() - exported
    assert not missing, f"the dashboard graphs metrics nobody exports: {sorted(missing)}"
