"""An alert storm through the embedded stack, started as `rollback up` starts it: the Temporal
dev server, Redis, the simulator, the worker and the gateway, each a process of its own.

    .venv/bin/python -m benchmarks.alert_storm [--alerts 1000] [--deployments 50] [--seconds 2]

First a calm: one alert per deployment, a second apart. Then the storm: N Alertmanager v4
alerts over M deployments within S seconds, as Alertmanager sends them (each body one group,
a deployment's few alerts, its repeats resent), from 20 concurrent senders. From the
simulator's call ledger and the client's clocks it prints: webhook sent -> traffic reverted
(p50/p99/max) against the floor (a PUT straight to the load balancer, measured in the same
run), ingest rate, gateway latency, status codes, workflows started, split changes applied,
escalations, history events per workflow, and the worker's and gateway's RSS before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import TimeoutType
from temporalio.client import Client

from cli.stack import Stack, stop_on_signals
from client import operations
from config.connection import connect
from config.settings import Settings

FINGERPRINTS = 3
"""Distinct alerts per deployment (error rate on a few series): the rest are repeats."""
SENDERS = 20


@dataclass
class Sent:
    deployment: str
    at: float
    latency: float
    status: int
    alerts: int


@dataclass
class Figures:
    sent: list[Sent] = field(default_factory=list)
    reverted: dict[str, float] = field(default_factory=dict)
    """Deployment → seconds from the first alert sent to the split's PUT taking effect."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alert(deployment: str, fingerprint: int) -> dict[str, Any]:
    return {
        "status": "firing",
        "labels": {
            "alertname": "SearchCanaryErrorRate",
            "deployment": deployment,
            "trigger": "error_rate",
            "series": f"s{fingerprint}",
            "severity": "page",
        },
        "annotations": {"summary": f"error rate above 0.5% on {deployment}"},
        "startsAt": "2026-12-01T19:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph",
        "fingerprint": f"{deployment}-{fingerprint}",
    }


def body(deployment: str, count: int) -> dict[str, Any]:
    return {
        "version": "4",
        "status": "firing",
        "receiver": "rollback",
        "groupKey": f'{{}}:{{deployment="{deployment}"}}',
        "groupLabels": {"deployment": deployment},
        "commonLabels": {"alertname": "SearchCanaryErrorRate", "deployment": deployment},
        "alerts": [alert(deployment, i % FINGERPRINTS) for i in range(count)],
    }


def storm_bodies(deployments: list[str], alerts: int) -> list[tuple[str, dict[str, Any]]]:
    """Bodies of up to FINGERPRINTS alerts, round-robin over the deployments, `alerts` in all."""
    out: list[tuple[str, dict[str, Any]]] = []
    left, i = alerts, 0
    while left > 0:
        d = deployments[i % len(deployments)]
        count = min(FINGERPRINTS, left)
        out.append((d, body(d, count)))
        left -= count
        i += 1
    return out


async def send_all(
    http: httpx.AsyncClient,
    bodies: list[tuple[str, dict[str, Any]]],
    seconds: float,
    headers: dict[str, str],
    figures: Figures,
) -> float:
    """Each body at its slot in the `seconds`, at most SENDERS at once; the wall time taken."""
    slots = asyncio.Semaphore(SENDERS)
    start = time.time()

    async def one(index: int, deployment: str, payload: dict[str, Any]) -> None:
        delay = start + seconds * index / max(len(bodies), 1) - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        async with slots:
            at = time.time()
            answer = await http.post("/alerts/alertmanager", json=payload, headers=headers)
            figures.sent.append(
                Sent(deployment, at, time.time() - at, answer.status_code, len(payload["alerts"]))
            )

    await asyncio.gather(*(one(i, d, b) for i, (d, b) in enumerate(bodies)))
    return time.time() - start


async def wait_reverted(
    sim: httpx.AsyncClient, deployments: list[str], figures: Figures, within: float
) -> dict[str, int]:
    """Deployment → applied split changes, once each has one (or `within` has passed)."""
    first: dict[str, float] = {}
    for s in figures.sent:
        first[s.deployment] = min(first.get(s.deployment, s.at), s.at)
    deadline = time.monotonic() + within
    while True:
        ledger = (await sim.get("/calls")).json()["calls"]
        applied: dict[str, list[float]] = {}
        for c in ledger:
            if c["route"] == "PUT /lb/{d}/split" and c["outcome"] == "applied":
                applied.setdefault(c["deployment"], []).append(
                    datetime.fromisoformat(c["at"]).timestamp()
                )
        if all(d in applied for d in deployments) or time.monotonic() > deadline:
            break
        # The ledger's own times are measured, not this poll's: poll rarely, so that reading
        # a growing ledger does not load the machine under test.
        await asyncio.sleep(2.0)
    for d in deployments:
        if d in applied and d in first:
            figures.reverted[d] = min(applied[d]) - first[d]
    return {d: len(applied.get(d, [])) for d in deployments}


async def floor(sim: httpx.AsyncClient, deployment: str, runs: int = 30) -> float:
    """A PUT straight to the load balancer: what no engine can beat."""
    samples = []
    for i in range(runs):
        split = {"treatment": 0, "control": 100} if i % 2 else {"treatment": 25, "control": 75}
        start = time.perf_counter()
        (await sim.put(f"/lb/{deployment}/split", json=split)).raise_for_status()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def isolated_stack(prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh home and free ports for an embedded stack of the benchmark's own, set in this
    process's environment (the stack's parts and `Settings()` read them)."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    ports = {name: free_port() for name in ("temporal", "ui", "redis", "sim", "gateway")}
    env = {
        "ROLLBACK_HOME": str(home),
        "ROLLBACK_TEMPORAL_ADDRESS": f"127.0.0.1:{ports['temporal']}",
        "ROLLBACK_UI_URL": f"http://127.0.0.1:{ports['ui']}",
        "ROLLBACK_REDIS_URL": f"redis://127.0.0.1:{ports['redis']}/0",
        "ROLLBACK_TARGET_URL": f"http://127.0.0.1:{ports['sim']}",
        "ROLLBACK_GATEWAY_PORT": str(ports["gateway"]),
    }
    os.environ.update(env)
    return home, env


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def rollbacks(client: Client, deployments: list[str]) -> tuple[int, list[int], int]:
    """Workflows started, history events of each, escalations in all."""
    started, events, escalations = 0, [], 0
    for d in deployments:
        handle = client.get_workflow_handle(f"rollback-{d}")
        try:
            described = await handle.describe()
        except Exception:
            continue
        started += 1
        events.append(described.raw_description.workflow_execution_info.history_length)
        status = await operations.status(client, d)
        escalations += sum(1 for e in status.timeline if e.kind == "escalation")
    return started, events, escalations


async def run(
    alerts: int, count: int, seconds: float, calm: int, flood_bodies: int, watch: bool = True
) -> int:
    home, env = isolated_stack("storm-")
    storm = [f"storm-{i}" for i in range(count)]
    quiet = [f"calm-{i}" for i in range(calm)]
    stack = Stack(
        Settings(_env_file=None),
        home,
        {**dict.fromkeys(storm + quiet, 25), "floor": 25},
        watch=watch,
        say=lambda line: print(line, file=sys.stderr),
    )
    with stack:
        pids = {p.name: p.process.pid for p in stack.parts if p.process is not None}
        token = stack.alerts_token()
        headers = {"Authorization": f"Bearer {token}"}
        client = await connect(Settings(_env_file=None))
        gw_url = f"http://127.0.0.1:{env['ROLLBACK_GATEWAY_PORT']}"
        sim_url = env["ROLLBACK_TARGET_URL"]
        limits = httpx.Limits(max_connections=SENDERS, max_keepalive_connections=SENDERS)
        async with (
            httpx.AsyncClient(base_url=gw_url, limits=limits, timeout=30) as gw,
            httpx.AsyncClient(base_url=sim_url, timeout=30) as sim,
        ):
            await asyncio.sleep(1.0)  # the worker's pollers up
            bare = await floor(sim, "floor")
            rss_before = {name: rss_mb(pid) for name, pid in pids.items()}

            calm_figures = Figures()
            await send_all(
                gw, [(d, body(d, 1)) for d in quiet], max(calm - 1, 0), headers, calm_figures
            )
            await wait_reverted(sim, quiet, calm_figures, within=30)
            await asyncio.sleep(2.0)

            figures = Figures()
            spy = None
            if os.environ.get("STORM_PROFILE"):  # where the worker's time goes in the storm
                spy = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(pids.get("worker") or pids["worker-w"]),
                    "--duration",
                    "3",
                    "--rate",
                    "500",
                    "--format",
                    "raw",
                    "--output",
                    os.environ["STORM_PROFILE"],
                    "--nonblocking",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                await asyncio.sleep(0.3)
            try:
                cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
                cpu_before["benchmark"] = cpu_seconds(os.getpid())
                storm_start = time.monotonic()
                took = await send_all(gw, storm_bodies(storm, alerts), seconds, headers, figures)
                cpu_storm = {
                    name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()
                }
                cpu_storm["benchmark"] = cpu_seconds(os.getpid()) - cpu_before["benchmark"]
                cpu_wall = time.monotonic() - storm_start
            except BaseException:
                if spy is not None and spy.returncode is None:
                    spy.kill()  # the storm failed: no profile to finish
                    await spy.wait()
                raise
            if spy is not None:
                await spy.wait()
            changes = await wait_reverted(sim, storm, figures, within=120)
            flood = Figures()
            flood_took = await send_all(
                gw, storm_bodies(storm, flood_bodies * FINGERPRINTS), 0, headers, flood
            )
            rss_after = {name: rss_mb(pid) for name, pid in pids.items()}
            started, events, escalations = await rollbacks(client, storm)
            stages = await breakdown(client, storm, figures)
            if os.environ.get("STORM_KEEP"):  # look around before the stack stops
                print(f"stack at {env['ROLLBACK_TEMPORAL_ADDRESS']}", file=sys.stderr, flush=True)
                await asyncio.sleep(float(os.environ["STORM_KEEP"]))

    busy = ", ".join(f"{name} {used / cpu_wall:.0%}" for name, used in cpu_storm.items())
    print(f"CPU while the alerts were sent ({cpu_wall:.1f} s; 200% is both cores): {busy}")
    report(
        alerts=alerts,
        count=count,
        seconds=seconds,
        bare=bare,
        calm=calm_figures,
        storm=figures,
        took=took,
        flood=flood,
        flood_took=flood_took,
        changes=changes,
        started=started,
        events=events,
        escalations=escalations,
        rss_before=rss_before,
        rss_after=rss_after,
    )
    print(
        "where the storm's milliseconds go (median from each deployment's first alert sent, "
        "over the rollbacks that reached the stage; Temporal's history clocks): "
        + ", ".join(
            f"{stage} {statistics.median(v) * 1000:.0f} ms (n={len(v)})"
            for stage, v in stages.stages.items()
            if v
        )
    )
    if stages.task_seconds:
        t = stages.task_seconds
        print(
            f"workflow tasks of the storm's rollbacks: {len(t)}, taken -> completed p50 "
            f"{statistics.median(t) * 1000:.0f} ms, p99 {pct(t, 0.99) * 1000:.0f} ms, max "
            f"{max(t) * 1000:.0f} ms (timeout 5 s); timed out: {dict(stages.tasks_timed_out) or 0}"
        )
    return 0


STAGES = {
    "workflow started": "workflow_execution_started",
    "first workflow task picked up": "workflow_task_started",
    "first workflow task done": "workflow_task_completed",
    "split activity scheduled": "activity_task_scheduled",
    "split activity picked up": "activity_task_started",
    "split activity done": "activity_task_completed",
}


@dataclass
class Breakdown:
    stages: dict[str, list[float]]
    """Stage → seconds after the deployment's first alert was sent."""
    task_seconds: list[float] = field(default_factory=list)
    """Every workflow task of the storm's rollbacks, taken → completed (its timeout is 5 s)."""
    tasks_timed_out: Counter[str] = field(default_factory=Counter)
    """By timeout type: SCHEDULE_TO_START is a sticky task the worker did not poll in time
    (handed to the normal queue: a replay), START_TO_CLOSE one it took and did not finish."""


async def breakdown(client: Client, deployments: list[str], figures: Figures) -> Breakdown:
    """From each rollback's history: how long the alert waited for Temporal, for the worker,
    for the activity slot; and how long each workflow task held the worker."""
    first: dict[str, float] = {}
    for s in figures.sent:
        first[s.deployment] = min(first.get(s.deployment, s.at), s.at)
    out: dict[str, list[float]] = {stage: [] for stage in STAGES}
    out["split applied (simulator's ledger)"] = []
    result = Breakdown(out)
    for d in deployments:
        if d not in first:
            continue
        seen: dict[str, float] = {}
        split_activity: int | None = None
        taken: dict[int, float] = {}
        async for e in client.get_workflow_handle(f"rollback-{d}").fetch_history_events():
            kind = (e.WhichOneof("attributes") or "").removesuffix("_event_attributes")
            at = e.event_time.ToDatetime(tzinfo=UTC).timestamp()
            if kind == "workflow_task_started":
                taken[e.event_id] = at
            elif kind == "workflow_task_completed":
                began = taken.get(e.workflow_task_completed_event_attributes.started_event_id)
                if began is not None:
                    result.task_seconds.append(at - began)
            elif kind == "workflow_task_timed_out":
                kind_of = e.workflow_task_timed_out_event_attributes.timeout_type
                result.tasks_timed_out[TimeoutType.Name(kind_of).removeprefix("TIMEOUT_TYPE_")] += 1
            if "split activity done" in seen:
                continue  # the rest of the history: its workflow tasks only
            if kind == "activity_task_scheduled":
                name = e.activity_task_scheduled_event_attributes.activity_type.name
                if name != "set_traffic_split" or split_activity is not None:
                    continue
                split_activity = e.event_id
            elif kind in ("activity_task_started", "activity_task_completed"):
                attrs = getattr(e, f"{kind}_event_attributes")
                if attrs.scheduled_event_id != split_activity:
                    continue
            for stage, wanted in STAGES.items():
                if kind == wanted and stage not in seen:
                    seen[stage] = at
        for stage, at in seen.items():
            out[stage].append(at - first[d])
        if d in figures.reverted:
            out["split applied (simulator's ledger)"].append(figures.reverted[d])
    return result


def report(
    *,
    alerts: int,
    count: int,
    seconds: float,
    bare: float,
    calm: Figures,
    storm: Figures,
    took: float,
    flood: Figures,
    flood_took: float,
    changes: dict[str, int],
    started: int,
    events: list[int],
    escalations: int,
    rss_before: dict[str, float],
    rss_after: dict[str, float],
) -> None:
    ms = 1000.0

    def line(name: str, samples: list[float]) -> str:
        if not samples:
            return f"{name}: no sample"
        p50, p99, top = statistics.median(samples), pct(samples, 0.99), max(samples)
        return (
            f"{name}: p50 {p50 * ms:.1f} ms ({p50 / bare:.0f}x floor), p99 {p99 * ms:.1f} ms "
            f"({p99 / bare:.0f}x), max {top * ms:.1f} ms"
        )

    delivered = sum(s.alerts for s in storm.sent)
    codes = Counter(s.status for s in storm.sent)
    lost = alerts - sum(s.alerts for s in storm.sent if s.status == 200)
    mem = {
        name: (rss_before[name], rss_after[name])
        for name in rss_before
        if name.startswith(("worker", "gateway"))
    }
    engine_after = sum(after for _, after in mem.values())
    print(f"floor: a PUT straight to the load balancer, median {bare * ms:.2f} ms")
    print(
        line(
            f"calm ({len(calm.reverted)} alerts, 1 s apart): webhook sent -> traffic reverted",
            list(calm.reverted.values()),
        )
    )
    print(
        f"storm: {alerts} alerts over {count} deployments in {seconds:g} s "
        f"({len(storm.sent)} webhook bodies, {FINGERPRINTS} distinct alerts per deployment)"
    )
    print(line("storm: webhook sent -> traffic reverted", list(storm.reverted.values())))
    gw = [s.latency for s in storm.sent]
    print(
        f"gateway latency: p50 {statistics.median(gw) * ms:.1f} ms, "
        f"p99 {pct(gw, 0.99) * ms:.1f} ms; ingest {delivered / took:.0f} alerts/s; "
        f"status codes {dict(codes)}; lost {lost}"
    )
    fl = [s.latency for s in flood.sent]
    flood_alerts = sum(s.alerts for s in flood.sent)
    flood_rate = flood_alerts / flood_took if fl else 0.0
    if fl:
        print(
            f"flood: {len(flood.sent)} webhooks x {FINGERPRINTS} alerts, {SENDERS} senders as "
            f"fast as they can: {len(flood.sent) / flood_took:.0f} requests/s, "
            f"{flood_rate:.0f} alerts/s; gateway latency p50 "
            f"{statistics.median(fl) * ms:.1f} ms, p99 {pct(fl, 0.99) * ms:.1f} ms; status codes "
            f"{dict(Counter(s.status for s in flood.sent))}"
        )
    else:
        print("flood: not sent (--flood 0)")
    split_changes = sum(changes.values())
    print(
        f"rollbacks started: {started} of {count}; split changes applied: {split_changes} "
        f"({sum(1 for n in changes.values() if n == 1)} deployments with exactly one); "
        f"escalations: {escalations}"
    )
    if events:
        median = statistics.median(events)
        print(f"history events per workflow: median {median:.0f}, max {max(events)}")
    for name, (before, after) in mem.items():
        print(f"RSS {name}: {before:.0f} MB before, {after:.0f} MB after")
    goals = [
        (
            "calm p50 <= 50 ms",
            bool(calm.reverted) and statistics.median(calm.reverted.values()) <= 0.050,
        ),
        (
            "storm p50 <= 100 ms",
            bool(storm.reverted) and statistics.median(storm.reverted.values()) <= 0.100,
        ),
        (
            "storm p99 <= 500 ms",
            bool(storm.reverted) and pct(list(storm.reverted.values()), 0.99) <= 0.500,
        ),
        (">= 500 alerts/s ingested", max(delivered / took, flood_rate) >= 500),
        ("0 alerts lost", lost == 0),
        (f"exactly {count} rollbacks", started == count),
        (
            f"exactly {count} split changes",
            split_changes == count and all(n == 1 for n in changes.values()),
        ),
        ("worker + gateway RSS <= 250 MB", engine_after <= 250),
    ]
    for goal, met in goals:
        print(f"goal {goal}: {'met' if met else 'MISSED'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--calm", type=int, default=10, help="alerts of the calm, 1 s apart")
    parser.add_argument("--flood", type=int, default=2000, help="webhooks sent unpaced")
    parser.add_argument(
        "--no-watch",
        action="store_true",
        help="without the canary watches `rollback up` starts (the alert path alone)",
    )
    args = parser.parse_args()
    # SIGTERM and SIGHUP stop the stack as Ctrl-C does: its parts run in sessions of their own,
    # so a benchmark that died on a signal would leave them running.
    with stop_on_signals():
        try:
            code = asyncio.run(
                run(
                    args.alerts,
                    args.deployments,
                    args.seconds,
                    args.calm,
                    args.flood,
                    not args.no_watch,
                )
            )
        except KeyboardInterrupt as stop:
            print(f"stopped ({stop or 'SIGINT'}); the stack is down", file=sys.stderr)
            code = 130
    sys.stdout.flush()
    os._exit(code)  # the Temporal client's threads can crash the interpreter's exit


if __name__ == "__main__":
    sys.exit(main())
