"""What the rollbacks count, through the workflow's metric meter (not emitted on replay), served
with the Temporal SDK's own metrics where the worker's runtime exports them
(`ROLLBACK_WORKER_METRICS_ADDRESS`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


def count(name: str, description: str, **labels: str) -> None:
    workflow.metric_meter().create_counter(name, description).add(1, labels)


def started(trigger: str, phase: int | None) -> None:
    count(
        "rollback_started",
        "Rollbacks started, by trigger and canary phase",
        trigger=trigger,
        phase=str(phase) if phase is not None else "unknown",
    )


def reverted(took: timedelta, trigger: str) -> None:
    workflow.metric_meter().create_histogram_float(
        "rollback_trigger_to_reversion_seconds",
        "From the trigger to traffic back on control (Step 1 confirmed), seconds",
        "s",
    ).record(max(took.total_seconds(), 0.0), {"trigger": trigger})


def decided(outcome: str, via: str) -> None:
    count(
        "rollback_decisions",
        "Decision windows closed, by outcome (rollback, deny) and via (slack, cli, default)",
        outcome=outcome,
        via=via,
    )


def escalated(reason: str) -> None:
    count("rollback_escalations", "Escalations opened, by kind of reason", reason=reason)


def over_budget(step: str) -> None:
    count("rollback_steps_over_budget", "Steps that ran past their budget", step=step)
