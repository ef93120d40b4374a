"""The CLI against the real dev server: trigger, decide, status; search attributes in visibility."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from uuid import uuid4

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client

from tests.workflows.standins import StandIns

pytestmark = pytest.mark.timeout(60)


@dataclass
class Live:
    client: Client
    env: dict[str, str]
    standins: StandIns

    async def cli(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        finally:
            if proc.returncode is None:  # timed out, or the test was cancelled or failed
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def status(self, deployment: str) -> dict[str, object]:
        code, out, err = await self.cli("status", "-d", deployment, "--format", "json")
        assert code == 0, err
        return json.loads(out)  # type: ignore[no-any-return]

    async def until_state(self, deployment: str, state: str) -> dict[str, object]:
        for _ in range(100):
            current = await self.status(deployment)
            if current["state"] == state:
                return current
            await asyncio.sleep(0.1)
        raise AssertionError(f"{deployment} never reached {state}: {current}")

    async def visible(self, query: str) -> list[str]:
        for _ in range(50):
            found = [wf.id async for wf in self.client.list_workflows(query)]
            if found:
                return found
            await asyncio.sleep(0.2)
        return []


async def test_automated_rollback_from_the_cli_is_visible_in_search_attributes(
    live: Live,
) -> None:
    deployment = f"search-{uuid4().hex[:8]}"
    code, out, err = await live.cli(
        "trigger",
        "-d",
        deployment,
        "-t",
        "error_rate",
        "-r",
        "error rate 2%",
        "--as",
        "dri-backend",
    )
    assert code == 0, err
    assert f"rollback-{deployment}" in out

    status = await live.until_state(deployment, "following_up")
    assert status["mode"] == "auto" and status["phase"] == 25
    times = {t["id"]: t for t in status["response_times"]}  # type: ignore[union-attr]
    assert times["automated_rollback"]["met"] is True
    assert [s["outcome"] for s in status["steps"]] == ["ok"] * 7  # type: ignore[union-attr]

    query = (
        f'Deployment = "{deployment}" AND RollbackState = "following_up" '
        'AND `Trigger` = "error_rate" AND CanaryPhase = 25 AND DecisionBy = "system"'
    )
    assert await live.visible(query) == [f"rollback-{deployment}"]
    assert await live.visible(f'Deployment = "{deployment}" AND TrafficReversionSeconds < 60')

    handle = live.client.get_workflow_handle(f"rollback-{deployment}")
    description = await handle.describe()
    assert "error_rate" in (await description.static_summary() or "")
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "State:** following_up" in metadata.current_details
    assert "Step 1: Emergency Stop" in metadata.current_details

    code, out, _ = await live.cli("status")
    assert code == 0 and deployment in out
    await handle.terminate("test finished")


async def test_two_person_decision_from_the_cli(live: Live) -> None:
    live.standins.treatment = 50
    deployment = f"search-{uuid4().hex[:8]}"
    code, _, err = await live.cli(
        "trigger",
        "-d",
        deployment,
        "-t",
        "quality_regression",
        "-r",
        "nDCG@10 0.51",
        "--as",
        "qa-dri",
    )
    assert code == 0, err
    await live.until_state(deployment, "awaiting_decision")
    assert await live.visible(
        f'Deployment = "{deployment}" AND RollbackState = "awaiting_decision" AND CanaryPhase = 50'
    )

    code, out, _ = await live.cli("decide", "-d", deployment, "--approve", "--as", "qa-dri")
    assert code == 0 and "waiting for Sprint DRI" in out
    code, out, _ = await live.cli("decide", "-d", deployment, "--approve", "--as", "eng-manager")
    assert code == 1 and "rejected" in out and "QA DRI + Sprint DRI" in out
    code, out, _ = await live.cli("decide", "-d", deployment, "--approve", "--as", "dri-search")
    assert code == 0 and "approved rollback" in out

    status = await live.until_state(deployment, "following_up")
    assert sorted(status["decided_by"]) == ["dri-search", "qa-dri"]  # type: ignore[arg-type]
    assert await live.visible(f'Deployment = "{deployment}" AND DecisionBy = "qa-dri, dri-search"')
    await live.client.get_workflow_handle(f"rollback-{deployment}").terminate("test finished")


async def test_cli_errors_are_one_line(live: Live) -> None:
    code, _, err = await live.cli(
        "decide", "-d", "nobody-here", "--deny", "-r", "noise", "--as", "dri-backend"
    )
    # An unknown deployment is bad input: exit 2 from every command.
    assert code == 2 and "no rollback is running for deployment 'nobody-here'" in err
    code, _, err = await live.cli("status", "-d", "nobody-here")
    assert code == 2 and "no rollback or canary watch of 'nobody-here'" in err
    code, _, err = await live.cli(
        "trigger", "-d", "x", "-t", "error_rate", "-r", "r", "--as", "dri-backend", "--phase", "30"
    )
    assert code == 2 and "--phase: 30 is not a canary phase" in err
    for _, _, stderr in [await live.cli("decide", "-d", "x", "--as", "qa-dri")]:
        assert "choose exactly one" in stderr and "Traceback" not in stderr
