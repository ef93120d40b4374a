"""Prometheus text exposition (format 0.0.4) of every deployment's monitoring."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from simulator import latency
from simulator.state import VARIANTS, MetricsSnapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MetricType = Literal["counter", "gauge", "histogram"]
Labels = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Labels
    value: float


@dataclass
class Family:
    """One ``# HELP``/``# TYPE`` block; its samples are written together, as required."""

    name: str
    type: MetricType
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(self, labels: Labels, value: float, suffix: str = "") -> None:
        self.samples.append(Sample(self.name + suffix, labels, value))


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            lines.append(f"{sample.name}{_labels(sample.labels)} {format_value(sample.value)}")
    return "\n".join(lines) + "\n"


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def exposition(snapshots: Iterable[MetricsSnapshot]) -> str:
    """The ``/metrics`` page: counters, the latency histogram and gauges, per deployment."""
    requests = Family("search_requests_total", "counter", "Search requests served.")
    errors = Family("search_errors_total", "counter", "Search requests that failed.")
    duration = Family(
        "search_request_duration_seconds", "histogram", "Search request latency in seconds."
    )
    share = Family("search_traffic_share", "gauge", "Share of traffic (0-1) the LB sends.")
    ndcg = Family("search_ndcg_at_10", "gauge", "Ranking quality, nDCG@10.")
    recall = Family("search_sla_recall_at_50", "gauge", "SLA recall@50.")
    cpu = Family("search_shard_cpu_ratio", "gauge", "CPU utilisation (0-1) of a shard.")
    memory = Family("search_shard_memory_ratio", "gauge", "Memory utilisation (0-1) of a shard.")

    for snap in snapshots:
        split = {"treatment": snap.treatment_percent / 100.0}
        split["control"] = 1.0 - split["treatment"]
        for variant in VARIANTS:
            labels = (("deployment", snap.deployment), ("variant", variant))
            counters = snap.counters[variant]
            figures = snap.treatment if variant == "treatment" else snap.control
            requests.add(labels, counters.requests)
            errors.add(labels, counters.errors)
            for bound, count in zip(latency.BUCKETS, counters.buckets, strict=True):
                duration.add((*labels, ("le", format_value(bound))), count, "_bucket")
            duration.add(labels, counters.latency_sum, "_sum")
            duration.add(labels, counters.requests, "_count")
            share.add(labels, split[variant])
            ndcg.add(labels, figures.ndcg_at_10)
            recall.add(labels, figures.sla_recall_at_50)
        for shard in snap.shards:
            shard_labels = (("deployment", snap.deployment), ("shard", shard.shard))
            cpu.add(shard_labels, shard.cpu)
            memory.add(shard_labels, shard.memory)

    return render([requests, errors, duration, share, ndcg, recall, cpu, memory])


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
