"""What the canary watch costs: one worker watching N deployments at the policy's interval, on
the embedded stack as `rollback up` starts it (dev server, Redis, simulator, worker, gateway).

    .venv/bin/python -m benchmarks.watch_cost [--deployments 200] [--seconds 120]

Every deployment is a healthy canary at 25 %, watched with sprint-1's watch (every 15 s, every
trigger and gate). Over the measuring window it prints the worker's and the dev server's CPU
against the floor (the same metric and split reads made straight from this process, as many as
the watches made), readings taken against those due, Temporal actions per hour (workflow tasks
are not actions; activities, timers, signals and continue-as-new are) and history per watch per
day, events and bytes, with continue-as-new keeping each run bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from benchmarks.alert_storm import cpu_seconds, isolated_stack, rss_mb
from cli.stack import Stack, stop_on_signals
from client import operations
from config.connection import connect
from config.settings import Settings

ACTIONS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "activity",
    EventType.EVENT_TYPE_TIMER_STARTED: "timer",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continue-as-new",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "start",
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: "search attributes",
}
"""History events that Temporal Cloud bills as actions (approximately: one per event)."""


async def floor_cpu(target: str, deployments: list[str], readings: int) -> float:
    """CPU seconds this process spends making `readings` of the watch's reads itself: the
    metrics document and the live split, per reading, over HTTP to the simulator."""
    start = cpu_seconds(os.getpid())
    async with httpx.AsyncClient(base_url=target, timeout=10) as http:
        for i in range(readings):
            d = deployments[i % len(deployments)]
            await http.get(f"/metrics/{d}")
            await http.get(f"/lb/{d}/split")
    return cpu_seconds(os.getpid()) - start


async def history_in_window(
    client: Client, start: datetime, end: datetime
) -> tuple[Counter[str], int, int, list[int]]:
    """Actions by kind, events and bytes written in [start, end], and each run's length."""
    actions: Counter[str] = Counter()
    events = size = 0
    lengths = []
    async for execution in client.list_workflows("WorkflowType = 'CanaryWatchWorkflow'"):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = await handle.fetch_history()
        lengths.append(len(history.events))
        for event in history.events:
            at = event.event_time.ToDatetime(tzinfo=UTC)
            if start <= at < end:
                events += 1
                size += event.ByteSize()
                kind = ACTIONS.get(event.event_type)
                if kind:
                    actions[kind] += 1
    return actions, events, size, lengths


async def run(count: int, seconds: float) -> int:
    home, env = isolated_stack("watch-cost-")
    deployments = [f"watched-{i}" for i in range(count)]
    stack = Stack(
        Settings(_env_file=None),
        home,
        dict.fromkeys(deployments, 25),
        say=lambda line: print(line, file=sys.stderr),
    )
    began = time.monotonic()
    with stack:
        print(f"stack and {count} watches up in {time.monotonic() - began:.1f} s", file=sys.stderr)
        pids = {p.name: p.process.pid for p in stack.parts if p.process is not None}
        client = await connect(Settings(_env_file=None))
        await asyncio.sleep(20)  # every watch past its first reading and its start
        before = {d: (await operations.watch_status(client, d)).readings for d in deployments}
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        window_start = datetime.now(UTC)
        started = time.monotonic()
        await asyncio.sleep(seconds)
        wall = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
        window_end = datetime.now(UTC)
        after = {d: await operations.watch_status(client, d) for d in deployments}
        rss = {name: rss_mb(pid) for name, pid in pids.items()}
        actions, events, size, lengths = await history_in_window(client, window_start, window_end)
        taken = sum(after[d].readings - before[d] for d in deployments)
        interval = after[deployments[0]].interval_seconds
        floor = await floor_cpu(env["ROLLBACK_TARGET_URL"], deployments, taken)
        unhealthy = [
            d for d in deployments if any(c.state != "healthy" for c in after[d].conditions)
        ]
        lag = [
            (window_end - at).total_seconds()
            for at in (after[d].last_reading_at for d in deployments)
            if at is not None
        ]

    due = count * wall / interval
    per_hour = 3600 / wall
    per_day = 86400 / wall / count
    worker = cpu.get("worker", 0.0)
    print(f"Canary watch cost: {count} deployments, one every {interval:g} s, over {wall:.0f} s")
    print(f"  readings taken       {taken} of {due:.0f} due ({taken / due:.0%})")
    print(f"  since last reading   median {statistics.median(lag):.1f} s, max {max(lag):.1f} s")
    print(f"  judged healthy       {count - len(unhealthy)} of {count} (none raised)")
    print(
        f"  worker CPU           {worker:.1f} s = {worker / wall:.1%} of one core; "
        f"{worker / max(taken, 1) * 1000:.2f} ms per reading"
    )
    print(
        f"  floor (same reads)   {floor:.1f} s = "
        f"{floor / max(taken, 1) * 1000:.2f} ms per reading; worker / floor = {worker / floor:.1f}x"
    )
    others = ", ".join(f"{n} {c / wall:.1%}" for n, c in cpu.items() if n != "worker")
    print(f"  other processes      {others} of one core")
    print("  RSS                  " + ", ".join(f"{n} {mb:.0f} MB" for n, mb in rss.items()))
    total = sum(actions.values())
    kinds = ", ".join(f"{k} {v * per_hour:.0f}" for k, v in actions.most_common())
    print(f"  actions per hour     {total * per_hour:.0f} ({kinds})")
    print(f"                       {total * per_hour / count:.0f} per watch per hour")
    print(
        f"  history per day      {events * per_day:.0f} events, "
        f"{size * per_day / 1024:.0f} KiB per watch (continue-as-new every 150 readings: "
        f"longest run now {max(lengths)} events, {len(lengths)} runs in all)"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    # SIGTERM and SIGHUP stop the stack as Ctrl-C does: its parts run in sessions of their own,
    # so a benchmark that died on a signal would leave them running.
    with stop_on_signals():
        try:
            code = asyncio.run(run(args.deployments, args.seconds))
        except KeyboardInterrupt as stop:
            print(f"stopped ({stop or 'SIGINT'}); the stack is down", file=sys.stderr)
            code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
