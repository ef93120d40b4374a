"""Step 6, Root Cause Analysis: logs of the treatment period, treatment vs control figures,
the events that led to the rollback, and hypotheses formed from that evidence."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from activities.checks import number
from activities.metrics import MetricsReader
from activities.models import Hypothesis, RootCauseInput, RootCauseResult
from activities.targets import Target, fill, rejected

VARIANTS = ("treatment", "control")
EXCERPT_LINES = 20
TIMELINE_EVENTS = 40
# What counts as a notable difference between treatment and control. Heuristics of the
# analysis, not thresholds of the plan (those live in the policy).
ERROR_RATIO = 2.0
LATENCY_RATIO = 1.15
QUALITY_DROP = 0.005
RECALL_DROP = 0.01


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: str
    variant: str
    message: str

    def text(self) -> str:
        return f"{self.at:%H:%M:%S} {self.level} {self.variant}: {self.message}"


class LogSource:
    def __init__(self, target: Target, path: str) -> None:
        self.target = target
        self.path = path

    async def lines(self, deployment: str, since: datetime) -> list[LogLine]:
        data = await self.target.get(
            fill(self.path, deployment=deployment), params={"since": since.isoformat()}
        )
        raw = self.target.field(data, "lines", list)
        try:
            return [_line(item) for item in raw]
        except (KeyError, TypeError, ValueError) as error:
            raise rejected(
                f"logs at {self.target.base_url} answered a malformed line ({error}): "
                f"{str(raw[:1])[:200]}"
            ) from None


def _line(item: dict[str, Any]) -> LogLine:
    at = datetime.fromisoformat(item["at"])
    return LogLine(
        at=at if at.tzinfo else at.replace(tzinfo=UTC),
        level=str(item["level"]),
        variant=str(item.get("variant", "")),
        message=str(item["message"]),
    )


class RootCause:
    def __init__(self, logs: LogSource, reader: MetricsReader, lookback: timedelta) -> None:
        self.logs = logs
        self.reader = reader
        self.lookback = lookback

    async def analyse(self, inp: RootCauseInput) -> RootCauseResult:
        incident = inp.incident
        since = (incident.started_at or datetime.now(UTC)) - self.lookback
        lines = await self.logs.lines(incident.deployment, since)
        names = list(self.reader.source.variants)
        metrics = {
            v: {
                k: x
                for k, x in (await self.reader.variant(incident.deployment, v, names)).items()
                if x is not None
            }
            for v in VARIANTS
        }
        ranked = hypotheses(metrics, lines)
        if not ranked:
            ranked = [
                Hypothesis(
                    text=f"no treatment-vs-control difference in the figures or logs read; start "
                    f"from the trigger: {incident.trigger_name}"
                    + (f" ({incident.reason})" if incident.reason else ""),
                    severity="low",
                    area="unknown",
                )
            ]
        errors = sum(line.level == "ERROR" for line in lines)
        return RootCauseResult(
            log_lines=len(lines),
            log_excerpt=excerpt(lines),
            metrics=metrics,
            hypotheses=[h.text for h in ranked],
            ranked=ranked,
            timeline=timeline(inp, lines),
            summary=f"{len(lines)} log lines ({errors} errors) since {since:%H:%M:%S} UTC; "
            f"{len(ranked)} hypothes{'is' if len(ranked) == 1 else 'es'}, first: {ranked[0].text}",
        )


def hypotheses(metrics: dict[str, dict[str, float]], lines: list[LogLine]) -> list[Hypothesis]:
    t, c = metrics.get("treatment", {}), metrics.get("control", {})

    def pair(name: str) -> tuple[float, float] | None:
        both = t.get(name), c.get(name)
        return (both[0], both[1]) if both[0] is not None and both[1] is not None else None

    found: list[Hypothesis] = []
    if (rates := pair("error_rate")) and rates[0] > rates[1]:
        te, ce = rates
        ratio = te / ce if ce > 0 else float("inf")
        if ratio >= ERROR_RATIO:
            times = f"{ratio:.0f}×" if ratio != float("inf") else "far above"
            found.append(
                Hypothesis(
                    text=f"treatment error rate {times} control ({te:.2%} vs {ce:.2%}): the "
                    "treatment fails requests",
                    severity="critical",
                    area="errors",
                )
            )
    if (latency := pair("p99_latency_seconds")) and latency[1] > 0:
        tl, cl = latency
        if tl / cl >= LATENCY_RATIO:
            found.append(
                Hypothesis(
                    text=f"treatment p99 latency {tl / cl:.1f}× control ({tl * 1000:.0f} ms vs "
                    f"{cl * 1000:.0f} ms): the treatment is slower",
                    severity="high",
                    area="latency",
                )
            )
    if (ndcg := pair("ndcg_at_10")) and ndcg[1] - ndcg[0] > QUALITY_DROP:
        tq, cq = ndcg
        found.append(
            Hypothesis(
                text=f"treatment nDCG@10 {tq:.4f} vs control {cq:.4f} (−{cq - tq:.4f}): the "
                "treatment ranks worse",
                severity="medium",
                area="quality",
            )
        )
    if (recall := pair("sla_recall_at_50")) and recall[1] - recall[0] > RECALL_DROP:
        found.append(
            Hypothesis(
                text=f"treatment SLA-Recall@50 {number(recall[0])} vs control "
                f"{number(recall[1])}: the treatment misses results within the SLA",
                severity="medium",
                area="quality",
            )
        )
    errors = Counter(
        re.sub(r"\d+(\.\d+)?", "N", line.message)
        for line in lines
        if line.level == "ERROR" and line.variant == "treatment"
    )
    if errors:
        pattern, count = errors.most_common(1)[0]
        found.append(
            Hypothesis(
                text=f"{sum(errors.values())} treatment ERROR lines in the logs, most often "
                f"“{pattern}” ({count}×)",
                severity="high" if not found else "low",
                area="logs",
            )
        )
    order = ["critical", "high", "medium", "low"]
    return sorted(found, key=lambda h: order.index(h.severity))


def excerpt(lines: list[LogLine]) -> list[str]:
    """The most telling lines: the first of each kind of error or warning, then the latest."""
    seen: set[str] = set()
    notable: list[LogLine] = []
    for line in lines:
        shape = re.sub(r"\d+", "N", f"{line.level} {line.message}")
        if line.level != "INFO" and shape not in seen and len(notable) < EXCERPT_LINES:
            seen.add(shape)
            notable.append(line)
    room = EXCERPT_LINES - len(notable)
    taken = {id(line) for line in notable}
    latest = [line for line in lines if id(line) not in taken][-room:] if room else []
    return [line.text() for line in sorted([*notable, *latest], key=lambda line: line.at)]


def timeline(inp: RootCauseInput, lines: list[LogLine]) -> list[str]:
    """The rollback's own events and the target's changes, in time order (errors once)."""
    events = [
        (e.at, f"{e.at:%H:%M:%S} rollback {e.kind}: {e.message}")
        for e in inp.incident.timeline
        if e.kind != "state"
    ]
    first_error = True
    for line in lines:
        if line.level == "ERROR":
            if not first_error:
                continue
            first_error = False
        events.append((line.at, f"{line.text()} (log)"))
    events.sort(key=lambda event: event[0])
    return [text for _, text in events[-TIMELINE_EVENTS:]]
