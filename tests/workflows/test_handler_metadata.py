"""Every query, signal and update describes itself: `temporal workflow metadata` and the Web UI
show what each does (Temporal's built-in `__temporal_workflow_metadata` query)."""

from __future__ import annotations

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from contract.rollback import COMMS_UPDATE, DECIDE_UPDATE, ESCALATION_ACK_UPDATE, RAISE_UPDATE
from runbook.policy import Policy
from tests.workflows.helpers import rig
from tests.workflows.standins import StandIns
from tests.workflows.test_canary_watch import watching


def undescribed(meta: WorkflowMetadata) -> list[str]:
    d = meta.definition
    handlers = [*d.query_definitions, *d.signal_definitions, *d.update_definitions]
    return [h.name for h in handlers if not h.name.startswith("__") and not h.description]


async def test_the_rollback_and_the_watch_describe_every_handler(
    skipping_env: WorkflowEnvironment, policy: Policy
) -> None:
    async with rig(skipping_env, policy, StandIns(treatment=25)) as r:
        await r.trigger("gate_failure")
        await r.until(lambda s: s.state == "awaiting_decision")
        handle = r.client.get_workflow_handle(f"rollback-{r.deployment}")
        meta = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        names = {h.name for h in meta.definition.update_definitions}
        assert names >= {DECIDE_UPDATE, COMMS_UPDATE, ESCALATION_ACK_UPDATE, RAISE_UPDATE}
        assert undescribed(meta) == []
    async with watching(skipping_env, policy, StandIns(treatment=25)) as w:
        await w.after(1)
        meta = await w.handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert len(meta.definition.signal_definitions) >= 3
        assert undescribed(meta) == []
