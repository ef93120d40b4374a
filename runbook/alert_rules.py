"""Prometheus alerting rules and an Alertmanager configuration, from a policy.

The canary watch's conditions, as alerting rules (`runbook/watching.py` gives them): one rule
per trigger that has a metric, comparison and threshold (the automated ones, and quality
regression, which opens a decision window), and one per primary success gate, firing when the
gate's condition does *not* hold and raising the watch's `gate_trigger`. Each is the metric as
PromQL over every deployment (`metrics.prometheus.alert_rules`), held for its sustain, with the
`deployment` and `trigger` labels the gateway routes by (a gate's also carries `gate`). The
Alertmanager configuration sends every alert the gateway can route to its webhook, with the
bearer token.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import yaml

from runbook.durations import format_duration
from runbook.loading import Problem
from runbook.policy import Comparison, MetricQuery, MetricsSource, Policy, Trigger
from runbook.watching import conditions

RECEIVER = "rollback-gateway"
WEBHOOK_PATH = "/alerts/alertmanager"


def check(policy: Policy) -> list[Problem]:
    """What keeps the policy from giving alert rules, as file-relative field paths."""
    prometheus = policy.metrics.prometheus if policy.metrics else None
    if prometheus is None:
        return [Problem("metrics.prometheus", "is required: alert rules are PromQL (alert_rules)")]
    problems = []
    automated = automated_triggers(policy)
    if not automated:
        problems.append(
            Problem("triggers", "no automated trigger: there is no alert rule to write")
        )
    for trigger_id, trigger in automated.items():
        if trigger.metric is None or trigger.comparison is None or trigger.threshold is None:
            problems.append(
                Problem(
                    f"triggers.{trigger_id}",
                    "its alert rule needs metric, comparison and threshold (an automated trigger)",
                )
            )
    for condition in conditions(policy):
        if condition.metric not in prometheus.alert_rules and condition.raises:
            where = (
                f"triggers.{condition.trigger}"
                if condition.breach_when_holds
                else f"watch.gates.{condition.id.removeprefix('gate:')}"
            )
            problems.append(
                Problem(
                    "metrics.prometheus.alert_rules",
                    f"no query for {condition.metric!r}, the metric of {where}",
                )
            )
    for metric, query in prometheus.alert_rules.items():
        if "{deployment}" in query.query or "{variant}" in query.query:
            problems.append(
                Problem(
                    f"metrics.prometheus.alert_rules.{metric}",
                    "covers every deployment at once: no {deployment} or {variant}; "
                    "keep the deployment label with `by (deployment)`",
                )
            )
    return problems


def automated_triggers(policy: Policy) -> dict[str, Trigger]:
    return {tid: t for tid, t in policy.triggers.items() if t.kind == "automated"}


def alert_name(policy: Policy, trigger_id: str) -> str:
    """The alertname that `alerts.names` gives the trigger, else one made from its id."""
    for name, named_trigger in policy.alerts.names.items():
        if named_trigger == trigger_id:
            return name
    return "Rollback" + "".join(part.capitalize() for part in trigger_id.split("_"))


def prometheus_rules(policy: Policy) -> dict[str, Any]:
    """rules.yml: one alerting rule per watched condition that raises (the policy passed
    `check`): the same conditions, thresholds and sustains as the canary watch."""
    alert_queries = _prometheus(policy).alert_rules
    routing = policy.alerts
    deployment = f'{{{{ index $labels "{routing.deployment_label}" }}}}'
    value = '{{ printf "%.4g" $value }}'
    rules = []
    for c in conditions(policy):
        if not c.raises:
            continue
        threshold = number(c.threshold)
        sustain = format_duration(c.sustain)
        breach = c.comparison if c.breach_when_holds else NEGATION[c.comparison]
        labels = {routing.trigger_label: c.trigger, "service": policy.service}
        if c.breach_when_holds:
            trigger = policy.triggers[c.trigger]
            name, description = alert_name(policy, c.trigger), trigger.condition
            summary = f"{trigger.name} on {deployment}: {c.metric} {value} {breach} {threshold}"
            labels["severity"] = "critical" if trigger.kind == "automated" else "warning"
        else:
            gate = c.id.removeprefix("gate:")
            name = "RollbackGate" + "".join(part.capitalize() for part in gate.split("_"))
            description = f"success gate {c.name}: {c.metric} {c.comparison} {threshold}"
            summary = f"{c.name} fails on {deployment}: {c.metric} {value} {breach} {threshold}"
            labels |= {"gate": gate, "severity": "warning"}
        rules.append(
            {
                "alert": name,
                "expr": f"{_expression(alert_queries[c.metric])} {breach} {threshold}",
                "for": sustain,
                "labels": labels,
                "annotations": {"summary": f"{summary} for {sustain}", "description": description},
            }
        )
    return {"groups": [{"name": f"rollback-{policy.name}", "rules": rules}]}


NEGATION: Mapping[Comparison, str] = MappingProxyType(
    {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!="}
)
"""A gate fails when its condition does not hold: the PromQL comparison that says so."""


def alertmanager_config(
    policy: Policy, gateway_url: str, *, token: str | None = None, token_file: str | None = None
) -> dict[str, Any]:
    """alertmanager.yml: the alerts the gateway can route go to its webhook, the rest nowhere.

    The token is written in the file (`token`) or read by Alertmanager from a file
    (`token_file`, as Alertmanager sees it); exactly one of them.
    """
    if (token is None) == (token_file is None):
        raise ValueError("give exactly one of token and token_file")
    authorization: dict[str, str] = {"type": "Bearer"}
    if token is not None:
        authorization["credentials"] = token
    else:
        assert token_file is not None
        authorization["credentials_file"] = token_file
    routing = policy.alerts
    routes = [{"receiver": RECEIVER, "matchers": [_one_of(routing.trigger_label, policy.triggers)]}]
    if routing.names:
        routes.append({"receiver": RECEIVER, "matchers": [_one_of("alertname", routing.names)]})
    return {
        "route": {
            "receiver": "not-a-rollback",
            # One notification per incident; the gateway acts on the first and records repeats.
            "group_by": ["alertname", routing.deployment_label, routing.trigger_label],
            "group_wait": "0s",
            "group_interval": "1m",
            "repeat_interval": "1h",
            "routes": routes,
        },
        "receivers": [
            {"name": "not-a-rollback"},
            {
                "name": RECEIVER,
                "webhook_configs": [
                    {
                        "url": webhook_url(gateway_url),
                        "send_resolved": True,
                        "http_config": {"authorization": authorization},
                    }
                ],
            },
        ],
    }


def webhook_url(gateway_url: str) -> str:
    base = gateway_url.rstrip("/")
    return base if base.endswith(WEBHOOK_PATH) else base + WEBHOOK_PATH


def render(document: dict[str, Any], policy: Policy) -> str:
    """YAML with a header that says where the file comes from."""
    header = (
        f"# Generated by `rollback rules` from policy {policy.name!r}: do not edit, change the\n"
        "# policy and run `rollback rules` again.\n"
    )
    # Unfolded: an expression or a template stays on one line, as Prometheus prints it.
    return header + yaml.dump(document, sort_keys=False, allow_unicode=True, width=1 << 16)


def number(value: float) -> str:
    """A threshold as PromQL reads it: 0.005, 0.95, 2."""
    return repr(int(value)) if math.isfinite(value) and value == int(value) else repr(value)


def _prometheus(policy: Policy) -> MetricsSource:
    prometheus = policy.metrics.prometheus if policy.metrics else None
    assert prometheus is not None, "check(policy) first"
    return prometheus


def _expression(query: MetricQuery) -> str:
    text = " ".join(query.query.split())
    return f"({text})" if query.scale == 1 else f"({text}) * {number(query.scale)}"


def _one_of(label: str, values: Any) -> str:
    return f'{label}=~"{"|".join(re.escape(v) for v in values)}"'
