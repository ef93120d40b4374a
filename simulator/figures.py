"""The figures a variant shows, the faults that degrade them, and how they combine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from simulator import latency

TOTAL_REQUESTS_PER_SECOND = 1000.0
SHARD_COUNT = 4
BASELINE_SHARD_CPU = 0.45
BASELINE_SHARD_MEMORY = 0.55


@dataclass(frozen=True)
class VariantFigures:
    """Quality and health of one variant (or of all traffic)."""

    error_rate: float
    p99_latency_seconds: float
    ndcg_at_10: float
    sla_recall_at_50: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


BASELINE = VariantFigures(
    error_rate=0.0005,  # under the 0.1 % that healthy checks demand
    p99_latency_seconds=0.180,
    ndcg_at_10=0.5234,
    sla_recall_at_50=0.97,
)


@dataclass(frozen=True)
class DeploymentFaults:
    """Injected degradations of one deployment; ``None`` means not injected.

    The ``treatment_*`` ones replace the treatment's own figures. The shard ones are the
    levels the shards show at the treatment share in force when they are injected; see
    :func:`shard_level`.
    """

    treatment_error_rate: float | None = None
    treatment_p99_latency_seconds: float | None = None
    treatment_ndcg_at_10: float | None = None
    treatment_sla_recall_at_50: float | None = None
    shard_cpu: float | None = None
    shard_memory: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return asdict(self)

    def merged(self, changes: dict[str, Any]) -> DeploymentFaults:
        """A copy with ``changes`` applied (a ``None`` value clears that fault)."""
        return replace(self, **changes)

    def active(self) -> dict[str, float]:
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def treatment_figures(self) -> VariantFigures:
        def pick(injected: float | None, healthy: float) -> float:
            return healthy if injected is None else injected

        return VariantFigures(
            error_rate=pick(self.treatment_error_rate, BASELINE.error_rate),
            p99_latency_seconds=pick(
                self.treatment_p99_latency_seconds, BASELINE.p99_latency_seconds
            ),
            ndcg_at_10=pick(self.treatment_ndcg_at_10, BASELINE.ndcg_at_10),
            sla_recall_at_50=pick(self.treatment_sla_recall_at_50, BASELINE.sla_recall_at_50),
        )


def blend(control: VariantFigures, treatment: VariantFigures, share: float) -> VariantFigures:
    """Figures of all traffic when ``share`` (0..1) of it goes to the treatment."""

    def weighted(c: float, t: float) -> float:
        return c if share == 0.0 else (1.0 - share) * c + share * t

    return VariantFigures(
        error_rate=weighted(control.error_rate, treatment.error_rate),
        p99_latency_seconds=latency.mixture_p99(
            control.p99_latency_seconds, treatment.p99_latency_seconds, share
        ),
        ndcg_at_10=weighted(control.ndcg_at_10, treatment.ndcg_at_10),
        sla_recall_at_50=weighted(control.sla_recall_at_50, treatment.sla_recall_at_50),
    )


def shard_level(
    baseline: float, injected: float | None, reference_share: float, share: float
) -> float:
    """A shard gauge under an injected level.

    The treatment is what loads the shards: the excess of ``injected`` over ``baseline``
    is what they carry at ``reference_share`` (the treatment share when the fault was
    injected; taken as 1 when that was 0), and it scales with the treatment's (windowed)
    ``share``, so that draining the treatment brings the shards back to ``baseline``.
    Capped at 1.
    """
    if injected is None:
        return baseline
    reference = reference_share if reference_share > 0.0 else 1.0
    return min(1.0, baseline + (injected - baseline) * (share / reference))
