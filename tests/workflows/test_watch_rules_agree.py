"""The canary watch and the rules `rollback rules` writes give the same answer on the same
recorded series: the rules through a real Prometheus rule engine (`promtool test rules`), the
watch through the time-skipping server, both reading every 15 s.

The series hold a shard's CPU breach one reading short of Trigger 3's 3 minutes, then one that
lasts, and the canary's SLA-Recall@50 failing its gate (>= 0.95) for longer than the gate's
5 minutes. Each raise of the watch (at reading r) must be the rule's alert firing at r x 15 s and
not one evaluation earlier; a breach the watch never raised never fires.

With no gap in the readings both agree exactly; on a gap they differ by design (README: the
watch pauses its sustain clock, Prometheus looks back over the gap with the last sample).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from contract.watch import CanaryReading
from runbook.alert_rules import alert_name, prometheus_rules
from runbook.policy import Policy
from tests.workflows.standins import HEALTHY, StandIns
from tests.workflows.test_canary_watch import INTERVAL, watching

PROMTOOL = shutil.which("promtool")
DEPLOYMENT_LABELS = 'deployment="search-a"'

READINGS = 70
CPU = [0.45] * 4 + [0.97] * 12 + [0.45] * 4 + [0.97] * 16 + [0.45] * 34
"""12 breaching readings span 165 s (< 3 m): never; then 16, sustained at the 13th."""
RECALL = [0.97] * 30 + [0.91] * 25 + [0.97] * 15
"""25 failing readings span 6 m: sustained at the 21st (5 m)."""
assert len(CPU) == len(RECALL) == READINGS


def reading(index: int) -> CanaryReading:
    values = dict(HEALTHY)
    values["max_shard_cpu"] = CPU[min(index, READINGS - 1)]
    values["treatment:sla_recall_at_50"] = RECALL[min(index, READINGS - 1)]
    return CanaryReading(values=values, treatment=25)


async def watch_raises(env: WorkflowEnvironment, policy: Policy) -> dict[str, list[int]]:
    """Trigger → the reading numbers at which the watch raised it."""
    standins = StandIns(canary=reading)
    raised: dict[str, list[int]] = {}
    async with watching(env, policy, standins) as w:
        seen = 0
        for _ in range(READINGS):
            await w.after(1)
            calls = w.raised()
            for call in calls[seen:]:
                # The raise follows the reading it judged: the last one taken.
                raised.setdefault(call.event.trigger, []).append(standins.canary_readings - 1)
            seen = len(calls)
    return raised


def promtool_tests(policy: Policy, raised: dict[str, list[int]]) -> dict[str, Any]:
    names = {
        "resource_exhaustion": alert_name(policy, "resource_exhaustion"),
        policy.watch.gate_trigger: "RollbackGateSlaRecall",
    }
    labels = {
        "resource_exhaustion": {"deployment": "search-a", "trigger": "resource_exhaustion"},
        policy.watch.gate_trigger: {
            "deployment": "search-a",
            "trigger": policy.watch.gate_trigger,
            "gate": "sla_recall",
        },
    }
    checks: list[dict[str, Any]] = []
    for trigger, alertname in names.items():
        rule_labels = {
            **labels[trigger],
            "service": policy.service,
            "severity": severity(policy, trigger),
        }
        for at in raised.get(trigger, []):
            firing = [{"exp_labels": rule_labels}]
            checks.append(
                {"eval_time": f"{(at - 1) * INTERVAL}s", "alertname": alertname, "exp_alerts": []}
            )
            checks.append(
                {"eval_time": f"{at * INTERVAL}s", "alertname": alertname, "exp_alerts": firing}
            )
    # The short breach (readings 4-15): the watch never raised it, the rule never fires.
    for at in (15, 16, 19):
        checks.append(
            {
                "eval_time": f"{at * INTERVAL}s",
                "alertname": names["resource_exhaustion"],
                "exp_alerts": [],
            }
        )

    def values(series: list[float]) -> str:
        return " ".join(f"{v:g}" for v in series)

    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": f"{INTERVAL}s",
        "tests": [
            {
                "interval": f"{INTERVAL}s",
                "input_series": [
                    {
                        "series": f'search_shard_cpu_ratio{{{DEPLOYMENT_LABELS},shard="s1"}}',
                        "values": values(CPU),
                    },
                    {
                        "series": f'search_shard_memory_ratio{{{DEPLOYMENT_LABELS},shard="s1"}}',
                        "values": values([0.5] * READINGS),
                    },
                    {
                        "series": "search_sla_recall_at_50"
                        f'{{{DEPLOYMENT_LABELS},variant="treatment"}}',
                        "values": values(RECALL),
                    },
                ],
                "alert_rule_test": checks,
            }
        ],
    }


def severity(policy: Policy, trigger: str) -> str:
    found = policy.triggers.get(trigger)
    return "critical" if found is not None and found.kind == "automated" else "warning"


def without_annotations(document: dict[str, Any]) -> dict[str, Any]:
    """The generated rules as they are, minus the annotations (text, not the condition)."""
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return document


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
async def test_the_watch_and_the_generated_rules_fire_at_the_same_evaluations(
    skipping_env: WorkflowEnvironment, policy: Policy, tmp_path: Path
) -> None:
    assert PROMTOOL is not None
    raised = await watch_raises(skipping_env, policy)
    # The watch's own answer first: one raise each, where the sustain says.
    assert raised == {"resource_exhaustion": [20 + 12], policy.watch.gate_trigger: [30 + 20]}
    (tmp_path / "rules.yml").write_text(
        yaml.safe_dump(without_annotations(prometheus_rules(policy)))
    )
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(promtool_tests(policy, raised)))
    result = subprocess.run(  # noqa: ASYNC221 - promtool is the test's last step
        [PROMTOOL, "test", "rules", "tests.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
