"""One way to reach Temporal, used by the worker, the gateway and the CLI alike."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from config import tracing
from config.settings import Settings


def metrics_runtime(address: str) -> Runtime:
    """A Temporal runtime whose metrics (the SDK's, and what workflows count with
    `workflow.metric_meter()`) Prometheus scrapes at http://ADDRESS/metrics."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def connect(
    settings: Settings, runtime: Runtime | None = None, service: str = "rollback"
) -> Client:
    """`service`: the name traces carry (rollback-worker, rollback-gateway) when
    ROLLBACK_OTLP_ENDPOINT is set."""
    tls: bool | TLSConfig = settings.temporal_tls or settings.temporal_api_key is not None
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=tls,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        interceptors=tracing.interceptors(settings, service),
    )
