"""Histories recorded from real runs of each release (tests/histories/<release>/, written by
tests/histories/record.py at the release's tag) replay against today's workflow code. A change
that would break a rollback, a week of follow-ups or a canary watch in flight fails here: ship
it behind `workflow.patched`, never by re-recording.

`pre-release/` holds histories recorded by builds before the first release: their inputs must
still decode (tests/histories/test_decode.py), their commands are not replayed (the patches
they needed were retired before v0.1.0; see the README's patch table)."""

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
RELEASES = sorted(p for p in HERE.iterdir() if p.is_dir() and p.name.startswith("v"))
RECORDED = sorted(p for release in RELEASES for p in release.glob("*.json"))
SCENARIOS = {
    "automated",
    "two_person",
    "expired_window",
    "incomplete_step_2",
    "comms_approval",
    "denied",
    "escalation_climb",
    "investigated",
    "handed_over_in_window",
    "handed_over_in_window.next",
    "trigger_at_the_end",
    "trigger_at_the_end.next",
    "handed_over_after_rollback",
    "handed_over_after_rollback.next",
    "follow_ups",
    "follow_ups_handed_over",
    "follow_ups_handed_over.next",
    "canary_watch",
    "canary_watch_handed_over",
    "canary_watch_handed_over.next",
}
SINCE = {"v0.2.0": {"confirmed_after_step_5"}}
"""Scenarios a release added (the behaviour they record came with it)."""
"""Every workflow type, every place a run continues as new, and the runs that follow."""


def test_the_last_release_recorded_every_scenario() -> None:
    assert RELEASES, "no release's histories"
    last = RELEASES[-1]
    wanted = SCENARIOS | {
        s for release, added in SINCE.items() if release <= last.name for s in added
    }
    assert {p.name.removesuffix(".json") for p in last.glob("*.json")} >= wanted


RUNNERS: dict[str, Callable[[], WorkflowRunner]] = {
    "sandboxed": SandboxedWorkflowRunner,
    "unsandboxed": UnsandboxedWorkflowRunner,  # as the running worker runs them
}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("path", RECORDED, ids=[f"{p.parent.name}/{p.stem}" for p in RECORDED])
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
