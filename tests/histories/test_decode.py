"""Every workflow input recorded in a kept history decodes under today's code, and so does what
today's code builds from it: a rollback recorded by an older build hands its policy to a new
follow-ups run (and a watch to its next run), and that input must decode too. A validator added
since that judges a policy's configuration must not stop a run that is already going."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter

from contract.follow_ups import FollowUpsInput
from contract.rollback import RollbackInput
from contract.watch import WatchInput

HERE = Path(__file__).parent
KEPT = sorted(HERE.rglob("*.json"))
INPUTS: dict[str, type[BaseModel]] = {
    "RollbackWorkflow": RollbackInput,
    "FollowUpsWorkflow": FollowUpsInput,
    "CanaryWatchWorkflow": WatchInput,
}
STARTS = {
    "workflowExecutionStartedEventAttributes",
    "startChildWorkflowExecutionInitiatedEventAttributes",
    "workflowExecutionContinuedAsNewEventAttributes",
}


def recorded_inputs(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workflow type, the input payload as JSON) of every start in a history."""
    for event in json.loads(path.read_text())["events"]:
        for key, attributes in event.items():
            if key not in STARTS:
                continue
            kind = attributes["workflowType"]["name"]
            for payload in attributes.get("input", {}).get("payloads", []):
                yield kind, payload


def decode(payload: dict[str, Any], model: type[BaseModel]) -> Any:
    proto = Payload()
    proto.metadata.update({k: _b64(v) for k, v in payload["metadata"].items()})
    proto.data = _b64(payload.get("data", ""))
    [value] = pydantic_data_converter.payload_converter.from_payloads([proto], [model])
    return value


def round_trip(value: BaseModel) -> Any:
    """What the next run, or a child, receives: encoded by today's code, decoded by it."""
    converter = pydantic_data_converter.payload_converter
    return converter.from_payloads(converter.to_payloads([value]), [type(value)])[0]


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


CASES = [(p, kind, payload) for p in KEPT for kind, payload in recorded_inputs(p)]


def test_inputs_are_found() -> None:
    kinds = {kind for _, kind, _ in CASES}
    assert {"RollbackWorkflow", "FollowUpsWorkflow"} <= kinds, kinds


@pytest.mark.parametrize(
    ("path", "kind", "payload"),
    CASES,
    ids=[f"{p.parent.name}/{p.stem}:{kind}:{i}" for i, (p, kind, _) in enumerate(CASES)],
)
def test_a_recorded_input_decodes_and_what_is_built_from_it_too(
    path: Path, kind: str, payload: dict[str, Any]
) -> None:
    value = decode(payload, INPUTS[kind])
    assert round_trip(value) == value
    policy = value.policy
    follow_ups = FollowUpsInput(
        deployment=value.deployment,
        policy=policy,
        options=value.options,
        reverted_at=datetime.now(UTC),
        rollback_id=f"rollback-{value.deployment}",
    )
    assert round_trip(follow_ups).policy == policy
    watch = WatchInput(deployment=value.deployment, policy=policy, options=value.options)
    assert round_trip(watch).policy == policy
