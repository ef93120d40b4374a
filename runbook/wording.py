"""The words of a stakeholder message: the facts an audience's template (in the policy) may
use, and rendering them. Pure: the activity computes the facts, the policy says the words.

A template is a text with `{fact}` placeholders, written in Slack's mrkdwn (`*bold*`,
`_italic_`); `{{` and `}}` stand for braces. An unknown fact is refused when the policy is read;
a fact not known yet (traffic not reverted, a share not measured) makes the engine word the
message itself from the facts it has.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from types import MappingProxyType

FACTS: Mapping[str, str] = MappingProxyType(
    {
        "deployment": "the deployment's name",
        "trigger": "the trigger's name, as the plan names it",
        "phase": "the canary phase, in percent",
        "reason": "the alert's summary, or the person's words",
        "decided_by": "who decided, with their names (or: automatically, by the plan)",
        "reversion": "how long traffic reversion took, and from what (the trigger or the decision)",
        "figures": "each metric before (at the trigger) and after (now), one per line",
        "steps": "each step with its duration against its budget, one per line",
        "links": "the Web UI and `rollback report` for this rollback",
        "affected_share": "the share of all queries affected from the breach to the reversion",
        "duration": "how long users were exposed: from the breach start to the traffic reversion",
        "user_effect": "what users of the canary saw, in words (errors, slower answers, quality)",
        "impact": "whether business impact occurred, and the measure",
        "sla": "whether the SLA was breached, and the measure",
        "status": "where the rollback stands: traffic back, stabilized, follow-ups",
        "started": "when the breach began (UTC, to the minute; else the trigger)",
        "ended": "when traffic was back on the previous version (UTC, to the minute)",
    }
)
"""Every fact an audience's template may name, with what it says."""


def unknown_facts(template: str) -> list[str]:
    """The placeholders of `template` that name no fact (or a malformed one)."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        return [f"malformed template: {error}"]
    return sorted({n for n in names if n not in FACTS})


def named_facts(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def render(template: str, facts: Mapping[str, str | None]) -> str | None:
    """The message, each placeholder replaced by its fact; None when the template names a fact
    not known yet (a sentence is never written around a missing value: the caller words it
    otherwise)."""
    if any(facts.get(name) is None for name in named_facts(template)):
        return None
    return template.format_map({name: facts.get(name) or "" for name in FACTS}).strip()
