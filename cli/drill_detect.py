"""`rollback drill --detect`: rehearse detection too. The trigger's fault is injected into the
simulator, a drill canary watch judges the canary, and the drill measures how long the watch
took to raise the trigger against the condition's sustain period.

A watch already running for the deployment is stopped for the drill (it would raise a real
rollback of the injected fault) and started again afterwards; the fault is cleared in any case.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from cli.errors import Failure, UserError
from cli.temporal import described
from client import answers, operations
from config.settings import Settings
from contract.rollback import RollbackOptions, workflow_id
from contract.watch import watch_id
from runbook.policy import Policy
from runbook.watching import Condition, conditions

FAULTS: dict[str, tuple[str, Callable[[Condition], float]]] = {
    # The simulator's fault for each watched figure of the bundled policies: well past the line.
    "error_rate": ("treatment_error_rate", lambda c: min(1.0, max(c.threshold * 10, 0.05))),
    "p99_latency_increase": ("treatment_p99_latency_seconds", lambda c: 2.5),
    "max_shard_utilization": ("shard_cpu", lambda c: 0.99),
    "max_shard_cpu": ("shard_cpu", lambda c: 0.99),
    "max_shard_memory": ("shard_memory", lambda c: 0.99),
    "treatment_ndcg_at_10": ("treatment_ndcg_at_10", lambda c: max(0.0, c.threshold - 0.1)),
    "treatment_sla_recall_at_50": (
        "treatment_sla_recall_at_50",
        lambda c: max(0.0, c.threshold - 0.15),
    ),
}


class Detection(BaseModel):
    """How the trigger was detected, against the condition's sustain period."""

    condition: str
    fault: dict[str, float]
    sustain_seconds: float
    interval_seconds: float
    detected_seconds: float | None = None
    """From the fault's injection to the trigger reaching the rollback."""
    source: str | None = None
    """Who raised it first: `watch`, or an alert that beat it."""
    passed: bool = False
    verdict: str = ""


def detectable(policy: Policy, trigger: str) -> Condition:
    """The watched condition that raises `trigger` (a gate's for gate failure), or a UserError."""
    found = [c for c in conditions(policy) if c.trigger == trigger and c.raises]
    if not found:
        watched = sorted({c.trigger for c in conditions(policy) if c.raises})
        raise UserError(
            f"--detect: the canary watch does not detect {trigger!r}: it has no metric, "
            f"comparison and threshold (detected: {', '.join(watched)})"
        )
    condition = found[0]
    if condition.metric not in FAULTS:
        raise UserError(
            f"--detect: no simulator fault makes {condition.metric!r} breach "
            f"(known: {', '.join(sorted(FAULTS))}); drill without --detect"
        )
    return condition


def fault_for(condition: Condition) -> dict[str, float]:
    name, value = FAULTS[condition.metric]
    return {name: round(value(condition), 6)}


def judge(detection: Detection) -> Detection:
    """Raised by the watch no sooner than the sustain, and within one interval of its end
    (plus a second for the reading itself and the signal)."""
    took, sustain = detection.detected_seconds, detection.sustain_seconds
    latest = sustain + detection.interval_seconds + 1.0
    if took is None:
        detection.verdict = "never detected"
    elif detection.source != "watch":
        detection.verdict = f"raised by {detection.source} before the watch, after {took:.1f} s"
    elif took > latest:
        detection.verdict = f"detected after {took:.1f} s: later than {latest:.1f} s"
    else:
        detection.passed = True
        detection.verdict = f"detected after {took:.1f} s (sustain {sustain:g} s)"
    return detection


@asynccontextmanager
async def drill_watch(
    client: Client, settings: Settings, policy: Policy, deployment: str, say: Callable[[str], None]
) -> AsyncIterator[None]:
    """A drill canary watch for the deployment, for as long as the block runs; a regular watch
    that ran before is stopped for it and started again after."""
    previous = await _running_watch(client, deployment)
    if previous is not None:
        say(f"  the canary watch of {deployment} is paused for the drill")
        await _stop_and_wait(client, deployment)
    await operations.start_watch(
        client,
        task_queue=settings.task_queue,
        policy=policy,
        deployment=deployment,
        options=RollbackOptions(ui_metadata=settings.ui_metadata, drill=True),
    )
    try:
        yield
    finally:
        await _stop_and_wait(client, deployment)
        if previous is not None and not previous:
            await operations.start_watch(
                client,
                task_queue=settings.task_queue,
                policy=policy,
                deployment=deployment,
                options=RollbackOptions(ui_metadata=settings.ui_metadata),
            )
            say(f"  the canary watch of {deployment} runs again")


async def wait_until_judged(client: Client, deployment: str, condition: str, within: float) -> None:
    """The drill watch has judged the condition healthy once: the fault will be a change."""
    deadline = time.monotonic() + within
    state = "not read yet"
    while time.monotonic() < deadline:
        try:
            status = await operations.watch_status(client, deployment, answers.WITHIN)
        except (RPCError, WorkflowQueryFailedError):
            status = None
        if status is not None:
            states = {c.id: c.state for c in status.conditions}
            state = states.get(condition, state)
            if state == "healthy":
                return
            if state in ("breaching", "sustained"):
                raise Failure(
                    f"--detect: {condition} already breaches on {deployment} before the fault: "
                    "nothing to rehearse (clear the simulator's faults first)"
                )
        await asyncio.sleep(0.2)
    raise Failure(
        f"--detect: the drill watch did not judge {condition} within {within:g} s ({state})"
    )


@asynccontextmanager
async def injected(
    settings: Settings, deployment: str, fault: dict[str, float], say: Callable[[str], None]
) -> AsyncIterator[datetime]:
    """The fault, injected into the simulator at the yielded instant and cleared afterwards."""
    url = f"{settings.target_url.rstrip('/')}/faults/{deployment}"
    async with httpx.AsyncClient(timeout=settings.http_timeout) as http:
        try:
            answer = await http.post(url, json=fault)
        except httpx.HTTPError as error:
            raise Failure(f"--detect: cannot inject the fault at {url}: {error}") from None
        if answer.status_code == 404:
            raise UserError(
                f"--detect: {settings.target_url} takes no faults (POST /faults/{deployment} "
                "answered 404): detection drills run against the simulator"
            )
        if answer.status_code >= 300:
            raise Failure(
                f"--detect: injecting {fault} answered {answer.status_code}: {answer.text[:200]}"
            )
        at = datetime.now(UTC)
        try:
            yield at
        finally:
            try:
                cleared = await http.delete(url)
                problem = "" if cleared.is_success else f"answered {cleared.status_code}"
            except httpx.HTTPError as error:
                problem = str(error) or type(error).__name__
            if problem:  # the drill's verdict stands, but the canary still has the fault
                say(f"  WARNING: the fault is still injected ({problem}): DELETE {url}")


async def wait_for_new_rollback(
    client: Client, deployment: str, before: str | None, within: float
) -> None:
    """A run of `rollback-<deployment>` other than `before` has started."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        now = await described(client, workflow_id(deployment))
        if (
            now is not None
            and now.run_id != before
            and now.status == WorkflowExecutionStatus.RUNNING
        ):
            return
        await asyncio.sleep(0.2)
    raise Failure(f"--detect: no rollback of {deployment} started within {within:g} s of the fault")


async def last_run_id(client: Client, deployment: str) -> str | None:
    found = await described(client, workflow_id(deployment))
    return found.run_id if found is not None else None


async def _running_watch(client: Client, deployment: str) -> bool | None:
    """None: no watch runs; else whether the running one is a drill's."""
    found = await described(client, watch_id(deployment))
    if found is None or found.status != WorkflowExecutionStatus.RUNNING:
        return None
    try:
        return (await operations.watch_status(client, deployment, answers.WITHIN)).drill
    except (RPCError, WorkflowQueryFailedError) as error:
        raise Failure(f"cannot read the canary watch of {deployment}: {error}") from None


async def _stop_and_wait(client: Client, deployment: str, within: float = 30.0) -> None:
    handle = client.get_workflow_handle(watch_id(deployment))
    try:
        await operations.stop_watch(client, deployment)
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return
        raise
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await asyncio.sleep(0.2)
    raise Failure(f"the canary watch of {deployment} did not stop within {within:g} s")
