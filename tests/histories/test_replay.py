"""Histories recorded from real runs (tests/histories/record.py) replay against today's workflow
code. A change that would break a rollback (or a week of follow-ups) in flight fails here: ship
it behind `workflow.patched`, never by re-recording."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from workflows.registry import WORKFLOWS

HERE = Path(__file__).parent
RECORDED = sorted(HERE.glob("*.json"))


def test_every_scenario_is_recorded() -> None:
    assert {p.stem for p in RECORDED} >= {
        "automated",
        "two_person",
        "expired_window",
        "incomplete_step_2",
        "comms_approval",
        "follow_ups",
        "escalation_climb",
        "investigated",
        "investigated_unordered",
    }


RUNNERS: dict[str, Callable[[], WorkflowRunner]] = {
    "sandboxed": SandboxedWorkflowRunner,
    "unsandboxed": UnsandboxedWorkflowRunner,  # as the running worker runs them
}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_recorded_history_replays(path: Path, runner: str) -> None:
    data = json.loads(path.read_text())  # noqa: ASYNC240 (a small local file)
    started = data["events"][0]["workflowExecutionStartedEventAttributes"]
    workflow_id = started.get("workflowId") or path.stem
    history = WorkflowHistory.from_json(workflow_id, data)
    replayer = Replayer(
        workflows=WORKFLOWS,
        data_converter=pydantic_data_converter,
        workflow_runner=RUNNERS[runner](),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
