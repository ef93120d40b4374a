"""Traces through OpenTelemetry when ROLLBACK_OTLP_ENDPOINT is set: a rollback on the dev server
sends its workflow, signal and activity spans over OTLP/HTTP to a collector (a local stand-in
that decodes the protobuf the OTLP exporter sends)."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from fastapi import FastAPI, Request, Response
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from config import tracing
from config.connection import connect
from config.settings import Settings
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from simulator import ThreadedServer
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS


def collector(spans: list[tuple[str, str]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        spans.append(("content-type", request.headers.get("content-type", "")))
        body = ExportTraceServiceRequest.FromString(await request.body())
        for resource in body.resource_spans:
            service = next(
                a.value.string_value
                for a in resource.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource.scope_spans:
                spans.extend((service, span.name) for span in scope.spans)
        return Response(status_code=200)

    return app


async def test_a_rollback_is_traced_to_the_otlp_collector(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    spans: list[tuple[str, str]] = []
    with ThreadedServer(collector(spans)) as otel:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            temporal_address=local_env.client.service_client.config.target_host,
            otlp_endpoint=f"{otel.url}/v1/traces",
            task_queue=f"traced-{uuid4()}",
        )
        client = await connect(settings, service="rollback-worker")
        deployment = f"search-{uuid4().hex[:8]}"
        async with Worker(
            client,
            task_queue=settings.task_queue,
            workflows=WORKFLOWS,
            activities=StandIns(treatment=25).activities(),
        ):
            await operations.send_trigger(
                client,
                task_queue=settings.task_queue,
                policy=policy,
                deployment=deployment,
                event=TriggerEvent(trigger="error_rate", source="test"),
                options=RollbackOptions(ui_metadata=False),
            )
            for _ in range(100):
                if (await operations.status(client, deployment)).state == "following_up":
                    break
                await asyncio.sleep(0.1)
            await client.get_workflow_handle(f"rollback-{deployment}").terminate("traced")
        for _ in range(100):  # the batch processor sends every half second
            if any(name.startswith("RunActivity:") for _, name in spans):
                break
            await asyncio.sleep(0.1)
        # Sent and stopped while the collector still answers: no exporter of this test keeps
        # retrying into the tests after it.
        provider = trace.get_tracer_provider()
        getattr(provider, "shutdown", lambda: None)()
        # OpenTelemetry takes one global provider per process: a later tracing test in this
        # session would export nothing, so say so rather than pass silently.
        tracing._provider.cache_clear()
    assert ("content-type", "application/x-protobuf") in spans
    spans = [(s, n) for s, n in spans if s != "content-type"]
    names = {name for _, name in spans}
    assert {s for s, _ in spans} == {"rollback-worker"}
    assert "SignalWithStartWorkflow:RollbackWorkflow" in names, sorted(names)
    assert "RunWorkflow:RollbackWorkflow" in names
    assert "RunActivity:set_traffic_split" in names
