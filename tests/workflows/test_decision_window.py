"""The decision window's rules, without a server: open, merge, extend, vote, expire, close, and
deadlines judged by the instant a decision was made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contract.rollback import RollbackInput
from runbook.matrix import resolve
from runbook.policy import Policy
from workflows.decision_window import DecisionWindow
from workflows.rollback_record import fresh_status

T0 = datetime(2026, 12, 1, 19, 21, 53, tzinfo=UTC)


def window(policy: Policy, trigger: str = "gate_failure", phase: int = 25) -> DecisionWindow:
    status = fresh_status(RollbackInput(deployment="search-a", policy=policy))
    w = DecisionWindow(policy, lambda p: p or "nobody", status)
    w.open(trigger, T0, resolve(policy, trigger, phase))
    return w


def test_a_vote_made_before_the_deadline_counts_even_when_seen_after_it(policy: Policy) -> None:
    w = window(policy)  # 2 minutes, the Sprint DRI decides
    deadline = T0 + timedelta(minutes=2)
    vote = w.vote(
        "dri-backend",
        "deny",
        "slack",
        deadline - timedelta(seconds=1),
        deadline + timedelta(minutes=9),
    )
    assert vote.accepted, vote.message
    assert w.verdict is not None and w.verdict.action == "deny"
    assert w.verdict.at == deadline - timedelta(seconds=1)
    assert w.expire(deadline + timedelta(minutes=9)) is None  # decided: the default never applies


@pytest.mark.parametrize("after", [timedelta(0), timedelta(seconds=5)])
def test_a_vote_made_at_or_after_the_deadline_is_refused_and_the_default_applies(
    policy: Policy, after: timedelta
) -> None:
    w = window(policy)
    deadline = T0 + timedelta(minutes=2)
    vote = w.vote("dri-backend", "deny", "slack", deadline + after, deadline + timedelta(minutes=1))
    assert not vote.accepted
    assert vote.message == (
        f"made at {deadline + after:%H:%M:%S} UTC, the window closed at 19:23:53 UTC; "
        "the default, rollback, applied"
    )
    assert w.verdict is not None and w.verdict.by_default and w.verdict.action == "rollback"
    assert w.verdict.at == deadline
    kinds = [kind for kind, _, _ in vote.notes]
    assert kinds == ["window_expired", "decision_rejected"]


def test_a_later_vote_after_the_default_says_the_window_closed(policy: Policy) -> None:
    w = window(policy)
    deadline = T0 + timedelta(minutes=2)
    assert w.expire(deadline) is not None
    w.close("no decision in time: default applied, rollback", deadline)
    vote = w.vote(
        "dri-backend",
        "approve",
        "cli",
        deadline + timedelta(seconds=11),
        deadline + timedelta(seconds=11),
    )
    assert not vote.accepted
    assert "the window closed at 19:23:53 UTC; the default, rollback, applied" in vote.message


def test_the_expired_window_says_no_decision_and_the_default(policy: Policy) -> None:
    w = window(policy)
    assert w.expire(T0 + timedelta(minutes=2) - timedelta(microseconds=1)) is None
    note = w.expire(T0 + timedelta(minutes=2))
    assert note == (
        "window_expired",
        "no decision by 19:23:53 UTC — default applied: rollback",
        None,
    )


def test_authority_is_checked_before_anything_else(policy: Policy) -> None:
    w = window(policy)
    qa = w.vote("qa-dri", "approve", "slack", T0, T0)
    assert not qa.accepted
    assert qa.message == "QA DRI may not decide: this decision needs Sprint DRI"
    stranger = w.vote("mallory", "approve", "slack", T0, T0)
    assert stranger.message == "'mallory' is not in the roster"
    assert w.current is not None and w.current.votes == {}


def test_two_person_approval_needs_both_roles_and_two_people(policy: Policy) -> None:
    w = window(policy, "quality_regression", 50)  # QA DRI + Sprint DRI
    first = w.vote("qa-dri", "approve", "slack", T0, T0)
    assert first.accepted and w.verdict is None
    assert "waiting for Sprint DRI to approve as well" in first.message
    second = w.vote(
        "dri-search", "approve", "slack", T0 + timedelta(seconds=30), T0 + timedelta(seconds=31)
    )
    assert second.accepted and w.verdict is not None
    assert w.verdict.by == ["qa-dri", "dri-search"]
    assert w.verdict.at == T0 + timedelta(seconds=30)


def test_investigating_extends_from_when_it_was_said_never_past_the_cap(policy: Policy) -> None:
    w = window(policy, "quality_regression", 5)  # 10 min, +10 min, cap 30 min
    said = T0 + timedelta(minutes=9)
    assert w.vote("qa-dri", "investigating", "slack", said, said + timedelta(minutes=2)).accepted
    assert w.current is not None and w.current.deadline == said + timedelta(minutes=10)
    again = T0 + timedelta(minutes=18)
    assert w.vote("qa-dri", "investigating", "slack", again, again).accepted
    assert w.current.deadline == T0 + timedelta(minutes=28)
    last = T0 + timedelta(minutes=27)
    capped = w.vote("qa-dri", "investigating", "slack", last, last)
    assert capped.accepted and capped.message.endswith("deadline now 19:51:53 UTC (the cap)")
    assert w.current.deadline == T0 + timedelta(minutes=30)
    too_late = T0 + timedelta(minutes=30)
    assert not w.vote("qa-dri", "investigating", "slack", too_late, too_late).accepted


def test_merge_takes_the_stricter_terms_and_a_repeat_changes_nothing(policy: Policy) -> None:
    w = window(policy, "quality_regression", 5)  # 10 minutes
    assert (
        w.merge(
            "quality_regression",
            T0 + timedelta(seconds=5),
            resolve(policy, "quality_regression", 5),
        )
        is None
    )
    note = w.merge("gate_failure", T0 + timedelta(minutes=1), resolve(policy, "gate_failure", 5))
    assert note is not None and note[0] == "window_merged"
    assert w.current is not None
    assert w.current.deadline == T0 + timedelta(minutes=6)  # the gate's 5 minutes from its trigger
    assert w.current.extend_until is None  # no extension once a trigger without one joins
    assert w.current.triggers == ["quality_regression", "gate_failure"]


def test_close_keeps_the_last_window_with_how_it_ended(policy: Policy) -> None:
    w = window(policy)
    w.vote("dri-backend", "approve", "cli", T0, T0)
    note = w.close("rollback approved", T0)
    assert note == ("window_closed", "decision closed: rollback approved", None)
    assert w.current is None and w.last is not None
    assert (w.last.outcome, w.last.closed_at) == ("rollback approved", T0)
