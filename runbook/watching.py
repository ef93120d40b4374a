"""The canary watch's judgement, pure: which figures to read, how a derived figure is computed,
and each condition's sustain clock.

Sustain is exact and honest:
- a breach counts from its first breaching reading; it is *sustained* once readable breaching
  readings span the condition's `sustain` (so with readings every `interval` it is raised within
  one interval of the period's end, and a breach one reading short is not);
- a healthy reading resets the clock;
- a reading that cannot be taken is neither: the clock pauses (the time of the gap does not
  count), and a run of them is a monitoring blind spot, never a breach; so is a stretch of more
  than two intervals with no reading at all (the worker down).

Prometheus' `for:` resets on a missing sample instead; with no gap both agree (tested).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from runbook.policy import Comparison, Policy, compare, watched_metrics

Values = Mapping[str, float | None]


@dataclass(frozen=True)
class Condition:
    id: str
    """The trigger id, or `gate:<id>`."""
    name: str
    trigger: str
    """What a sustained breach raises."""
    metric: str
    comparison: Comparison
    threshold: float
    breach_when_holds: bool
    """True for a trigger (the condition is the breach); False for a gate (it is the pass)."""
    sustain: timedelta
    raises: bool = True
    """False for a gate that is not primary: shown, never raised."""

    def breached(self, value: float) -> bool:
        holds = compare(self.comparison, value, self.threshold)
        return holds if self.breach_when_holds else not holds

    def describe(self) -> str:
        verb = "" if self.breach_when_holds else "gate fails unless "
        return f"{verb}{self.metric} {self.comparison} {self.threshold:g}"


def conditions(policy: Policy) -> list[Condition]:
    """Every trigger with a metric, comparison and threshold, and every success gate."""
    found = [
        Condition(
            id=trigger_id,
            name=trigger.name,
            trigger=trigger_id,
            metric=trigger.metric,
            comparison=trigger.comparison,
            threshold=trigger.threshold,
            breach_when_holds=True,
            sustain=trigger.sustain,
        )
        for trigger_id, trigger in policy.triggers.items()
        if trigger.metric and trigger.comparison and trigger.threshold is not None
    ]
    found += [
        Condition(
            id=f"gate:{gate.id}",
            name=gate.name,
            trigger=policy.watch.gate_trigger,
            metric=gate.metric,
            comparison=gate.comparison,
            threshold=gate.threshold,
            breach_when_holds=False,
            sustain=gate.sustain,
            raises=gate.primary,
        )
        for gate in policy.watch.gates
    ]
    return found


# --- what to read, and the derived figures -----------------------------------------------------


class ReadPlan(BaseModel):
    """The provider's queries one reading needs."""

    metrics: list[str]
    variants: dict[str, list[str]]
    """Variant → metrics of that variant (the `variants` queries)."""


def read_plan(policy: Policy) -> ReadPlan:
    metrics: set[str] = set()
    variants: dict[str, set[str]] = {}
    for metric in watched_metrics(policy):
        derived = policy.watch.derived.get(metric)
        if derived is None:
            metrics.add(metric)
            continue
        if derived.variant is not None and derived.metric is not None:
            variants.setdefault(derived.variant, set()).add(derived.metric)
        elif derived.relative_to_baseline is not None:
            metrics.add(derived.relative_to_baseline)
            if derived.baseline == "control":
                variants.setdefault("control", set()).add(derived.relative_to_baseline)
        else:
            metrics.update(derived.largest_of)
    return ReadPlan(
        metrics=sorted(metrics), variants={v: sorted(m) for v, m in sorted(variants.items())}
    )


def raw_key(metric: str, variant: str | None = None) -> str:
    """How a raw reading is keyed: `error_rate`, `control:p99_latency_seconds`."""
    return f"{variant}:{metric}" if variant else metric


def derive(policy: Policy, raw: Values, captured: Values) -> dict[str, float | None]:
    """Each watched figure from one reading's raw values (None: it could not be computed)."""
    figures: dict[str, float | None] = {}
    for metric in watched_metrics(policy):
        derived = policy.watch.derived.get(metric)
        if derived is None:
            figures[metric] = raw.get(metric)
        elif derived.variant is not None and derived.metric is not None:
            figures[metric] = raw.get(raw_key(derived.metric, derived.variant))
        elif derived.relative_to_baseline is not None:
            base = derived.relative_to_baseline
            live = raw.get(base)
            baseline = (
                raw.get(raw_key(base, "control"))
                if derived.baseline == "control"
                else captured.get(base)
            )
            figures[metric] = (
                None if live is None or baseline is None or baseline <= 0 else live / baseline - 1
            )
        else:
            parts = [raw.get(m) for m in derived.largest_of]
            figures[metric] = None if any(p is None for p in parts) else max(parts)  # type: ignore[type-var]
    return figures


def to_capture(policy: Policy) -> list[str]:
    """The metrics whose figure at the watch's start is a baseline (`baseline: captured`)."""
    return sorted(
        d.relative_to_baseline
        for d in policy.watch.derived.values()
        if d.relative_to_baseline is not None and d.baseline == "captured"
    )


# --- the sustain clock ---------------------------------------------------------------------


class Clock(BaseModel):
    """One condition's state across readings (carried over continue-as-new)."""

    breaching_since: datetime | None = None
    """The first breaching reading of the current breach."""
    last_breach_at: datetime | None = None
    """The latest readable breaching reading (the end of the span counted so far)."""
    sustained_seconds: float = 0.0
    """Readable breaching time counted: gaps of unreadable readings are left out."""
    gap: bool = False
    """An unreadable reading since the last breaching one: the next one restarts the span."""
    raised_at: datetime | None = None
    """When this breach was raised (raised once per breach)."""
    unreadable: int = 0
    """Consecutive readings without a figure."""
    last_value: float | None = None


Verdict = Literal["healthy", "breaching", "sustained", "unreadable"]


def observe(
    condition: Condition,
    clock: Clock,
    at: datetime,
    value: float | None,
    interval: timedelta | None = None,
) -> Verdict:
    """One reading at `at`; `sustained` exactly once per breach, when it has lasted. With the
    watch's `interval`, time with no reading at all (the worker down, longer than two intervals)
    is a gap too: only time between readings taken counts as sustained."""
    if value is None:
        clock.unreadable += 1
        if clock.breaching_since is not None:
            clock.gap = True
        return "unreadable"
    clock.unreadable = 0
    clock.last_value = value
    if not condition.breached(value):
        clock.breaching_since = clock.last_breach_at = clock.raised_at = None
        clock.sustained_seconds, clock.gap = 0.0, False
        return "healthy"
    if clock.breaching_since is None:
        clock.breaching_since = at
    elif clock.last_breach_at is not None and not clock.gap:
        since = at - clock.last_breach_at
        if interval is None or since <= 2 * interval:
            clock.sustained_seconds += since.total_seconds()
    clock.last_breach_at, clock.gap = at, False
    if clock.raised_at is None and clock.sustained_seconds >= condition.sustain.total_seconds():
        clock.raised_at = at
        return "sustained"
    return "breaching"


def sustained_for(clock: Clock) -> timedelta:
    return timedelta(seconds=clock.sustained_seconds)
