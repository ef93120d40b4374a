"""The before → now figures of the stakeholder messages: metrics only, never an alert's labels."""

from __future__ import annotations

from activities.audience_facts import figures
from activities.models import IncidentSummary


def incident(evidence: dict[str, str], before: dict[str, float | None]) -> IncidentSummary:
    return IncidentSummary(
        deployment="search-a",
        trigger="error_rate",
        trigger_name="Trigger 1: Critical Error Rate",
        phase=25,
        reason="",
        decided_by=["system"],
        drill=False,
        evidence=evidence,
        figures_before=before,
    )


def test_an_alerts_labels_are_not_figures_and_its_values_fill_an_unread_before() -> None:
    text = figures(
        incident(
            {"gate": "p95_latency", "severity": "critical", "value.error_rate": "0.052"},
            {"error_rate": None, "p99_latency_seconds": 0.41},
        ),
        {"error_rate": 0.0006, "p99_latency_seconds": 0.2},
    )
    assert "gate" not in text and "severity" not in text and "value." not in text
    [rate] = [line for line in text.splitlines() if "error_rate" in line]
    assert "0.052" in rate and "unread" not in rate


def test_the_watchs_judged_figure_is_the_before_of_its_metric() -> None:
    evidence = {"condition": "error_rate", "metric": "error_rate", "value": "0.013"}
    text = figures(incident(evidence, {"error_rate": None}), {"error_rate": 0.0005})
    assert "condition" not in text and "0.013" in text
    assert len(text.splitlines()) == 1
