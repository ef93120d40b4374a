"""The activity class: every activity the workflows call, settings, owned clients."""

from __future__ import annotations

import httpx
import pytest
from temporalio import activity

from activities.procedure import RollbackActivities
from config.settings import Settings
from runbook.policy import Policy
from workflows.follow_ups import FollowUpsWorkflow  # noqa: F401  (its activity references resolve)
from workflows.rollback import RollbackWorkflow  # noqa: F401

CALLED_BY_WORKFLOWS = {
    "read_traffic_split",
    "read_canary",
    "set_traffic_split",
    "stop_service",
    "set_config_value",
    "disable_flag",
    "flush_cache",
    "health_validation",
    "deep_health_validation",
    "stakeholder_notification",
    "send_audience",
    "request_comms_approval",
    "post_report",
    "root_cause_analysis",
    "recovery_planning",
    "request_decision",
    "close_decision",
    "read_figures",
    "update_decision",
    "tell_accountable",
    "post_progress",
    "escalate",
    "page",
    "check_baseline",
    "follow_up_notice",
}


async def test_every_activity_is_registered_bound() -> None:
    acts = RollbackActivities(Settings(_env_file=None))  # type: ignore[call-arg]
    try:
        methods = acts.activities()
        names = {activity._Definition.must_from_callable(m).name for m in methods}
        assert names == CALLED_BY_WORKFLOWS
        assert all(getattr(m, "__self__", None) in (acts, acts.actions) for m in methods)
    finally:
        await acts.aclose()


def test_the_simulator_is_the_default_target() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.target_url == "http://127.0.0.1:8100"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert (settings.config_cache_db, settings.http_timeout) == (1, 2.0)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROLLBACK_LB_URL", "https://lb.internal")
    monkeypatch.setenv("ROLLBACK_CONFIG_CACHE_DB", "7")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.lb_url, settings.config_cache_db) == ("https://lb.internal", 7)


async def test_a_given_client_is_left_open() -> None:
    async with httpx.AsyncClient() as http:
        acts = RollbackActivities(Settings(_env_file=None), http=http)  # type: ignore[call-arg]
        await acts.aclose()
        assert not http.is_closed


def test_a_policy_without_targets_is_refused(policy: Policy) -> None:
    bare = policy.model_copy(update={"targets": None})
    with pytest.raises(ValueError, match="the policy has no targets section"):
        RollbackActivities(Settings(_env_file=None), policy=bare)  # type: ignore[call-arg]
