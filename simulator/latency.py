"""Latency model: each variant's request latency is log-normal with a fixed shape.

A variant is described by its p99 alone; the median follows from the fixed ``SIGMA``.
That is enough to give a latency histogram whose ``histogram_quantile(0.99, ...)`` lands
near the p99, and to compute the p99 of a traffic-weighted mixture of two variants.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

SIGMA = 0.35
"""Shape of every variant's log-normal latency (the standard deviation of ln(latency))."""

_STANDARD = NormalDist()
_Z99 = _STANDARD.inv_cdf(0.99)

BUCKETS: tuple[float, ...] = (
    0.05,
    0.1,
    0.15,
    0.175,
    0.2,
    0.25,
    0.3,
    0.35,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    math.inf,
)
"""Histogram upper bounds, finer around the healthy (0.18 s) and degraded (0.35 s) p99s."""


def _mu(p99: float) -> float:
    """ln of the median of the log-normal whose 99th percentile is ``p99``."""
    return math.log(p99) - _Z99 * SIGMA


def cdf(p99: float, x: float) -> float:
    """P(latency <= x) for a variant whose p99 is ``p99``."""
    if x == math.inf:
        return 1.0
    if x <= 0.0:
        return 0.0
    return _STANDARD.cdf((math.log(x) - _mu(p99)) / SIGMA)


def mean(p99: float) -> float:
    """Mean latency of a variant whose p99 is ``p99``."""
    return math.exp(_mu(p99) + SIGMA * SIGMA / 2.0)


def bucket_fractions(p99: float, bounds: Sequence[float] = BUCKETS) -> list[float]:
    """Cumulative share of requests at or under each bound (non-decreasing, ends at 1)."""
    return [cdf(p99, bound) for bound in bounds]


def mixture_p99(control_p99: float, treatment_p99: float, treatment_share: float) -> float:
    """The p99 of all traffic when ``treatment_share`` (0..1) of it goes to the treatment.

    Exact at the ends (a share of 0 gives the control's p99) and in between the root of the
    mixture's CDF, so a slower treatment always pulls the total above the control's p99.
    """
    share = min(max(treatment_share, 0.0), 1.0)
    if share == 0.0 or control_p99 == treatment_p99:
        return control_p99
    if share == 1.0:
        return treatment_p99
    lo, hi = min(control_p99, treatment_p99), max(control_p99, treatment_p99)
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        mixed = (1.0 - share) * cdf(control_p99, mid) + share * cdf(treatment_p99, mid)
        if mixed < 0.99:
            lo = mid
        else:
            hi = mid
        if hi / lo - 1.0 < 1e-12:
            break
    return hi
