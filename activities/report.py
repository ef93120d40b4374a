"""The rollback report in the channel: a compact version of `rollback report`, posted once the
procedure has ended. The full report (history timeline included) stays one command away."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from activities.models import StepContext
from activities.notify import Notifier, prefix
from runbook.durations import format_duration
from runbook.policy import Policy
from runbook.report import RollbackReport, build_report
from runbook.status import RollbackStatus

MARKS = {"ok": "✅", "failed": "❌", "running": "⏳"}
RESULTS = {"pass": "✅", "fail": "❌", "pending": "⏳", "n/a": "➖"}


class ReportInput(BaseModel):
    ctx: StepContext
    status: RollbackStatus
    policy: Policy | None = None
    """The policy the rollback runs under, for names and targets."""


class ReportResult(BaseModel):
    posted: bool
    summary: str


async def post_report(notifier: Notifier, inp: ReportInput, *, key: str | None) -> ReportResult:
    """`key`: the same on every retry, so the channel sees the report once."""
    made = build_report(inp.status, generated_at=datetime.now(UTC), policy=inp.policy)
    title = f"{prefix(inp.ctx)}📄 {channel_title(made)}"
    more = f"`rollback report -d {made.deployment}`"
    await notifier.post_document(inp.ctx.channel, title, channel_body(made), key=key, more=more)
    failed = [t.name for t in made.response_times if t.result == "fail"]
    verdict = f"{len(failed)} target(s) missed" if failed else "every measured target met"
    return ReportResult(posted=True, summary=f"report posted to {inp.ctx.channel}: {verdict}")


def channel_title(r: RollbackReport) -> str:
    drill = " (drill)" if r.drill else ""
    return f"Rollback report: {r.deployment}{drill}: {r.outcome or r.state}"


def channel_body(r: RollbackReport) -> str:
    lines: list[str] = []
    if r.outcome == "incomplete":
        lines.append(f"⚠️ *Not confirmed:* {r.outcome_detail}")
    t = r.trigger
    if t.id is not None:
        phase = f" at {t.phase}%" if t.phase is not None else ""
        at = f" ({t.at:%H:%M:%S} UTC)" if t.at else ""
        reason = f": {t.reason}" if t.reason else ""
        lines.append(f"*Trigger:* {t.name}{phase}{at}{reason}")
    d = r.decision
    if d.decided_at is not None:
        who = ", ".join(d.decided_by_names) or "nobody"
        after = (
            f", {_secs(d.seconds_after_trigger)} after the trigger"
            if d.seconds_after_trigger is not None
            else ""
        )
        window = ""
        if d.window_seconds is not None:
            inside = {True: "within", False: "outside", None: "in"}[d.within_window]
            window = f", {inside} the {_span(d.window_seconds)} window"
            if d.default_applied:
                window += f" (default {d.default_action} applied)"
        lines.append(
            f"*Decision:* {d.mode or '-'} by {who} at {d.decided_at:%H:%M:%S} UTC{after}{window}"
        )
    if r.steps:
        lines.append("*Steps:*")
        lines += [
            f"{MARKS[s.outcome]} {s.name}: {_secs(s.duration_seconds)} of {_span(s.budget_seconds)}"
            + (" (late)" if s.late else "")
            for s in r.steps
        ]
    if r.response_times:
        lines.append("*Response times:*")
        lines += [
            f"{RESULTS[rt.result]} {rt.name}: {_secs(rt.seconds)} "
            + (
                f"(target < {_span(rt.target_seconds)})"
                if rt.plan_target_seconds is None
                else f"(target {_span(rt.target_seconds)}, the plan's "
                f"{_span(rt.plan_target_seconds)} extended: {rt.why})"
            )
            for rt in r.response_times
        ]
    follow = f"; follow-ups `{r.recovery.follow_ups_id}`" if r.recovery.follow_ups_id else ""
    lines.append(f"*Escalations:* {len(r.escalations)}{follow}")
    if r.root_cause is not None:
        m = r.root_cause.material
        top = m.ranked[0].text if m.ranked else (m.hypotheses[0] if m.hypotheses else None)
        if top:
            lines.append(f"*Leading hypothesis:* {top}")
    lines.append(f"Full report: `rollback report -d {r.deployment}`")
    return "\n".join(lines)


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _span(seconds: float) -> str:
    return format_duration(timedelta(seconds=seconds))
