"""Settings from `ROLLBACK_…` environment variables (and a `.env` file)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from runbook.loading import DEFAULT_POLICY


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ROLLBACK_", env_file=".env", extra="ignore")

    temporal_address: str = Field("127.0.0.1:7233", description="Temporal frontend host:port")
    temporal_namespace: str = "default"
    otlp_endpoint: str | None = Field(
        default=None,
        description="OpenTelemetry collector's OTLP/HTTP traces URL (e.g. "
        "http://otel-collector:4318/v1/traces): the worker and the gateway trace every "
        "workflow, activity, signal and update through it; unset: no tracing",
    )
    worker_metrics_address: str | None = Field(
        default=None,
        description="host:port where the worker serves its metrics (the Temporal SDK's and the "
        "rollbacks': started, trigger → reversion, decisions, escalations, steps over budget) "
        "in Prometheus' format at /metrics; unset: none",
    )
    temporal_tls: bool = Field(False, description="TLS to the frontend (implied by an API key)")
    temporal_api_key: str | None = Field(None, description="Temporal Cloud API key")
    temporal_tls_cert: Path | None = Field(None, description="mTLS client certificate (PEM)")
    temporal_tls_key: Path | None = Field(None, description="mTLS client key (PEM)")
    task_queue: str = "rollback"
    policy: Path = Field(DEFAULT_POLICY, description="the policy file a new rollback runs under")
    home: Path = Field(
        Path(".rollback"), description="`rollback up`: the dev server's SQLite file, logs, token"
    )
    sticky_timeout: float = Field(
        5.0,
        gt=0,
        description="seconds Temporal waits for a worker that stopped answering before another "
        "worker takes over its workflows; shorter, a storm that keeps the worker busy that long "
        "sends its rollbacks' tasks back for full replays (150 deployments at 2 s: p99 to "
        "reversion 8 s, at 5 s: 3 s)",
    )
    worker_processes: int = Field(
        1,
        ge=1,
        le=2,
        description="`rollback up`: one worker process, or two (workflows, activities)",
    )
    worker_role: Literal["all", "workflows", "activities"] = Field(
        "all",
        description="what `rollback worker` runs: workflows and activities, or one of them "
        "(two processes, one GIL each)",
    )
    workflow_threads: int = Field(
        2, ge=1, description="threads the worker runs workflow tasks on (they hold the GIL)"
    )
    workflow_sandbox: bool = Field(
        False,
        description="run the worker's workflows in Temporal's sandbox; every test and replay "
        "always does, so the code is held to it, but in a running worker it costs a quarter of "
        "the worker's CPU in an alert storm (modules imported afresh per run, a sandbox call per "
        "payload)",
    )
    ui_metadata: bool = Field(
        True, description="search attributes and UI details (off only for the time-skipping server)"
    )

    # --- the gateway: alert webhooks and Slack ---------------------------------------------
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    alerts_token: str | None = Field(
        None, description="bearer token Alertmanager and Grafana must send to /alerts/…"
    )
    max_body_bytes: int = Field(
        4_000_000,
        description="larger webhook bodies are refused (413); Alertmanager sends every alert of a "
        "group in one body (10,000 alerts are about 2-4 MB)",
    )
    alerts_answer_within: float = Field(
        1.5,
        gt=0,
        description="seconds a webhook body waits for Temporal in all; past it (Temporal down) "
        "the body is answered 503 and the sender retries",
    )
    alert_repeat_ttl: float = Field(
        600.0, ge=0, description="seconds a delivered alert's repeats are answered from memory"
    )
    alert_concurrency: int = Field(
        32, ge=1, description="Temporal calls the gateway makes at once for alerts"
    )
    slack_signing_secret: str | None = Field(None, description="verifies Slack's requests")
    slack_bot_token: str | None = Field(None, description="xoxb- token for chat.postMessage")
    slack_app_token: str | None = Field(None, description="xapp- token for Socket Mode")
    slack_api_url: str | None = Field(
        None, description="Slack Web API base URL (a stand-in in tests), e.g. http://…/api/"
    )
    slack_rate: float = Field(
        0.9,
        ge=0,
        description="messages a second per Slack channel (0: unpaced), a little below Slack's "
        "1/s (clocks and networks jitter); shared by the activity workers of the task queue",
    )
    slack_burst: int = Field(3, ge=1, description="messages a channel may take at once")
    slack_team_id: str | None = Field(
        None,
        description="the Slack workspace (T…) the gateway serves: a click from another is refused",
    )
    gateway_signing_key: Path | None = Field(
        None,
        description="the gateway's OpenSSH ed25519 private key: what it relays from Slack is "
        "signed with it (its public half goes in the policy's identity.gateway_keys)",
    )
    ui_url: str = Field("http://127.0.0.1:8233", description="Temporal Web UI, for links")
    pagerduty_events_url: str | None = Field(
        None,
        description="PagerDuty's Events API v2 base URL (https://events.pagerduty.com); unset: "
        "escalations are told in Slack only",
    )
    pagerduty_webhook_secret: str | None = Field(
        None, description="verifies PagerDuty's v3 webhooks (incident.acknowledged)"
    )

    # --- the targets a rollback acts on; the defaults are the simulator's (`rollback up`) ----
    target_url: str = Field(
        "http://127.0.0.1:8100",
        description="base URL of every target (load balancer, config, flags, services, search, "
        "logs, metrics) unless its own setting below overrides it",
    )
    lb_url: str | None = Field(None, description="load balancer admin API")
    config_url: str | None = Field(None, description="configuration service")
    flags_url: str | None = Field(None, description="feature-flag service")
    services_url: str | None = Field(None, description="service control (systemctl)")
    search_url: str | None = Field(None, description="the search endpoint the smoke tests hit")
    logs_url: str | None = Field(None, description="log search, for the root cause analysis")
    metrics_url: str | None = Field(None, description="the http_json metrics provider")
    prometheus_url: str = Field(
        "http://127.0.0.1:9090", description="the prometheus metrics provider (HTTP API)"
    )
    target_token: str | None = Field(None, description="bearer token sent to every target")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="the configuration cache")
    config_cache_db: int = Field(
        1, ge=0, description="the Redis database Step 2 flushes; no other database is touched"
    )
    http_timeout: float = Field(2.0, gt=0, description="seconds per call to a target")
    health_poll_interval: float = Field(
        1.0, gt=0, description="seconds between two readings while health checks wait"
    )
    observe_scale: float = Field(
        1.0, ge=0, description="multiplies deep_validation.observe_for (shorter in drills/tests)"
    )
    smoke_test_attempts: int = Field(
        3, ge=1, description="tries per smoke test (the search endpoint fails at its error rate)"
    )
    log_lookback: float = Field(
        3600.0, gt=0, description="seconds of logs before the trigger that Step 6 gathers"
    )

    # --- the `command` driver on ssh:// hosts (policy: targets.drivers) ----------------------
    ssh_key: Path | None = Field(
        None, description="private key the command driver logs in with on ssh:// hosts"
    )
    ssh_key_passphrase: str | None = Field(None, description="the key's passphrase, if any")
    ssh_known_hosts: Path = Field(
        Path("~/.ssh/known_hosts"),
        description="host keys the command driver verifies against; unknown or changed: refused",
    )
    ssh_user: str | None = Field(
        None, description="user for ssh:// hosts that name none (default: the worker's user)"
    )
    ssh_connect_timeout: float = Field(5.0, gt=0, description="seconds to open an SSH connection")


def load_settings() -> Settings:
    return Settings()
