"""How much of the plan's budgets the engine itself uses, on the real dev server.

Activities are instant stand-ins, so every millisecond measured here is engine overhead:
signal-with-start, workflow tasks, the phase read, activity scheduling and the decision update.

    .venv/bin/python -m benchmarks.engine_overhead [--runs 30]

Prints medians and their ratio to the plan's targets (automated rollback < 60 s from trigger to
traffic reversion; a decision must land well inside a 2-minute window).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from uuid import uuid4

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from cli.stack import stop_on_signals
from client import operations
from config.settings import Settings
from contract.rollback import DecisionInput, RollbackOptions, TriggerEvent
from runbook.loading import DEFAULT_POLICY, load_policy
from tests.workflows.standins import StandIns
from worker.binaries import temporal_cli
from worker.main import workflow_runner
from workflows import search_attributes
from workflows.registry import WORKFLOWS


async def main(runs: int) -> None:
    policy = load_policy(DEFAULT_POLICY)
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
    ) as env:
        standins = StandIns(treatment=25)
        settings = Settings(_env_file=None)
        print(f"workflow sandbox: {'on' if settings.workflow_sandbox else 'off'}")
        task_queue = f"bench-{uuid4()}"
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=standins.activities(),
            workflow_runner=workflow_runner(settings),  # as `rollback worker` runs them
        ):
            to_stop: list[float] = []
            to_reverted: list[float] = []
            decide_rtt: list[float] = []
            for i in range(runs):
                deployment = f"bench-auto-{i}-{uuid4().hex[:6]}"
                before = len(standins.calls)
                started = time.perf_counter()
                await operations.send_trigger(
                    env.client,
                    task_queue=task_queue,
                    policy=policy,
                    deployment=deployment,
                    event=TriggerEvent(trigger="error_rate", source="bench"),
                    options=RollbackOptions(),
                )
                while "set_traffic_split" not in [n for n, _ in standins.calls[before:]]:
                    await asyncio.sleep(0.001)
                to_stop.append(time.perf_counter() - started)
                while (
                    "traffic_reverted"
                    not in (status := await operations.status(env.client, deployment)).instants
                ):
                    await asyncio.sleep(0.005)
                to_reverted.append(status.intervals["trigger_to_traffic_reversion"])
                await env.client.get_workflow_handle(f"rollback-{deployment}").terminate()

                manual = f"bench-manual-{i}-{uuid4().hex[:6]}"
                await operations.send_trigger(
                    env.client,
                    task_queue=task_queue,
                    policy=policy,
                    deployment=manual,
                    event=TriggerEvent(trigger="gate_failure", source="bench"),
                    options=RollbackOptions(),
                )
                while (await operations.status(env.client, manual)).state != "awaiting_decision":
                    await asyncio.sleep(0.005)
                started = time.perf_counter()
                await operations.decide(
                    env.client, manual, DecisionInput(action="approve", person="dri-backend")
                )
                decide_rtt.append(time.perf_counter() - started)
                await env.client.get_workflow_handle(f"rollback-{manual}").terminate()

    def report(name: str, samples: list[float], target: float) -> None:
        median = statistics.median(samples)
        print(
            f"{name:<52} median {median * 1000:8.1f} ms   p90 "
            f"{sorted(samples)[int(len(samples) * 0.9) - 1] * 1000:8.1f} ms   "
            f"{median / target:.5f} of the {target:g} s target"
        )

    print(f"engine overhead over {runs} runs (instant stand-in activities, local dev server)")
    report("trigger sent -> Step 1 starts (wall clock)", to_stop, 60)
    report("trigger -> traffic reverted (workflow clock)", to_reverted, 60)
    report("decision update round trip (approve)", decide_rtt, 120)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    # SIGTERM and SIGHUP stop the dev server as Ctrl-C does (a benchmark that died on a signal
    # would leave it running).
    with stop_on_signals():
        try:
            asyncio.run(main(parser.parse_args().runs))
        except KeyboardInterrupt as stop:
            print(f"stopped ({stop or 'SIGINT'}); the dev server is down", file=sys.stderr)
            raise SystemExit(130) from None
