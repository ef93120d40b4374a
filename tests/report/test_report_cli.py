"""`rollback report` against the dev server: Markdown, JSON and --out for a running rollback,
a completed drill read without any worker, and the error paths."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.conftest import ASSERTED_POLICY
from tests.report.test_report import REPORT_KEYS
from tests.workflows.helpers import terminate_rollback
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.timeout(90)


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli.main",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def env_for(address: str, task_queue: str) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")},
        "ROLLBACK_TEMPORAL_ADDRESS": address,
        "ROLLBACK_TASK_QUEUE": task_queue,
        "ROLLBACK_POLICY": str(ASSERTED_POLICY),
    }


@asynccontextmanager
async def worker(client: Client, task_queue: str) -> AsyncIterator[StandIns]:
    standins = StandIns(treatment=25)
    async with Worker(
        client, task_queue=task_queue, workflows=WORKFLOWS, activities=standins.activities()
    ):
        yield standins


async def start(
    client: Client, policy: Policy, task_queue: str, deployment: str, *, drill: bool = False
) -> None:
    await operations.send_trigger(
        client,
        task_queue=task_queue,
        policy=policy,
        deployment=deployment,
        event=TriggerEvent(
            trigger="error_rate",
            source="alertmanager",
            reason="error rate 2.1% for 2m",
            evidence={"error_rate": "0.021"},
        ),
        options=RollbackOptions(ui_metadata=True, drill=drill),
    )


async def following_up(client: Client, deployment: str) -> RollbackStatus:
    """Past Step 7 with its follow-ups started (the state is set just before the child)."""
    for _ in range(200):
        try:
            current = await operations.status(client, deployment)
            if current.state == "following_up" and current.follow_ups_id is not None:
                return current
        except Exception:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"{deployment} never started its follow-ups")


async def test_report_of_a_running_rollback_as_markdown_json_and_file(
    local_env: WorkflowEnvironment, policy: Policy, tmp_path: Path
) -> None:
    client = local_env.client
    task_queue = f"tq-{uuid4()}"
    env = env_for(client.service_client.config.target_host, task_queue)
    deployment = f"search-{uuid4().hex[:8]}"
    async with worker(client, task_queue):
        try:
            await start(client, policy, task_queue, deployment)
            status = await following_up(client, deployment)
            assert status.follow_ups_id is not None

            code, md, err = await cli(env, "report", "-d", deployment)
            assert code == 0, err
            assert md.startswith(f"# Rollback report: {deployment}\n")
            assert "(DRILL)" not in md
            assert "- **Trigger 1: Critical Error Rate** (`error_rate`, automated) at **25%**" in md
            assert "- Evidence: error_rate = 0.021" in md
            assert "| Step 1: Emergency Stop |" in md and "| Step 7: Recovery Planning |" in md
            assert "| Automated rollback: trigger to traffic reversion |" in md and "**PASS**" in md
            assert "| Stability watch (4 hours) | sre_oncall |" in md
            assert "## Timeline (reconstructed from the workflow history)" in md
            assert (
                "Step 1: Emergency Stop: `traffic-split --treatment 0 --control 100`: completed"
                in md
            )

            code, out, err = await cli(env, "report", "-d", deployment, "--format", "json")
            assert code == 0, err
            data = json.loads(out)
            assert set(data) == REPORT_KEYS
            assert (data["state"], data["closed"], data["drill"]) == ("following_up", None, False)
            assert data["decision"]["mode"] == "auto"
            assert data["decision"]["decided_by"] == ["system"]
            assert data["trigger"]["source"] == "alertmanager"
            for step, record in zip(data["steps"], status.steps, strict=True):
                assert record.ended_at is not None
                took = (record.ended_at - record.started_at).total_seconds()
                assert step["duration_seconds"] == pytest.approx(took)
                assert step["outcome"] == "ok" and step["within_budget"] is True
            times = {t["id"]: t for t in data["response_times"]}
            assert times["automated_rollback"]["result"] == "pass"
            assert times["automated_rollback"]["seconds"] == pytest.approx(
                status.intervals["trigger_to_traffic_reversion"]
            )
            assert data["recovery"]["follow_ups_id"] == status.follow_ups_id
            assert [f["state"] for f in data["recovery"]["follow_ups"]] == ["scheduled"] * 5
            assert data["timeline_source"] == "history"
            assert data["timeline"][0]["kind"] == "workflow_started"

            target = tmp_path / "report.md"
            code, out, err = await cli(env, "report", "-d", deployment, "--out", str(target))
            assert code == 0, err
            assert out.strip() == (f"Report of rollback-{deployment} (md) written to {target}")
            written = target.read_text()
            assert written.startswith(f"# Rollback report: {deployment}\n")
            assert "## Root cause material" in written

            target = tmp_path / "report.json"
            code, _, err = await cli(
                env, "report", "-d", deployment, "--format", "json", "-o", str(target)
            )
            assert code == 0, err
            assert json.loads(target.read_text())["deployment"] == deployment
        finally:
            await terminate_rollback(client, deployment)


async def test_report_of_a_completed_drill_needs_no_worker(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    client = local_env.client
    task_queue = f"tq-{uuid4()}"
    env = env_for(client.service_client.config.target_host, task_queue)
    deployment = f"drill-{uuid4().hex[:8]}"
    async with worker(client, task_queue):
        await start(client, policy, task_queue, deployment, drill=True)
        handle = client.get_workflow_handle(f"rollback-{deployment}", result_type=RollbackStatus)
        final = await handle.result()
        assert final.state == "rolled_back" and final.follow_ups_id is None
    # The worker is gone: a completed rollback's status is its result, in its history.
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    code, out, err = await cli(env, "report", "-d", deployment, "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["drill"], data["state"], data["closed"]) == (True, "rolled_back", "completed")
    assert [s["outcome"] for s in data["steps"]] == ["ok"] * 7
    assert data["timeline"][-1]["kind"] == "workflow_closed"
    evidence = {t["id"]: t["evidence"] for t in data["recovery"]["targets"]}
    assert evidence["system_stability"] == "drill: no follow-ups are scheduled"

    code, md, err = await cli(env, "report", "-d", deployment)
    assert code == 0, err
    assert md.startswith(f"# Rollback report: {deployment} (DRILL)\n")
    assert "(workflow completed)" in md


async def test_report_errors_are_one_readable_line(
    local_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    env = env_for(local_env.client.service_client.config.target_host, f"tq-{uuid4()}")

    code, _, err = await cli(env, "report", "-d", "nobody-here")
    assert code == 2
    assert err.strip() == (
        "error: --deployment: no rollback of 'nobody-here' is known to Temporal "
        "(no workflow rollback-nobody-here); `rollback status` lists them"
    )
    code, _, err = await cli(env, "report", "-d", "bad name!")
    assert code == 2 and "is not a deployment name" in err
    code, _, err = await cli(env, "report", "-d", "x", "--out", str(tmp_path / "no" / "r.md"))
    assert code == 2 and f"--out: the folder {tmp_path / 'no'} does not exist" in err
    code, _, err = await cli(env, "report", "-d", "x", "--format", "html")
    assert code == 2 and "'html' is not one of 'md', 'json'" in err
    code, _, err = await cli(env, "report")
    assert code == 2 and "Missing option '--deployment'" in err

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    code, _, err = await cli(env_for(f"127.0.0.1:{port}", "tq"), "report", "-d", "x")
    assert code == 1 and err.startswith(f"error: cannot reach Temporal at 127.0.0.1:{port}")
    for stderr in (err,):
        assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


async def test_a_terminated_rollback_without_a_worker_is_a_clear_failure(
    local_env: WorkflowEnvironment, policy: Policy
) -> None:
    client = local_env.client
    task_queue = f"tq-{uuid4()}"
    env = env_for(client.service_client.config.target_host, task_queue)
    deployment = f"search-{uuid4().hex[:8]}"
    async with worker(client, task_queue):
        await start(client, policy, task_queue, deployment)
        status = await following_up(client, deployment)
        await terminate_rollback(client, deployment)
    assert status.follow_ups_id is not None
    described = await client.get_workflow_handle(status.follow_ups_id).describe()
    assert described.status == WorkflowExecutionStatus.TERMINATED

    code, _, err = await cli(env, "report", "-d", deployment)
    assert code == 1
    assert err.startswith(f"error: rollback-{deployment} (terminated) did not answer its status")
    assert "needs a worker to replay it" in err and len(err.strip().splitlines()) == 1
