"""Step 7, Recovery Planning: a Markdown plan from the root cause analysis, with owners."""

from __future__ import annotations

from activities.models import Hypothesis, RecoveryPlanInput, RoleHolders
from activities.notify import holders_text


def owner_of(owners: list[RoleHolders]) -> str:
    """The plan's owner: the first person of the first role listed (the policy's order)."""
    for holder in owners:
        if holder.people:
            name = holder.people[0].name
            return name if holder.role_name in name else f"{name} ({holder.role_name})"
    return "unassigned"


def issues(inp: RecoveryPlanInput) -> list[Hypothesis]:
    rca = inp.root_cause
    if rca is None:
        return [
            Hypothesis(
                text="root cause analysis did not complete: gather logs and metrics by hand",
                severity="high",
                area="unknown",
            )
        ]
    ranked = list(rca.ranked) or [
        Hypothesis(text=h, severity="medium", area="unknown") for h in rca.hypotheses
    ]
    return ranked or [
        Hypothesis(
            text="no hypothesis from the root cause analysis: investigate from the trigger",
            severity="medium",
            area="unknown",
        )
    ]


def plan(inp: RecoveryPlanInput) -> str:
    incident = inp.incident
    owner = owner_of(inp.owners)
    ranked = issues(inp)
    phase = f" at {incident.phase}%" if incident.phase is not None else ""
    drill = " (drill)" if incident.drill else ""
    lines = [
        f"# Recovery plan: {incident.deployment}{drill}",
        "",
        f"Rolled back after **{incident.trigger_name or incident.trigger}**{phase}"
        + (f": {incident.reason}" if incident.reason else "")
        + f". Decided by {', '.join(incident.decided_by) or 'nobody'}. Plan owner: {owner}.",
        "",
        "## Issues by severity",
        "",
    ]
    lines += [
        f"{i}. **{h.severity}** ({h.area}): {h.text}. Owner: {owner}."
        for i, h in enumerate(ranked, 1)
    ]
    lines += [
        "",
        "## Fix development",
        "",
        *(f"- [ ] Fix and verify ({h.severity}): {h.text}; owner: {owner}" for h in ranked),
        "- [ ] Detailed RCA with timeline, within 24 hours of the rollback",
        "",
        "## Testing strategy",
        "",
        "- [ ] Reproduce each issue in staging against the canary build before any fix ships",
        "- [ ] Re-deploy through the 5 % canary with the triggers above as alert rules, and a "
        "rollback drill before widening",
        "- [ ] Watch the figures that failed here for the whole of each canary phase",
        "",
        "## Risk assessment",
        "",
        f"- Remaining risk: {len(ranked)} open issue(s), the most severe "
        f"**{ranked[0].severity}**; the canary stays off until they are fixed and tested.",
        "- Sprint timeline: re-plan the sprint goals at the 1-week review if the fix "
        "does not land within the sprint.",
        "",
        "## Owners",
        "",
        *(f"- {line}" for line in holders_text(inp.owners).split("; ")),
    ]
    return "\n".join(lines)


def summary(inp: RecoveryPlanInput) -> str:
    ranked = issues(inp)
    return (
        f"recovery plan with {len(ranked)} issue(s), most severe {ranked[0].severity}: "
        f"{ranked[0].text}; owner {owner_of(inp.owners)}; posted to {inp.ctx.channel}"
    )
