"""Issue 18's first finding on the real servers: a rollback that has done its steps and waits for
its end-of-run messages (Slack answering 503) takes a person's trigger (the real `rollback
trigger` command) and answers it within seconds, and a later alert for the deployment rolls it
back as a fresh run would. Before, the trigger's update waited for the run's end, which waited
for the update: the run stayed Running forever and automatic rollback was off for the
deployment."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from client import operations
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from tests.gateway.slack_standin import SlackServer, SlackStandIn
from tests.integration.conftest import Rig
from tests.policies import edited

pytestmark = pytest.mark.timeout(90)

QUICK = {"decisions.after_rollback_watch": "1s"}
"""The stability watch ends at once: the run then waits only for its messages."""


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    with SlackServer(SlackStandIn()) as server:
        yield server


async def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_a_trigger_while_the_run_waits_for_slack_is_answered_and_a_later_alert_rolls_back(
    local_env: WorkflowEnvironment,
    policy: Policy,
    make_rig: Callable[..., Any],
    slack: SlackServer,
    tmp_path: Path,
) -> None:
    quick = edited(policy, QUICK)
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(quick.model_dump_json())
    settings = {"slack_bot_token": "xoxb-test", "slack_api_url": f"{slack.url}/api"}
    async with make_rig(25, quick, settings) as r:
        rig: Rig = r
        handle = rig.client.get_workflow_handle(f"rollback-{rig.deployment}")
        # Slack fails the end-of-run report (answered 503, retried) for now.
        slack.standin.refuse = lambda method, body: "📄" in str(body.get("text", ""))
        await rig.trigger("error_rate")
        first = await rig.until(lambda s: s.state == "rolled_back")
        assert first.trigger == "error_rate"
        assert any(c.error for c in slack.standin.calls)  # refused, and retried
        description = await handle.describe()
        assert description.status == WorkflowExecutionStatus.RUNNING  # waiting for Slack
        first_run = description.run_id

        env = {
            **os.environ,
            "ROLLBACK_TEMPORAL_ADDRESS": local_env.client.service_client.config.target_host,
            "ROLLBACK_TASK_QUEUE": rig.task_queue,
            "ROLLBACK_POLICY": str(policy_file),
            "ROLLBACK_SLACK_BOT_TOKEN": "",
        }
        loop = asyncio.get_running_loop()
        began = loop.time()
        done = await asyncio.to_thread(
            cli,
            env,
            "trigger",
            "-d",
            rig.deployment,
            "-t",
            "operational_anomaly",
            "-r",
            "search results look wrong",
            "--as",
            "dri-backend",
            "--format",
            "json",
        )
        took = loop.time() - began
        assert done.returncode == 0, done.stdout + done.stderr
        answer = json.loads(done.stdout)
        assert answer["stored"] is False and answer["accepted"] is True, answer
        assert "dri-backend" in answer["message"] or "Backend" in answer["message"], answer
        assert took < 15, took

        ended = await rig.client.get_workflow_handle(handle.id, run_id=first_run).describe()
        assert ended.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
        slack.standin.refuse = None
        second = await rig.until(
            lambda s: s.trigger == "operational_anomaly" and s.state in ("rolled_back",), 30
        )
        assert second.decided_by == ["dri-backend"]

        # The canary is put back at 25 %; an alert then rolls it back, as on a fresh run.
        await rig.target("POST", "/deployments", {"name": rig.deployment, "treatment": 25})
        await operations.send_trigger(
            rig.client,
            task_queue=rig.task_queue,
            policy=quick,
            deployment=rig.deployment,
            event=TriggerEvent(trigger="error_rate", source="alertmanager", delivery_key="again"),
            options=RollbackOptions(ui_metadata=True),
        )

        async def reverted() -> bool:
            split = await rig.target("GET", f"/lb/{rig.deployment}/split")
            return bool(split["treatment"] == 0)

        await eventually(reverted, timeout=20)
        third = await rig.until(lambda s: s.trigger == "error_rate" and s.phase == 25, 20)
        assert third.mode == "auto"
