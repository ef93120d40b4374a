"""The vote tally shared by decisions and wording approvals: who voted what, and whether the
votes for one answer complete one of the approver sets (two-person sets need two people)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from runbook.authority import completed_set, missing_roles
from runbook.policy import Policy, RoleSets

A = TypeVar("A", bound=str)


@dataclass(frozen=True)
class Tally(Generic[A]):
    action: A
    voters: list[str]
    """Everyone who voted `action`, in the order they voted."""
    complete: bool
    waiting: list[str]
    """Roles still needed for the closest set (empty once complete)."""

    def waiting_for(self, policy: Policy) -> str:
        return " + ".join(policy.role_name(r) for r in self.waiting)


def count(policy: Policy, votes: dict[str, A], approvers: RoleSets, action: A) -> Tally[A]:
    """The votes for `action` against the approver sets, under the policy's distinct-people rule."""
    voters = [person for person, vote in votes.items() if vote == action]
    distinct = policy.decisions.deciders_are_distinct_people
    done = completed_set(policy, voters, approvers, distinct) is not None
    waiting = [] if done else missing_roles(policy, voters, approvers, distinct)
    return Tally(action=action, voters=voters, complete=done, waiting=waiting)
