"""Slack's pace with many rollbacks at once: N automatic rollbacks start together on one worker
(the real workflows and activities, a real dev server, the simulator, a redis-server) and post
to a Slack stand-in that enforces Slack's limit per channel (429 with `Retry-After: 1` beyond
it).

    .venv/bin/python -m benchmarks.slack_pace [--rollbacks 10] [--rate 1] [--burst 3]

Prints, per channel and in all: posts attempted and refused (429), the most posts landed within
any one second against the limit (rate + burst), duplicates, whether each rollback's messages
landed in the order it made them, and the last message's delay from the triggers against the
floor the limit implies ((messages − burst) / rate on the busiest channel).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from uuid import uuid4

import httpx
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.procedure import RollbackActivities
from client import operations
from contract.rollback import RollbackOptions, TriggerEvent
from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.status import TimelineEntry
from simulator import SimulatorServer
from tests.activities.servers import running_redis, settings_for
from tests.gateway.slack_standin import SlackServer, SlackStandIn
from tests.policies import edited
from worker.binaries import temporal_cli
from workflows import search_attributes
from workflows.registry import WORKFLOWS

ASSERTED_POLICY = DEFAULT_POLICY.parent / "asserted.yaml"
QUICK = {
    "procedure.0.steps.0.budget": "4s",
    "procedure.0.steps.1.budget": "4s",
    "decisions.after_rollback_watch": "1s",
}


async def run(rollbacks: int, rate: float, burst: int) -> None:
    policy = edited(load_policy(ASSERTED_POLICY), QUICK)
    with (
        tempfile.TemporaryDirectory() as home,
        running_redis(Path(home)) as redis,
        SimulatorServer(window_seconds=0.5) as simulator,
        SlackServer(SlackStandIn(per_channel=rate, burst=burst)) as slack,
    ):
        acts = RollbackActivities(
            settings_for(
                simulator.url,
                redis,
                slack_bot_token="xoxb-bench",
                slack_api_url=f"{slack.url}/api",
                slack_rate=rate * 0.9,
                slack_burst=burst,
            )
        )
        names = [f"pace{n}-{uuid4().hex[:6]}" for n in range(rollbacks)]
        async with httpx.AsyncClient(base_url=simulator.url) as http:
            for name in names:
                answer = await http.post("/deployments", json={"name": name, "treatment": 25})
                answer.raise_for_status()
        async with await WorkflowEnvironment.start_local(
            data_converter=pydantic_data_converter,
            dev_server_existing_path=temporal_cli(),
            search_attributes=search_attributes.ALL,
        ) as env:
            task_queue = f"bench-{uuid4()}"
            async with Worker(
                env.client, task_queue=task_queue, workflows=WORKFLOWS, activities=acts.activities()
            ):
                began = time.monotonic()
                await asyncio.gather(
                    *(
                        operations.send_trigger(
                            env.client,
                            task_queue=task_queue,
                            policy=policy,
                            deployment=name,
                            event=TriggerEvent(trigger="error_rate", source="bench"),
                            options=RollbackOptions(ui_metadata=True),
                        )
                        for name in names
                    )
                )
                for name in names:
                    await env.client.get_workflow_handle(f"rollback-{name}").result()
                timelines = {n: (await operations.status(env.client, n)).timeline for n in names}
        await acts.aclose()
        report(slack.standin, names, timelines, began, rate, burst)


def report(
    standin: SlackStandIn,
    names: list[str],
    timelines: dict[str, list[TimelineEntry]],
    began: float,
    rate: float,
    burst: int,
) -> None:
    posts = [c for c in standin.calls if c.method == "chat.postMessage"]
    landed = [c for c in posts if c.error is None]
    refused = [c for c in posts if c.error == "ratelimited"]
    print(
        f"{len(names)} rollbacks at once; Slack stand-in limit {rate:g}/s per channel, "
        f"burst {burst}"
    )
    print(
        f"posts attempted {len(posts)}, landed {len(landed)}, refused 429 {len(refused)} "
        f"({len(refused) / max(len(posts), 1):.1%})"
    )
    by_channel: dict[str, list[float]] = defaultdict(list)
    for call in landed:
        by_channel[str(call.body["channel"])].append(call.at)
    floor = 0.0
    for channel, times in sorted(by_channel.items()):
        times.sort()
        busiest = max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))
        floor = max(floor, (len(times) - burst) / rate)
        print(
            f"  {channel}: {len(times)} landed, most within one second {busiest} "
            f"(limit {rate + burst:g})"
        )
    texts = [str(c.body.get("text", "")) for c in landed]
    twice = sum(n - 1 for n in Counter(texts).values() if n > 1)
    in_order = 0
    for name in names:
        mine = [t for t in texts if name in t]
        stop = next((i for i, t in enumerate(mine) if "Emergency stop" in t), None)
        report_at = next((i for i, t in enumerate(mine) if "Rollback report" in t), None)
        if stop is not None and report_at is not None and stop < report_at == len(mine) - 1:
            in_order += 1
    failed = sum(
        1 for t in timelines.values() for e in t if getattr(e, "kind", "") == "message_failed"
    )
    last = max(c.at for c in landed) - began if landed else 0.0
    print(f"duplicates {twice}; messages failed for good {failed}")
    print(f"rollbacks whose stop came first and report last: {in_order}/{len(names)}")
    print(
        f"last message {last:.1f} s after the triggers; the limit implies ≥ {floor:.1f} s on the "
        f"busiest channel: ratio {last / floor if floor else float('nan'):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollbacks", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--burst", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.rollbacks, args.rate, args.burst))


if __name__ == "__main__":
    main()
