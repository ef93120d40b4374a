"""The gateway's own metrics, in Prometheus' text format at `/metrics`: what arrives, how it is
answered and how fast, so that an SRE can graph the engine and alert on it.

One registry per app (tests build many apps in one process).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

WEBHOOK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.5, 5.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.alerts = Counter(
            "rollback_gateway_alerts",
            "Alerts received, by source (alertmanager, grafana) and per-alert outcome "
            "(sent, recorded, repeat, ignored, unmapped, invalid, blind_spot, failed)",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.webhook_seconds = Histogram(
            "rollback_gateway_webhook_seconds",
            "Time to answer an alert webhook, by source and HTTP status",
            ["source", "status"],
            buckets=WEBHOOK_BUCKETS,
            registry=self.registry,
        )
        self.slack = Counter(
            "rollback_gateway_slack_requests",
            "Slack requests, by kind (interaction, command) and verdict (taken, refused, "
            "unsigned, invalid)",
            ["kind", "verdict"],
            registry=self.registry,
        )
        self.temporal_errors = Counter(
            "rollback_gateway_temporal_errors",
            "Calls to Temporal that failed (the alert or the click was answered 503 or told so)",
            ["call"],
            registry=self.registry,
        )
        self.pagerduty = Counter(
            "rollback_gateway_pagerduty_webhooks",
            "PagerDuty v3 webhooks, by outcome (acknowledged, refused, stored, ignored, "
            "not_ours, not_recorded, unsigned, invalid)",
            ["outcome"],
            registry=self.registry,
        )
