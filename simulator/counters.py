"""Monotonic request counters of one variant, accumulated from rates over elapsed time."""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator import latency
from simulator.figures import VariantFigures


@dataclass
class VariantCounters:
    """What a Prometheus client in the variant would have counted so far.

    The counters are floats that grow by ``rate x elapsed`` so that ``rate()`` over them
    gives back the figures in force: requests per second, the error ratio, and a latency
    histogram whose quantiles are the variant's.
    """

    requests: float = 0.0
    errors: float = 0.0
    latency_sum: float = 0.0
    buckets: list[float] = field(default_factory=lambda: [0.0] * len(latency.BUCKETS))

    def accumulate(
        self, seconds: float, requests_per_second: float, figures: VariantFigures
    ) -> None:
        if seconds <= 0.0 or requests_per_second <= 0.0:
            return
        served = requests_per_second * seconds
        self.requests += served
        self.errors += served * figures.error_rate
        self.latency_sum += served * latency.mean(figures.p99_latency_seconds)
        fractions = latency.bucket_fractions(figures.p99_latency_seconds)
        for i, fraction in enumerate(fractions):
            self.buckets[i] += served * fraction
