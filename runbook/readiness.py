"""Readiness before a canary, the plan's "Authority Confirmation": every role that decides (in
either matrix), raises a trigger or is on the escalation path has someone to reach, and no
contact is still a placeholder (`[Name TBD]`, `xxx-xxx-xxxx`). Pure: what needs the network
(Slack, the targets, PagerDuty) is checked in activities/preflight.py."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Literal

from pydantic import BaseModel

from runbook.matrix import all_resolutions
from runbook.policy import Policy

Area = Literal["authority", "tools", "escalation", "identity"]

PLACEHOLDER = re.compile(
    r"\[[^\]]*\]|<[^>]*>|\b(TBD|TBC|TODO|FIXME|changeme|placeholder|unknown)\b|x{3,}|\?{2,}",
    re.IGNORECASE,
)
"""`[Name TBD]`, `[Pager]`, `<name>`, `xxx-xxx-xxxx`, `U0XXXXXXX`, `???`."""
CONTACT_FIELDS = ("name", "slack_user_id", "phone", "pager")
"""Checked for placeholders; a Slack id that only looks real is caught by Slack's `users.info`
(activities/preflight.py)."""


class Check(BaseModel):
    """One line of `rollback preflight`."""

    id: str
    """Stable, for scripts: `authority.role.qa_dri`, `tools.load_balancer`, …"""
    area: Area
    name: str
    passed: bool
    detail: str
    fix: str = ""
    """What to do when it fails, in one sentence."""


def is_placeholder(value: str) -> bool:
    return PLACEHOLDER.search(value) is not None


def placeholder_name(policy: Policy, name: str) -> bool:
    """`[Name TBD]`, or a role where a person's name goes ("QA DRI", "Sprint DRI (Backend)")."""
    lowered = name.strip().lower()
    return is_placeholder(name) or any(
        lowered.startswith(role.lower()) for role in policy.roles.values()
    )


def roles_needed(policy: Policy) -> dict[str, list[str]]:
    """Every role someone must hold, with why: the cells it decides or is accountable for, the
    triggers it raises, its escalation stage."""
    why: dict[str, list[str]] = defaultdict(list)
    for res in all_resolutions(policy):
        for role_set in res.approvers if res.mode == "manual" else res.accountable:
            for role in role_set:
                verb = "raises" if res.decided_by_initiator else "decides"
                verb = verb if res.mode == "manual" else "is accountable for"
                why[role].append(f"{verb} {res.trigger} at {res.phase}%")
    # Rows no trigger uses (business_impact: it approves the customer message) count too.
    used = {trigger.authority for trigger in policy.triggers.values()}
    for authority, row in policy.authority_matrix.items():
        for phase, cell in row.items():
            for role_set in [] if authority in used or cell == "system" else cell:
                for role in role_set:
                    why[role].append(f"approves {authority} at {phase}%")
    for stage, role in enumerate(policy.escalation_path, start=1):
        why[role].append(f"escalation stage {stage}")
    return {role: _shortened(reasons) for role, reasons in why.items()}


def authority_checks(policy: Policy) -> list[Check]:
    """A role check per role needed, then a contact check per person of the roster."""
    checks = [_role_check(policy, role, why) for role, why in roles_needed(policy).items()]
    checks += [_contact_check(policy, person) for person in policy.people]
    if not policy.escalation_path:
        checks.append(
            Check(
                id="escalation.path",
                area="escalation",
                name="Escalation path",
                passed=False,
                detail="escalation_path is empty: a step that misses its budget reaches nobody",
                fix="list the plan's escalation roles in escalation_path (e.g. sre_oncall, "
                "engineering_manager, vp_engineering)",
            )
        )
    return checks


def _role_check(policy: Policy, role: str, why: list[str]) -> Check:
    holders = policy.people_with_role(role)
    real = [
        p
        for p in holders
        if p in policy.people
        and not placeholder_name(policy, policy.people[p].name)
        and not is_placeholder(policy.people[p].slack_user_id)
    ]
    name = f"{policy.role_name(role)} ({role})"
    needed = "; ".join(why)
    if real:
        people = ", ".join(
            f"{policy.people[p].name} <@{policy.people[p].slack_user_id}>" for p in real
        )
        return Check(
            id=f"authority.role.{role}",
            area="authority",
            name=name,
            passed=True,
            detail=f"{people} ({needed})",
        )
    detail = (
        f"nobody holds it ({needed})"
        if not holders
        else f"only placeholder contacts hold it: {', '.join(holders)} ({needed})"
    )
    return Check(
        id=f"authority.role.{role}",
        area="authority",
        name=name,
        passed=False,
        detail=detail,
        fix=f"add a person with their real name and Slack user id to people, and their id to "
        f"roster.{role}",
    )


def _contact_check(policy: Policy, person_id: str) -> Check:
    person = policy.people[person_id]
    roles = sorted(policy.roles_of(person_id))
    found = [
        f"{field} {value!r}"
        for field in CONTACT_FIELDS
        if isinstance(value := getattr(person, field, None), str)
        and (placeholder_name(policy, value) if field == "name" else is_placeholder(value))
    ]
    held = f" ({', '.join(policy.role_name(r) for r in roles)})" if roles else " (no role)"
    if not found:
        return Check(
            id=f"authority.contact.{person_id}",
            area="authority",
            name=f"Contact {person_id}",
            passed=True,
            detail=f"{person.name}{held}: no placeholders",
        )
    fields = ", ".join(f"people.{person_id}.{f.split()[0]}" for f in found)
    return Check(
        id=f"authority.contact.{person_id}",
        area="authority",
        name=f"Contact {person_id}",
        passed=False,
        detail=f"{person.name}{held}: placeholder {', '.join(found)}",
        fix=f"fill in {fields} with the real contact (or remove the field)",
    )


def _shortened(reasons: list[str], keep: int = 4) -> list[str]:
    unique = list(dict.fromkeys(reasons))
    if len(unique) <= keep:
        return unique
    return [*unique[:keep], f"and {len(unique) - keep} more"]


def identity_checks(policy: Policy) -> list[Check]:
    """Under `identity.cli: signed`: every person who decides, raises, approves or acknowledges
    something has a signing key, and the gateway's key is in the policy (else a Slack act cannot
    be proven). Under `asserted`, one line says that nobody's identity is proven."""
    if not policy.signed():
        return [
            Check(
                id="identity.mode",
                area="identity",
                name="Who acted, proven",
                passed=policy.identity is not None,
                detail="identity.cli is asserted: `--as` is taken as said (demo and tests only)"
                if policy.identity is not None
                else "the policy has no identity section: every act is asserted",
                fix="set identity.cli: signed and list each person's signing_keys",
            )
        ]
    assert policy.identity is not None
    people = sorted({p for role in roles_needed(policy) for p in policy.people_with_role(role)})
    checks = []
    for person in people:
        keys = policy.people[person].signing_keys
        checks.append(
            Check(
                id=f"identity.key.{person}",
                area="identity",
                name=f"{policy.people[person].name}: signing key",
                passed=bool(keys),
                detail=f"{len(keys)} key(s)"
                if keys
                else "no signing key: their acts from the CLI would be refused",
                fix=f"add their ~/.ssh/id_ed25519.pub line to people.{person}.signing_keys",
            )
        )
    gateway = policy.identity.gateway_keys
    checks.append(
        Check(
            id="identity.gateway_keys",
            area="identity",
            name="The gateway's key in the policy",
            passed=bool(gateway),
            detail=f"{len(gateway)} key(s)"
            if gateway
            else "identity.gateway_keys is empty: no Slack decision can be proven",
            fix="add the public half of ROLLBACK_GATEWAY_SIGNING_KEY to identity.gateway_keys "
            "(`ssh-keygen -y -f KEY`)",
        )
    )
    return checks
