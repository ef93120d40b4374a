"""The demo scenario, played against the embedded stack through the real webhook and CLI.

Both deployments are under the engine's own canary watch, with the demo policy's short periods
(policies/demo.yaml: error rate sustained 6 s instead of the plan's 2 minutes, read every second).

Act 1: the treatment of `search-a` (25 % canary) starts failing; the watch sees the error rate
over 0.5 % hold for its sustain period and raises Trigger 1: the rollback is automatic. The same
alert from Alertmanager, arriving later through the gateway, joins it.
Act 2: nDCG@10 of `search-b` (50 % canary) regresses; the watch raises a quality regression,
and the decision window needs the QA DRI *and* a sprint DRI, who both approve with
`rollback decide`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from temporalio.client import Client

from cli.follow import SETTLED, follow, in_state
from config.settings import Settings
from contract.rollback import workflow_id
from runbook.durations import format_duration
from runbook.policy import Policy
from runbook.status import RollbackStatus

DEPLOYMENTS = {"search-a": 25, "search-b": 50}
ACT_TIMEOUT_SECONDS = 120.0


@dataclass
class Demo:
    settings: Settings
    client: Client
    alerts_token: str
    policy: Policy
    say: Callable[[str], None] = print
    failures: list[str] = field(default_factory=list)
    finals: dict[str, RollbackStatus] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.settings.target_url.rstrip("/")

    @property
    def gateway(self) -> str:
        return f"http://{self.settings.gateway_host}:{self.settings.gateway_port}"

    async def play(self) -> list[str]:
        async with httpx.AsyncClient(timeout=10.0) as http:
            await self.act_1(http)
            await self.act_2(http)
        await self.verify()
        return self.failures

    # --- act 1: an automated rollback --------------------------------------------------

    async def act_1(self, http: httpx.AsyncClient) -> None:
        self.say("\n━━ Act 1: search-a at 25 % starts failing; the canary watch sees it ━━")
        self.say(
            f"  DEMO POLICY ({self.policy.name}): {self.sustain('error_rate')}, read every "
            f"{format_duration(self.policy.watch.interval)} — the plan's is 2 minutes, every 15 s"
        )
        # 3 % of the treatment's queries fail: over the trigger's 0.5 % of all traffic at 25 %,
        # under the plan's "<1 % of queries affected" when the rollback is as fast as it should.
        await self.inject(http, "search-a", {"treatment_error_rate": 0.03})
        figures = (await http.get(f"{self.target}/metrics/search-a")).json()
        total, treatment = figures["total"], figures["treatment"]
        self.say(
            f"  error rate {total['error_rate']:.2%} of all traffic (treatment "
            f"{treatment['error_rate']:.1%}, control {figures['control']['error_rate']:.2%})"
        )
        started, seen = await follow(
            self.client,
            "search-a",
            lambda s: s.state not in ("triggered",) and bool(s.trigger),
            within=ACT_TIMEOUT_SECONDS,
            say=self.say,
        )
        self.say(f"  → the watch raised {started.trigger}: {started.reason}")
        alert = alertmanager_alert("search-a", "error_rate", "SearchTreatmentErrorRateHigh")
        self.say(
            f"  POST {self.gateway}/alerts/alertmanager  (the same alert from Alertmanager, later)"
        )
        answer = await http.post(
            f"{self.gateway}/alerts/alertmanager",
            json=alert,
            headers={"Authorization": f"Bearer {self.alerts_token}"},
        )
        if answer.status_code != 200:
            raise_failure(f"the gateway answered {answer.status_code}: {answer.text}")
        for result in answer.json()["results"]:
            self.say(f"  → {result['status']}: {result['trigger']} joined {result['workflow_id']}")
        final, _ = await follow(
            self.client,
            "search-a",
            in_state(SETTLED),
            within=ACT_TIMEOUT_SECONDS,
            say=self.say,
            seen=seen,
        )
        self.finals["search-a"] = final

    def sustain(self, trigger: str) -> str:
        t = self.policy.triggers[trigger]
        return (
            f"{t.name}: {t.metric} {t.comparison} {t.threshold:g} held {format_duration(t.sustain)}"
        )

    # --- act 2: a manual decision, two people ------------------------------------------

    async def act_2(self, http: httpx.AsyncClient) -> None:
        self.say("\n━━ Act 2: search-b at 50 % loses ranking quality; the canary watch sees it ━━")
        await self.inject(http, "search-b", {"treatment_ndcg_at_10": 0.41})
        figures = (await http.get(f"{self.target}/metrics/search-b")).json()
        rule = self.sustain("quality_regression")
        self.say(
            f"  treatment nDCG@10 {figures['treatment']['ndcg_at_10']:.3f} "
            f"(control {figures['control']['ndcg_at_10']:.3f}); {rule}"
        )
        opened, seen = await follow(
            self.client,
            "search-b",
            lambda s: s.decision is not None or s.state in SETTLED,
            within=ACT_TIMEOUT_SECONDS,
            say=self.say,
        )
        if opened.decision is None:
            raise_failure(f"no decision window opened for search-b (state {opened.state})")
        assert opened.decision is not None
        approvers = " or ".join(" + ".join(s) for s in opened.decision.approvers)
        self.say(
            f"  decision window until {opened.decision.deadline:%H:%M:%S} UTC "
            f"(then {opened.decision.default_action}); needs {approvers}"
        )
        self.cli("decide", "-d", "search-b", "--approve", "--as", "qa-dri")
        self.cli("decide", "-d", "search-b", "--approve", "--as", "dri-search")
        final, _ = await follow(
            self.client,
            "search-b",
            in_state(SETTLED),
            within=ACT_TIMEOUT_SECONDS,
            say=self.say,
            seen=seen,
        )
        self.finals["search-b"] = final

    # --- the verdict -------------------------------------------------------------------

    async def verify(self) -> None:
        a, b = self.finals.get("search-a"), self.finals.get("search-b")
        for name, final in self.finals.items():
            first = next((e for e in final.timeline if e.kind == "trigger"), None)
            self.check(
                first is not None and first.by == "watch",
                f"{name}: the first trigger came from {first.by if first else 'nobody'}, "
                "not the canary watch",
            )
        self.check(a is not None and a.mode == "auto", "search-a: the rollback was not automatic")
        self.check(
            b is not None and {"qa-dri", "dri-search"} <= set(b.decided_by),
            f"search-b: decided by {b.decided_by if b else '-'}, not by the QA DRI and a DRI",
        )
        async with httpx.AsyncClient(timeout=5.0) as http:
            for name, final in self.finals.items():
                self.check(
                    final.state == "following_up",
                    f"{name}: ended {final.state}, expected following_up",
                )
                missed = [rt.name for rt in final.response_times if rt.met is False]
                self.check(not missed, f"{name}: missed {', '.join(missed)}")
                names = {t.id: t.name for t in self.policy.recovery_targets}
                for target, measure in final.recovery.items():
                    self.check(
                        measure.result != "fail",
                        f"{name}: {names.get(target, target)} failed: {measure.evidence}",
                    )
                failed = [s.name for s in final.steps if s.outcome != "ok"]
                self.check(not failed, f"{name}: steps not ok: {', '.join(failed)}")
                split = (await http.get(f"{self.target}/lb/{name}/split")).json()
                self.check(
                    split["treatment"] == 0,
                    f"{name}: treatment still at {split['treatment']} %",
                )

    def check(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)

    # --- the real parts ----------------------------------------------------------------

    async def inject(
        self, http: httpx.AsyncClient, deployment: str, faults: dict[str, float]
    ) -> None:
        answer = await http.post(f"{self.target}/faults/{deployment}", json=faults)
        answer.raise_for_status()
        shown = ", ".join(f"{k}={v}" for k, v in faults.items())
        self.say(f"  (simulator) inject {shown} on {deployment}")

    def cli(self, *args: str) -> None:
        """Run the real `rollback` command, as a person would type it."""
        self.say(f"  $ rollback {' '.join(quote(a) for a in args)}")
        done = subprocess.run(
            [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60
        )
        for line in (done.stdout + done.stderr).strip().splitlines():
            self.say(f"    {line}")
        if done.returncode != 0:
            raise_failure(f"`rollback {' '.join(args)}` exited {done.returncode}")

    def links(self) -> list[str]:
        base = f"{self.settings.ui_url}/namespaces/{self.settings.temporal_namespace}/workflows"
        return [f"{base}/{workflow_id(name)}" for name in DEPLOYMENTS] + [base]


class DemoFailed(Exception):
    pass


def raise_failure(reason: str) -> None:
    raise DemoFailed(reason)


def quote(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


def alertmanager_alert(deployment: str, trigger: str, name: str) -> dict[str, object]:
    """What Alertmanager posts (webhook version 4) for one firing alert."""
    labels = {"alertname": name, "deployment": deployment, "trigger": trigger, "severity": "page"}
    return {
        "version": "4",
        "status": "firing",
        "receiver": "rollback-gateway",
        "groupKey": f'{{}}:{{alertname="{name}"}}',
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": name},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.local:9093",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {
                    "summary": f"{deployment} treatment error rate above 1 % for 2 minutes",
                },
                "startsAt": "2026-11-29T03:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local:9090/graph?g0.expr=error_rate",
                "fingerprint": f"{deployment}-{trigger}",
            }
        ],
    }
