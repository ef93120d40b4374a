"""Who may decide, and when a set of votes completes a decision."""

from __future__ import annotations

from collections.abc import Mapping

from runbook.policy import Policy, RoleSets


def eligible_roles(role_sets: RoleSets) -> frozenset[str]:
    return frozenset(role for role_set in role_sets for role in role_set)


def may_decide(policy: Policy, person: str, role_sets: RoleSets) -> bool:
    return bool(policy.roles_of(person) & eligible_roles(role_sets))


def completed_set(
    policy: Policy, voters: list[str], role_sets: RoleSets, distinct_people: bool = True
) -> list[str] | None:
    """The first approver set whose every role is covered by the voters, or None.

    With `distinct_people`, each role must be covered by a different person: one person holding
    two roles cannot make a two-person decision alone.
    """
    roles_by_person: Mapping[str, frozenset[str]] = {p: policy.roles_of(p) for p in voters}
    for role_set in role_sets:
        if distinct_people:
            if _assign(list(role_set), roles_by_person, frozenset()):
                return list(role_set)
        elif all(any(role in roles for roles in roles_by_person.values()) for role in role_set):
            return list(role_set)
    return None


def missing_roles(
    policy: Policy, voters: list[str], role_sets: RoleSets, distinct_people: bool = True
) -> list[str]:
    """For the set closest to completion, the roles still to be covered (for status messages)."""
    if completed_set(policy, voters, role_sets, distinct_people) is not None:
        return []
    held = frozenset().union(*(policy.roles_of(p) for p in voters))
    candidates = []
    for role_set in role_sets:
        missing = [role for role in role_set if role not in held]
        # Every role is held, but by too few people: each still needs its own person.
        candidates.append(missing or list(role_set))
    return min(candidates, key=len, default=[])


def _assign(
    roles: list[str], roles_by_person: Mapping[str, frozenset[str]], used: frozenset[str]
) -> bool:
    if not roles:
        return True
    role, rest = roles[0], roles[1:]
    return any(
        _assign(rest, roles_by_person, used | {person})
        for person, held in roles_by_person.items()
        if person not in used and role in held
    )
