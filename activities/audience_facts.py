"""The facts a stakeholder message is written from (runbook/wording.py names them), computed
from the incident, the impact verdicts and the figures before and after. Pure: no I/O.

Each fact is already worded for a reader: "0.040% of all queries", "1m 12s", "18:02 UTC". The
policy's templates choose which facts each audience hears. A fact not known yet is None (never
"not yet" inside a sentence): `plain` and `interim` word a message from the facts there are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

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
) -> dict[str, str | None]:
    instants = incident.instants
    started = impact_start(incident)
    ended = instants.get("traffic_reverted")
    values: dict[str, str | None] = {
        "deployment": incident.deployment,
        "trigger": incident.trigger_name or incident.trigger,
        "phase": f"{incident.phase}%" if incident.phase is not None else None,
        "reason": incident.reason or "no reason given",
        "decided_by": decided_by(incident),
        "reversion": reversion(incident),
        "figures": figures(incident, figures_now),
        "steps": steps(incident),
        "links": (
            f"<{workflow_url}|Rollback in the Temporal Web UI> · "
            f"`rollback report -d {incident.deployment}`"
        ),
        "affected_share": f"{affected_share:.3%}" if affected_share is not None else None,
        "duration": spoken(ended - started) if started and ended else None,
        "user_effect": incident.user_effect or "some searches behaved unexpectedly",
        "impact": impact,
        "sla": sla,
        "status": status(incident),
        "started": f"{started:%H:%M}" if started else None,
        "ended": f"{ended:%H:%M}" if ended else None,
    }
    assert set(values) == set(FACTS), "every fact is computed"
    return values


def impact_start(incident: IncidentSummary) -> datetime | None:
    """Where the users' impact began: the breach (an alert's startsAt, the watch's first
    breaching reading), else the trigger."""
    instants = incident.instants
    return instants.get("breach") or instants.get("trigger") or incident.started_at


def plain(told: Mapping[str, str | None]) -> str:
    """The engine's own words for a confirmed rollback, from the facts there are (an
    audience's template that names a fact not known yet falls back to this)."""
    at = f" at {told['phase']}" if told.get("phase") else ""
    lines = [f"*Rollback of {told['deployment']}* ({told['trigger']}{at}): {told['reason']}"]
    reverted = f"; traffic reverted {told['reversion']}" if told.get("reversion") else ""
    lines.append(f"Decided {told['decided_by']}{reverted}.")
    if told.get("affected_share"):
        span = f", for {told['duration']}" if told.get("duration") else ""
        when = (
            f" ({told['started']} to {told['ended']} UTC)"
            if told.get("started") and told.get("ended")
            else ""
        )
        lines.append(f"Affected: {told['affected_share']} of all queries{span}{when}.")
    lines.append(f"Business impact: {told['impact']}. SLA: {told['sla']}.")
    lines.append(f"Now: {told['status']}. {told['links']}")
    return "\n".join(lines)


def interim(incident: IncidentSummary, told: Mapping[str, str | None]) -> str:
    """While a Phase 1 action is not confirmed: what is done and what is still being done,
    nothing more (not "rolled back", not "back to normal")."""
    at = f" at {told['phase']}" if told.get("phase") else ""
    done = ", ".join(incident.confirmed) or "nothing confirmed yet"
    pending = ", ".join(a for a in incident.unconfirmed or [] if a not in incident.failed)
    failed = ", ".join(incident.failed)
    reverted = incident.instants.get("traffic_reverted")
    traffic = (
        f"Traffic is back on the previous version since {reverted:%H:%M} UTC."
        if reverted is not None
        else "Traffic is not yet confirmed back on the previous version."
    )
    lines = [
        f"*{told['deployment']}: rollback under way* ({told['trigger']}{at}): {told['reason']}",
        f"Decided {told['decided_by']}.",
        f"Done: {done}.",
    ]
    if pending:
        lines.append(f"Still being done: {pending}.")
    if failed:
        lines.append(f"Failed, in the on-call's hands: {failed}.")
    lines += [traffic, f"You will hear here once every action is confirmed. {told['links']}"]
    return "\n".join(lines)


def decided_by(incident: IncidentSummary) -> str:
    names = incident.decided_by_names or incident.decided_by
    if not names or names == ["system"] or names == ["the system"]:
        return "automatically, by the plan"
    return "by " + " and ".join(names)


def reversion(incident: IncidentSummary) -> str | None:
    instants = incident.instants
    reverted = instants.get("traffic_reverted")
    if reverted is None:
        return None
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
