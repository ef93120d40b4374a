"""The facts a stakeholder message is written from (runbook/wording.py names them), computed
from the incident, the impact verdicts and the figures before and after. Pure: no I/O.

Each fact is already worded for a reader: "0.040% of all queries", "1m 12s", "18:02 UTC". The
policy's templates choose which facts each audience hears.
"""

from __future__ import annotations

from datetime import timedelta

from activities.checks import number
from activities.models import IncidentSummary
from runbook.durations import format_duration, spoken
from runbook.wording import FACTS

MARKS = {"ok": "✅", "failed": "❌", "running": "⏳"}


def facts(
    incident: IncidentSummary,
    *,
    figures_now: dict[str, float | None] | None,
    impact: str,
    sla: str,
    affected_share: float | None,
    workflow_url: str,
) -> dict[str, str]:
    instants = incident.instants
    started = instants.get("trigger") or incident.started_at
    ended = instants.get("traffic_reverted")
    values = {
        "deployment": incident.deployment,
        "trigger": incident.trigger_name or incident.trigger,
        "phase": f"{incident.phase}%" if incident.phase is not None else "unknown-phase",
        "reason": incident.reason or "no reason given",
        "decided_by": decided_by(incident),
        "reversion": reversion(incident),
        "figures": figures(incident, figures_now),
        "steps": steps(incident),
        "links": (
            f"<{workflow_url}|Rollback in the Temporal Web UI> · "
            f"`rollback report -d {incident.deployment}`"
        ),
        "affected_share": f"{affected_share:.3%}" if affected_share is not None else "unmeasured",
        "duration": (spoken(ended - started) if started and ended else "not known yet"),
        "user_effect": incident.user_effect or "some searches behaved unexpectedly",
        "impact": impact,
        "sla": sla,
        "status": status(incident),
        "started": f"{started:%H:%M}" if started else "unknown",
        "ended": f"{ended:%H:%M}" if ended else "not yet",
    }
    assert set(values) == set(FACTS), "every fact is computed"
    return values


def decided_by(incident: IncidentSummary) -> str:
    names = incident.decided_by_names or incident.decided_by
    if not names or names == ["system"] or names == ["the system"]:
        return "automatically, by the plan"
    return "by " + " and ".join(names)


def reversion(incident: IncidentSummary) -> str:
    instants = incident.instants
    reverted = instants.get("traffic_reverted")
    if reverted is None:
        return "not yet confirmed"
    decided = instants.get("decision")
    trigger = instants.get("trigger")
    manual = incident.decided_by_names and incident.decided_by != ["system"]
    if manual and decided is not None:
        return f"{spoken(reverted - decided)} after the decision"
    if trigger is not None:
        return f"{spoken(reverted - trigger)} after the trigger"
    return "confirmed"


def figures(incident: IncidentSummary, now: dict[str, float | None] | None) -> str:
    """One line per metric: before (the reading at the trigger, else the alert's value) → now."""
    before: dict[str, float | None] = dict(incident.figures_before)
    known = set(before) | set(now or {})
    evidence = dict(incident.evidence)
    if "metric" in evidence and "value" in evidence:  # the canary watch's: the figure it judged
        evidence[evidence["metric"]] = evidence["value"]
    for key, value in evidence.items():
        name = key.removeprefix("value.")  # an alert's values; its labels are not figures
        if name in known and before.get(name) is None:
            before[name] = _float(value)
    names = sorted(set(before) | set(now or {}))
    if not names:
        return "• figures unavailable (the metrics could not be read)"
    lines = []
    for name in names:
        was = number(before.get(name)) if before.get(name) is not None else "unread"
        if now is None:
            is_ = "unread (metrics unavailable)"
        else:
            is_ = number(now.get(name)) if now.get(name) is not None else "unread"
        lines.append(f"• {name}: {was} → {is_}")
    return "\n".join(lines)


def steps(incident: IncidentSummary) -> str:
    if not incident.steps:
        return "• no step has run yet"
    lines = []
    for step in incident.steps:
        budget = format_duration(timedelta(seconds=step.budget_seconds))
        if step.ended_at is not None:
            took = spoken(step.ended_at - step.started_at)
            late = " (late)" if step.late else ""
            lines.append(f"{MARKS[step.outcome]} {step.name}: {took} of {budget}{late}")
        else:
            lines.append(f"⏳ {step.name}: running (budget {budget})")
    return "\n".join(lines)


def status(incident: IncidentSummary) -> str:
    if "traffic_reverted" not in incident.instants:
        return "traffic reversion still being confirmed"
    if "stabilized" in incident.instants:
        return "traffic is back on the previous version and stable; follow-ups are scheduled"
    return "traffic is back on the previous version; stability checks continue"


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None
