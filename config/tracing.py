"""Traces through OpenTelemetry when `ROLLBACK_OTLP_ENDPOINT` is set: Temporal's
`TracingInterceptor` on the client (the worker inherits it), spans exported over OTLP/HTTP."""

from __future__ import annotations

import threading
from functools import cache

from temporalio.client import Interceptor

from config.settings import Settings


@cache
def _provider(endpoint: str, service: str) -> object:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500)
    )
    trace.set_tracer_provider(provider)
    return provider


def interceptors(settings: Settings, service: str) -> list[Interceptor]:
    """The tracing interceptor, or none when no OTLP endpoint is set."""
    if not settings.otlp_endpoint:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    _provider(settings.otlp_endpoint, service)
    return [TracingInterceptor()]


def flush(within: float = 3.0) -> None:
    """Send what is buffered (at a process's end), giving up after `within` seconds: the
    exporter's flush can stall while its batch thread exports, and an exit must not hang."""
    from opentelemetry import trace

    force = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force is None:
        return
    sender = threading.Thread(target=force, kwargs={"timeout_millis": int(within * 1000)})
    sender.daemon = True
    sender.start()
    sender.join(within)
