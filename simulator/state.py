"""Pure model of the deployments under canary: traffic split, target-system state,
injected faults, the figures they produce and the logs they leave.

Nothing here knows about HTTP. Time comes from two injectable clocks: a monotonic one
(seconds, for rates and windows) and a wall clock (UTC datetimes, for log and call
timestamps). Not thread-safe: drive it from one thread (the server's event loop).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from simulator.counters import VariantCounters
from simulator.figures import (
    BASELINE,
    BASELINE_SHARD_CPU,
    BASELINE_SHARD_MEMORY,
    SHARD_COUNT,
    TOTAL_REQUESTS_PER_SECOND,
    DeploymentFaults,
    VariantFigures,
    blend,
    shard_level,
)
from simulator.logbook import Level, LogBook, LogLine, Variant
from simulator.window import ShareHistory

Clock = Callable[[], float]
WallClock = Callable[[], datetime]
ServiceStatus = Literal["running", "stopped"]

HEDGING_SERVICE = "hedging-service"
SERVICES: tuple[str, ...] = (HEDGING_SERVICE,)
FLAGS: tuple[str, ...] = ("hedging", "ta_nra_optimization")
VARIANTS: tuple[Variant, ...] = ("control", "treatment")

MAX_ERROR_LINES_CATCH_UP = 300
"""Synthetic error lines produced at most per read, however long nobody looked."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_RESERVED_NAMES = frozenset({"api"})  # ``/faults/api`` is taken


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_name(name: str) -> str:
    """Return ``name`` if it can name a deployment (it appears in URL paths)."""
    if not _NAME.fullmatch(name) or name in _RESERVED_NAMES:
        raise ValueError(
            f"invalid deployment name {name!r}: use 1-63 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit (and not 'api')"
        )
    return name


def check_percent(treatment: int) -> int:
    if isinstance(treatment, bool) or not isinstance(treatment, int) or not 0 <= treatment <= 100:
        raise ValueError(f"treatment percent must be an integer from 0 to 100, got {treatment!r}")
    return treatment


class NotFound(LookupError):
    """An unknown deployment, flag or service; the API answers 404 with ``detail``."""

    def __init__(self, kind: str, name: str) -> None:
        self.detail = f"unknown {kind} '{name}'"
        super().__init__(self.detail)


@dataclass(frozen=True)
class ShardGauge:
    shard: str
    cpu: float
    memory: float


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the deployment's monitoring shows now; totals and rates are windowed."""

    deployment: str
    treatment_percent: int
    windowed_treatment_share: float
    control: VariantFigures
    treatment: VariantFigures
    total: VariantFigures
    shards: tuple[ShardGauge, ...]
    counters: Mapping[Variant, VariantCounters]

    def requests_per_second(self, variant: Variant | None = None) -> float:
        share = self.windowed_treatment_share
        factor = {None: 1.0, "treatment": share, "control": 1.0 - share}[variant]
        return TOTAL_REQUESTS_PER_SECOND * factor

    def as_dict(self) -> dict[str, Any]:
        def variant(figures: VariantFigures, v: Variant | None) -> dict[str, float]:
            return {**figures.as_dict(), "requests_per_second": self.requests_per_second(v)}

        return {
            "deployment": self.deployment,
            "split": {
                "treatment": self.treatment_percent,
                "control": 100 - self.treatment_percent,
            },
            "treatment": variant(self.treatment, "treatment"),
            "control": variant(self.control, "control"),
            "total": variant(self.total, None),
            "baseline": BASELINE.as_dict(),
            "shards": [{"shard": s.shard, "cpu": s.cpu, "memory": s.memory} for s in self.shards],
            "max_shard_cpu": max(s.cpu for s in self.shards),
            "max_shard_memory": max(s.memory for s in self.shards),
        }


@dataclass(frozen=True)
class SearchOutcome:
    deployment: str
    variant: Variant
    failed: bool
    results: list[str]


@dataclass
class _Controls:
    """The state the rollback engine reads and changes, other than the split."""

    ta_nra_early_stop: bool = True
    flags: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(FLAGS, True))
    services: dict[str, ServiceStatus] = field(
        default_factory=lambda: dict.fromkeys(SERVICES, "running")
    )


class Deployment:
    """One search deployment in canary, as its target systems and monitoring see it.

    Counters and synthetic error lines are brought up to date lazily (:meth:`_advance`)
    before anything is read or changed, so between two calls the rates are constant.
    """

    _treatment: int
    _history: ShareHistory
    _controls: _Controls
    _faults: DeploymentFaults
    _shard_reference: dict[str, float]
    """Windowed treatment share when each shard fault was injected (see ``shard_level``)."""
    _next_error_line_at: float

    def __init__(
        self,
        name: str,
        treatment: int,
        *,
        window_seconds: float,
        clock: Clock,
        wall_clock: WallClock,
    ) -> None:
        self.name = check_name(name)
        self._window = window_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._advanced_at = clock()
        self._counters: dict[Variant, VariantCounters] = {v: VariantCounters() for v in VARIANTS}
        self._logs = LogBook()
        self._error_lines = 0
        self._reset(treatment, self._advanced_at)
        self._log("INFO", "treatment", f"canary started: {self._split_text()}")

    # --- load balancer -------------------------------------------------------------

    @property
    def split(self) -> tuple[int, int]:
        """(treatment, control) percentages."""
        return self._treatment, 100 - self._treatment

    def set_split(self, treatment: int, control: int) -> tuple[int, int]:
        check_percent(treatment)
        if treatment + control != 100:
            raise ValueError(f"treatment + control must be 100, got {treatment + control}")
        now = self._advance()
        before = self._split_text()
        if treatment == self._treatment:
            self._log("INFO", "treatment", f"traffic split unchanged: {before}")
            return self.split
        self._treatment = treatment
        self._history.set(now, treatment / 100.0)
        self._log("INFO", "treatment", f"traffic split changed: {before} -> {self._split_text()}")
        return self.split

    # --- configuration, flags and services -------------------------------------------

    @property
    def ta_nra_early_stop(self) -> bool:
        return self._controls.ta_nra_early_stop

    def set_ta_nra_early_stop(self, enabled: bool) -> bool:
        self._advance()
        before = self._controls.ta_nra_early_stop
        self._controls.ta_nra_early_stop = enabled
        self._log(
            "INFO",
            "treatment",
            f"config ta_nra_early_stop changed: {_json_bool(before)} -> {_json_bool(enabled)}",
        )
        return enabled

    @property
    def flags(self) -> dict[str, bool]:
        return dict(self._controls.flags)

    def flag(self, flag: str) -> bool:
        if flag not in self._controls.flags:
            raise NotFound("flag", flag)
        return self._controls.flags[flag]

    def set_flag(self, flag: str, enabled: bool) -> bool:
        self.flag(flag)
        self._advance()
        self._controls.flags[flag] = enabled
        self._log("INFO", "treatment", f"feature flag {flag} {_on_off(enabled)}")
        return enabled

    def service_status(self, service: str) -> ServiceStatus:
        if service not in self._controls.services:
            raise NotFound("service", service)
        return self._controls.services[service]

    def set_service_running(self, service: str, running: bool) -> ServiceStatus:
        before = self.service_status(service)
        self._advance()
        status: ServiceStatus = "running" if running else "stopped"
        self._controls.services[service] = status
        verb = ("started" if running else "stopped") if before != status else f"already {status}"
        self._log("INFO", "treatment", f"service {service} {verb}")
        return status

    # --- faults ----------------------------------------------------------------------

    @property
    def faults(self) -> DeploymentFaults:
        return self._faults

    def inject(self, changes: Mapping[str, float | None]) -> DeploymentFaults:
        """Set (or with ``None`` clear) the named faults; the others stay as they are."""
        now = self._advance()
        self._faults = self._faults.merged(dict(changes))
        share = self._history.average(now, self._window)
        for key in ("shard_cpu", "shard_memory"):
            if changes.get(key) is not None:
                self._shard_reference[key] = share
        described = ", ".join(f"{k}={v}" for k, v in changes.items()) or "nothing"
        self._log("WARN", "treatment", f"fault injected: {described}")
        return self._faults

    def clear_faults(self) -> DeploymentFaults:
        self._advance()
        self._faults = DeploymentFaults()
        self._log("INFO", "treatment", "faults cleared")
        return self._faults

    # --- monitoring --------------------------------------------------------------------

    def metrics(self) -> MetricsSnapshot:
        now = self._advance()
        share = self._history.average(now, self._window)
        treatment = self._faults.treatment_figures()
        cpu = shard_level(
            BASELINE_SHARD_CPU, self._faults.shard_cpu, self._shard_reference["shard_cpu"], share
        )
        memory = shard_level(
            BASELINE_SHARD_MEMORY,
            self._faults.shard_memory,
            self._shard_reference["shard_memory"],
            share,
        )
        return MetricsSnapshot(
            deployment=self.name,
            treatment_percent=self._treatment,
            windowed_treatment_share=share,
            control=BASELINE,
            treatment=treatment,
            total=blend(BASELINE, treatment, share),
            shards=tuple(ShardGauge(f"shard-{i}", cpu, memory) for i in range(SHARD_COUNT)),
            counters={
                v: VariantCounters(c.requests, c.errors, c.latency_sum, list(c.buckets))
                for v, c in self._counters.items()
            },
        )

    def logs(self, since: datetime | None = None, until: datetime | None = None) -> list[LogLine]:
        self._advance()
        return self._logs.between(since, until)

    def search(self, query: str, rng: random.Random) -> SearchOutcome:
        """One search request: routed by the split, failing at the variant's error rate."""
        self._advance()
        variant: Variant = "treatment" if rng.random() * 100 < self._treatment else "control"
        figures = self._faults.treatment_figures() if variant == "treatment" else BASELINE
        failed = rng.random() < figures.error_rate
        return SearchOutcome(self.name, variant, failed, _fake_results(query))

    # --- lifecycle ---------------------------------------------------------------------

    def reset(self, treatment: int) -> None:
        """Back to a fresh canary at ``treatment`` percent; counters and logs are kept."""
        now = self._advance()
        self._reset(treatment, now)
        self._log("INFO", "treatment", f"deployment reset: {self._split_text()}")

    def _reset(self, treatment: int, now: float) -> None:
        self._treatment = check_percent(treatment)
        self._history = ShareHistory(now, treatment / 100.0)
        self._controls = _Controls()
        self._faults = DeploymentFaults()
        self._shard_reference = {"shard_cpu": 1.0, "shard_memory": 1.0}
        self._next_error_line_at = now

    # --- internals ---------------------------------------------------------------------

    def _advance(self) -> float:
        """Count what was served since the last call, at the rates that held; return now."""
        now = self._clock()
        elapsed = now - self._advanced_at
        if elapsed <= 0.0:
            return self._advanced_at
        share = self._history.current
        self._counters["treatment"].accumulate(
            elapsed, TOTAL_REQUESTS_PER_SECOND * share, self._faults.treatment_figures()
        )
        self._counters["control"].accumulate(
            elapsed, TOTAL_REQUESTS_PER_SECOND * (1.0 - share), BASELINE
        )
        self._write_error_lines(now)
        self._advanced_at = now
        return now

    def _write_error_lines(self, now: float) -> None:
        """Synthetic treatment ERROR lines, one per simulated second while it is failing."""
        rate = self._faults.treatment_error_rate or 0.0
        if rate <= 0.0 or self._treatment == 0:
            self._next_error_line_at = now
            return
        at = max(self._next_error_line_at, now - MAX_ERROR_LINES_CATCH_UP)
        wall_now = self._wall_clock()
        while at <= now:
            shard = self._error_lines % SHARD_COUNT
            self._error_lines += 1
            self._logs.add(
                LogLine(
                    at=wall_now - timedelta(seconds=now - at),
                    level="ERROR",
                    variant="treatment",
                    message=(
                        f"search request failed: shard-{shard} answered 500"
                        f" (treatment error rate {rate:.2%})"
                    ),
                )
            )
            at += 1.0
        self._next_error_line_at = at

    def _log(self, level: Level, variant: Variant, message: str) -> None:
        self._logs.add(LogLine(self._wall_clock(), level, variant, message))

    def _split_text(self) -> str:
        treatment, control = self.split
        return f"treatment {treatment}% / control {control}%"


class Simulator:
    """All deployments, by name, sharing the clocks and the search dice."""

    def __init__(
        self,
        deployments: Mapping[str, int] | None = None,
        *,
        window_seconds: float = 2.0,
        clock: Clock = time.monotonic,
        wall_clock: WallClock = utc_now,
        seed: int = 0,
    ) -> None:
        if window_seconds < 0:
            raise ValueError(f"window_seconds must be >= 0, got {window_seconds}")
        self.window_seconds = window_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._rng = random.Random(seed)
        self._deployments: dict[str, Deployment] = {}
        for name, treatment in (deployments or {}).items():
            self.put(name, treatment)

    @property
    def names(self) -> list[str]:
        return list(self._deployments)

    def __iter__(self) -> Iterator[Deployment]:
        return iter(list(self._deployments.values()))

    def get(self, name: str) -> Deployment:
        try:
            return self._deployments[name]
        except KeyError:
            raise NotFound("deployment", name) from None

    def put(self, name: str, treatment: int) -> Deployment:
        """Add a deployment, or reset the one of that name, at ``treatment`` percent."""
        existing = self._deployments.get(name)
        if existing is not None:
            existing.reset(treatment)
            return existing
        deployment = Deployment(
            name,
            treatment,
            window_seconds=self.window_seconds,
            clock=self._clock,
            wall_clock=self._wall_clock,
        )
        self._deployments[name] = deployment
        return deployment

    def search(self, name: str, query: str) -> SearchOutcome:
        return self.get(name).search(query, self._rng)


def _json_bool(value: bool) -> str:
    return "true" if value else "false"


def _on_off(enabled: bool) -> str:
    return "enabled" if enabled else "disabled"


def _fake_results(query: str) -> list[str]:
    """Ten stable document ids for a query."""
    return [
        "doc-" + hashlib.sha256(f"{query}\x00{rank}".encode()).hexdigest()[:10]
        for rank in range(10)
    ]
