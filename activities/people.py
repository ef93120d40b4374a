"""Step 5, Stakeholder Notification: who hears about the rollback, decided from measurements."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.exceptions import ApplicationError

from activities import audience_facts
from activities.checks import number
from activities.metrics import MetricsReader, Period
from activities.models import (
    AudienceResult,
    IncidentSummary,
    StakeholderNotificationInput,
    StakeholderNotificationResult,
)
from activities.notify import Notifier, prefix
from runbook.durations import format_duration, spoken
from runbook.policy import Audience, Impact
from runbook.wording import named_facts, render

STEP = "stakeholder_notification"
AFFECTED_SHARE = "affected_share"


@dataclass(frozen=True)
class Verdict:
    occurred: bool | None
    """None: it could not be measured."""
    why: str
    share: float | None = None
    """The share of all queries affected, where that is what was measured."""
    inputs: str = ""
    """What the share was measured from (its period, its metric or the estimate's terms)."""


MAX_LOOKBACK = timedelta(hours=6)
"""The rollback period starts at most this long before the trigger (an alert firing for days
says nothing about this canary's hours)."""


def rollback_period(incident: IncidentSummary, now: datetime) -> tuple[Period, str]:
    """The plan's "rollback period": from the breach start (else the trigger) to the traffic
    reversion (to now while it is not confirmed); with the period said in words, naming which
    ends were known ("12:34:05 (breach) to 12:41:10 UTC (reversion), 7m 5s")."""
    instants = incident.instants
    trigger = instants.get("trigger") or incident.started_at
    breach = instants.get("breach")
    start, began = (breach, "breach") if breach else (trigger, "trigger")
    if start is None:
        start, began = now, "now"
    elif trigger is not None and start < trigger - MAX_LOOKBACK:
        start, began = trigger - MAX_LOOKBACK, f"{format_duration(MAX_LOOKBACK)} before the trigger"
    reverted = instants.get("traffic_reverted")
    end, ended = (reverted, "reversion") if reverted else (now, "now, not reverted yet")
    period = Period(start=min(start, end), end=end)
    words = (
        f"{period.start:%H:%M:%S} ({began}) to {period.end:%H:%M:%S} UTC ({ended}), "
        f"{spoken(period.end - period.start)}"
    )
    return period, words


async def business_impact(
    reader: MetricsReader, incident: IncidentSummary, impact: Impact
) -> Verdict:
    """The share of all queries affected over the rollback period (breach start to reversion):
    the policy's `affected_share` metric over the period (Prometheus: evaluated at the
    reversion over `{period}`), or estimated as the treatment's error rate times its share of
    traffic. The verdict names its inputs (`inputs`), apart from its short `why`."""
    limit = impact.business_impact_affected_share
    period, span = rollback_period(incident, datetime.now(UTC))
    if reader.defines(AFFECTED_SHARE):
        read = await reader.read(incident.deployment, [AFFECTED_SHARE], period=period)
        share = read.values[AFFECTED_SHARE]
        inputs = f"the policy's affected_share over {span}"
    else:
        rate = (await reader.variant(incident.deployment, "treatment", ["error_rate"])).get(
            "error_rate"
        )
        phase = incident.phase if incident.phase is not None else 100
        share = None if rate is None else rate * phase / 100
        inputs = (
            f"estimated: the treatment error rate as read now, {number(rate)}, × {phase}% of "
            f"traffic, for {span}"
        )
    if share is None:
        return Verdict(None, "business impact could not be measured")
    occurred = share > limit
    said = f"{share:.3%} of queries affected, {'>' if occurred else '<='} {limit:.2%}"
    return Verdict(occurred, said, share, inputs)


async def sla_breach(reader: MetricsReader, incident: IncidentSummary, impact: Impact) -> Verdict:
    """The SLA metric of the treatment (what users on the canary got), else of all traffic."""
    name = impact.sla_breach_metric
    value = (await reader.variant(incident.deployment, "treatment", [name])).get(name)
    if value is None and reader.defines(name):
        value = (await reader.read(incident.deployment, [name])).values[name]
    if value is None:
        return Verdict(None, f"{name} could not be measured")
    breached = value < impact.sla_breach_below
    return Verdict(
        breached, f"{name} {number(value)} {'<' if breached else '>='} {impact.sla_breach_below:g}"
    )


class Stakeholders:
    def __init__(
        self,
        notifier: Notifier,
        reader: MetricsReader,
        ui_url: str = "http://127.0.0.1:8233",
        namespace: str = "default",
    ) -> None:
        self.notifier = notifier
        self.reader = reader
        self.ui_url = ui_url.rstrip("/")
        self.namespace = namespace

    async def notify(self, inp: StakeholderNotificationInput) -> StakeholderNotificationResult:
        impact = inp.notifications.impact
        verdicts = {
            "always": Verdict(True, "always told"),
            "business_impact": await measured(
                "business impact", business_impact(self.reader, inp.incident, impact)
            ),
            "sla_breach": await measured(
                "SLA breach", sla_breach(self.reader, inp.incident, impact)
            ),
        }
        figures = await self._figures(inp.incident.deployment)
        workflow = inp.ctx.rollback_id.split("/")[0]
        told = audience_facts.facts(
            inp.incident,
            figures_now=figures,
            impact=_said(verdicts["business_impact"], "yes", "none"),
            sla=_said(verdicts["sla_breach"], "breached", "held"),
            affected_share=verdicts["business_impact"].share,
            workflow_url=f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow}",
        )
        results: list[AudienceResult] = []
        retry: Exception | None = None
        under_way = bool(inp.incident.unconfirmed)  # not "rolled back" yet: say what is done
        for audience in inp.notifications.audiences:
            verdict = verdicts[audience.when]
            result = AudienceResult(
                audience=audience.id, channel=audience.channel, sent=False, reason=""
            )
            results.append(result)
            if verdict.occurred is False:
                result.reason = f"not sent: no {audience.when.replace('_', ' ')} ({verdict.why})"
                continue
            key = f"{inp.ctx.rollback_id}/{STEP}/{audience.id}"
            if under_way and audience.approval is not None:
                result.reason = (
                    "waits: its wording is asked for once every Phase 1 action is confirmed"
                )
                continue
            unknown = missing_facts(audience, told)
            if audience.approval is not None and unknown:
                # Approved words go outside: never the engine's engineering summary instead.
                result.reason = f"waits: its template needs {', '.join(unknown)}, not known yet"
                continue
            if under_way:
                text = f"{prefix(inp.ctx)}{audience_facts.interim(inp.incident, told)}"
                key, result.interim = f"{key}/interim", True
            else:
                text = message(inp, audience, verdict, told)
            if audience.approval is not None:
                authority = audience.approval.replace("_", " ")
                result.reason = f"held: wording needs approval by the {authority} authority"
                result.held_for_approval, result.wording = True, text
                continue
            try:
                await self.notifier.post(audience.channel, text, key=key)
            except ApplicationError as error:
                if not error.non_retryable:
                    retry = error
                result.reason = f"failed: {error}"
                continue
            except Exception as error:  # a notifier's own failure: retry the step
                retry = error
                result.reason = f"failed: {error}"
                continue
            result.sent, result.sent_at = True, datetime.now(UTC)
            sure = "" if verdict.occurred else " (unmeasured, so told)"
            told_what = "sent what is done and still being done" if under_way else "sent"
            how = f" ({verdict.inputs})" if verdict.inputs else ""
            result.reason = f"{told_what}: {verdict.why}{how}{sure}"
        if retry is not None:
            raise retry  # the audiences already told are not told twice (same keys)
        sent = [r.sent_at for r in results if r.sent_at is not None]
        return StakeholderNotificationResult(
            affected_share=verdicts["business_impact"].share,
            affected_how=verdicts["business_impact"].inputs,
            audiences=results,
            first_sent_at=min(sent) if sent else None,
            summary=summary(inp, results),
        )

    async def figures_now(self, deployment: str) -> dict[str, float | None]:
        """Every metric the policy names (the share of queries affected is its own fact)."""
        names = [n for n in self.reader.source.metrics if n != AFFECTED_SHARE]
        return (await self.reader.read(deployment, names)).values

    async def _figures(self, deployment: str) -> dict[str, float | None] | None:
        """The figures now; None when the metrics cannot be read (the message says so and
        still goes out)."""
        try:
            return await self.figures_now(deployment)
        except ApplicationError as error:
            if error.type == "PolicyIncomplete":
                raise
            return None


async def measured(what: str, verdict: Awaitable[Verdict]) -> Verdict:
    """A verdict that needs metrics; unmeasured (so the audience is told) when they are down."""
    try:
        return await verdict
    except ApplicationError as error:
        if error.type == "PolicyIncomplete":
            raise
        return Verdict(None, f"{what} could not be measured (metrics unavailable: {error.message})")


def missing_facts(audience: Audience, told: dict[str, str | None]) -> list[str]:
    """The facts the audience's template names that are not known yet."""
    if not audience.template:
        return []
    return sorted(f for f in named_facts(audience.template) if told.get(f) is None)


def message(
    inp: StakeholderNotificationInput,
    audience: Audience,
    verdict: Verdict,
    told: dict[str, str | None],
) -> str:
    """The audience's template with the facts, or the engine's plain summary of them (no
    template, or one naming a fact not known yet); Slack mrkdwn."""
    rendered = render(audience.template, told) if audience.template else None
    body = rendered if rendered is not None else audience_facts.plain(told)
    generic = audience.when != "always" and audience.template is None
    why = f"\n_Why you: {verdict.why}._" if generic else ""
    return f"{prefix(inp.ctx)}{body}{why}"


def _said(verdict: Verdict, yes: str, no: str) -> str:
    """ "none (0.040% of queries failed, <= 0.10%)", "yes (…)", "unmeasured (…)"."""
    if verdict.occurred is None:
        return f"unmeasured ({verdict.why})"
    return f"{yes if verdict.occurred else no} ({verdict.why})"


def summary(inp: StakeholderNotificationInput, results: list[AudienceResult]) -> str:
    names = {a.id: a.name for a in inp.notifications.audiences}
    sent = [f"{names[r.audience]} ({r.channel})" for r in results if r.sent]
    other = [f"{names[r.audience]}: {r.reason}" for r in results if not r.sent]
    head = f"sent to {', '.join(sent)}" if sent else "nobody told"
    return "; ".join([head, *other])
