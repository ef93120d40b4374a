"""Who holds which role, in the form the messages need (names and Slack ids)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.models import PersonRef, RoleHolders
    from runbook.policy import Policy


def role_holders(policy: Policy, roles: list[str]) -> list[RoleHolders]:
    return [
        RoleHolders(
            role=role,
            role_name=policy.role_name(role),
            people=[
                PersonRef(
                    id=p, name=policy.people[p].name, slack_user_id=policy.people[p].slack_user_id
                )
                for p in policy.people_with_role(role)
            ],
        )
        for role in roles
    ]


def people_refs(policy: Policy, people: list[str]) -> list[PersonRef]:
    """Roster people by id, for mentions ("system" and unknown ids are left out)."""
    return [
        PersonRef(id=p, name=policy.people[p].name, slack_user_id=policy.people[p].slack_user_id)
        for p in people
        if p in policy.people
    ]
