"""The decision window: who may decide, until when, and what happens if nobody does.

A plain class with no Temporal in it, so every rule is tested without a server
(tests/workflows/test_decision_window.py). The workflow owns the durable timer; this class owns
the rules: open, merge, extend, vote, expire, close. Deadlines are law: a vote is judged by the
instant it was made, not when a worker got to it, and the default wins ties.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from runbook.authority import may_decide
from runbook.durations import format_duration
from runbook.matrix import Resolution, describe_role_sets
from runbook.policy import Policy
from runbook.status import DecisionAction, OpenDecision, RollbackStatus
from runbook.tally import count

Note = tuple[str, str, str | None]
"""(timeline kind, message, by)."""


@dataclass
class Verdict:
    action: Literal["rollback", "deny"]
    by: list[str]
    """Roster ids; ["default"] when the window expired."""
    at: datetime
    by_default: bool = False


@dataclass
class VoteOutcome:
    accepted: bool
    message: str
    notes: list[Note] = field(default_factory=list)


def at_clock(moment: datetime) -> str:
    return f"{moment:%H:%M:%S} UTC"


class DecisionWindow:
    def __init__(
        self, policy: Policy, name: Callable[[str | None], str], status: RollbackStatus
    ) -> None:
        self.policy = policy
        self.name = name
        self.status = status
        """The open window and the last closed one live in the rollback's status (its
        `decision` and `last_decision`): what the queries show and what a hand-over carries."""
        self.verdict: Verdict | None = None

    @property
    def current(self) -> OpenDecision | None:
        return self.status.decision

    @current.setter
    def current(self, decision: OpenDecision | None) -> None:
        self.status.decision = decision

    @property
    def last(self) -> OpenDecision | None:
        return self.status.last_decision

    @last.setter
    def last(self, decision: OpenDecision | None) -> None:
        self.status.last_decision = decision

    @property
    def is_open(self) -> bool:
        return self.current is not None and self.verdict is None

    def open(self, trigger: str, at: datetime, res: Resolution) -> Note:
        assert res.window is not None
        self.verdict = None
        self.current = OpenDecision(
            triggers=[trigger],
            phase=res.phase,
            opened_at=at,
            deadline=at + res.window,
            default_action=res.default_action,
            approvers=res.approvers,
            extend_by_seconds=res.extend_by.total_seconds() if res.extend_by else None,
            extend_until=at + res.extend_until if res.extend_until else None,
        )
        who = describe_role_sets(self.policy, res.approvers)
        return (
            "window_opened",
            f"decision window of {format_duration(res.window)} for {who}; "
            f"default at {at_clock(self.current.deadline)}: {res.default_action}",
            None,
        )

    def merge(self, trigger: str, at: datetime, res: Resolution) -> Note | None:
        """A second manual trigger during a window: the stricter terms of both apply. A repeat
        of a trigger already in the window changes nothing and is not noted."""
        decision = self.current
        assert decision is not None and res.window is not None
        before = decision.model_copy(deep=True)
        if trigger not in decision.triggers:
            decision.triggers.append(trigger)
        decision.deadline = min(decision.deadline, at + res.window)
        decision.approvers = decision.approvers + [
            s for s in res.approvers if s not in decision.approvers
        ]
        if res.default_action == "rollback":
            decision.default_action = "rollback"
        if res.extend_until is None or decision.extend_until is None:
            decision.extend_until = None
        else:
            decision.extend_until = min(decision.extend_until, at + res.extend_until)
        if decision == before:
            return None
        return (
            "window_merged",
            f"{trigger} joins the open decision; deadline now {at_clock(decision.deadline)}",
            None,
        )

    def vote(
        self,
        person: str,
        action: DecisionAction,
        via: str,
        made_at: datetime,
        now: datetime,
        proven: str = "asserted",
        reason: str = "",
    ) -> VoteOutcome:
        """One person's answer, made at `made_at` (never later than `now`, when it is seen);
        `proven`: how the engine knows it was them (a key, Slack, or only asserted)."""
        made = min(made_at, now)
        why = f": {reason}" if reason else ""
        label = f"{action} by {self.name(person)} via {via} [{proven}]{why}"

        def reject(reason: str) -> VoteOutcome:
            notes: list[Note] = [("decision_rejected", f"{label} rejected: {reason}", person)]
            return VoteOutcome(False, reason, notes)

        decision = self.current
        if decision is None or self.verdict is not None:
            return reject(self._closed_reason())
        if person not in self.policy.people:
            return reject(f"{person!r} is not in the roster")
        if not may_decide(self.policy, person, decision.approvers):
            return reject(self._not_allowed(person, decision))
        if made >= decision.deadline:
            expired = self.expire(now)
            outcome = reject(f"made at {at_clock(made)}, " + self._closed_reason())
            if expired is not None:
                outcome.notes.insert(0, expired)
            return outcome
        if action == "investigating":
            decision.proven[person] = proven
            if reason:
                decision.reasons[person] = reason
            return self._extend(decision, person, label, made)
        decision.votes[person] = action
        decision.proven[person] = proven
        if reason:
            decision.reasons[person] = reason
        tally = count(self.policy, decision.votes, decision.approvers, action)
        if not tally.complete:
            message = (
                f"{label} recorded; waiting for {tally.waiting_for(self.policy)} to {action} "
                "as well"
            )
            return VoteOutcome(True, message, [("decision_vote", message, person)])
        self.verdict = Verdict(
            action="rollback" if action == "approve" else "deny", by=tally.voters, at=made
        )
        verb = "approved rollback" if action == "approve" else "denied rollback"
        message = f"{' and '.join(self.name(p) for p in tally.voters)} {verb}"
        return VoteOutcome(
            True, message, [("decision", f"{message} (via {via})", ", ".join(tally.voters))]
        )

    def expire(self, now: datetime) -> Note | None:
        """The default, once the deadline has passed with no verdict."""
        decision = self.current
        if decision is None or self.verdict is not None or now < decision.deadline:
            return None
        default = decision.default_action
        self.verdict = Verdict(
            action="rollback" if default == "rollback" else "deny",
            by=["default"],
            at=decision.deadline,  # the window's end, not when the timer was seen
            by_default=True,
        )
        return (
            "window_expired",
            f"no decision by {at_clock(decision.deadline)} — default applied: {default}",
            None,
        )

    def close(self, outcome: str, at: datetime) -> Note | None:
        decision = self.current
        if decision is None:
            return None
        decision.closed_at, decision.outcome = at, outcome
        self.last, self.current = decision, None
        return ("window_closed", f"decision closed: {outcome}", None)

    def reset(self) -> None:
        """After a deny: the canary continues, and a later trigger opens a new window."""
        self.verdict = None

    # --- reasons ----------------------------------------------------------------------------

    def _closed_reason(self) -> str:
        decision = self.current or self.last
        if decision is None:
            return "no decision is open"
        if self.verdict is not None and self.verdict.by_default:
            return (
                f"the window closed at {at_clock(decision.deadline)}; the default, "
                f"{decision.default_action}, applied"
            )
        if self.verdict is not None:
            return f"the decision was already made by {', '.join(map(self.name, self.verdict.by))}"
        return f"no decision is open (the last one closed: {decision.outcome})"

    def _not_allowed(self, person: str, decision: OpenDecision) -> str:
        """ "QA DRI may not decide: this decision needs Sprint DRI" (a role named once)."""
        roles = [self.policy.role_name(r) for r in sorted(self.policy.roles_of(person))]
        name = self.policy.people[person].name
        needed = describe_role_sets(self.policy, decision.approvers)
        if not roles:
            return f"{name} holds no role; this decision needs {needed}"
        if not all(role in name for role in roles):
            name = f"{name} ({', '.join(roles)})"
        return f"{name} may not decide: this decision needs {needed}"

    def _extend(
        self, decision: OpenDecision, person: str, label: str, made: datetime
    ) -> VoteOutcome:
        if decision.extend_until is None or decision.extend_by_seconds is None:
            reason = (
                f"no investigation extension at {decision.phase}%: the window ends at "
                f"{at_clock(decision.deadline)}"
            )
            return VoteOutcome(False, reason, [("decision_rejected", f"{label}: {reason}", person)])
        wanted = made + timedelta(seconds=decision.extend_by_seconds)
        decision.deadline = min(max(decision.deadline, wanted), decision.extend_until)
        capped = " (the cap)" if decision.deadline == decision.extend_until else ""
        message = f"{label}: deadline now {at_clock(decision.deadline)}{capped}"
        return VoteOutcome(True, message, [("investigating", message, person)])
