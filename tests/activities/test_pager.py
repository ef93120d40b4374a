"""Paging over PagerDuty's Events API v2, against a stand-in that enforces the schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.models import PageInput, StepContext
from activities.pager import Pager
from tests.activities.pagerduty_standin import PagerDutyServer, PagerDutyStandIn

KEY = "a" * 32
CTX = StepContext(
    deployment="search-a", rollback_id="rollback-search-a/run-1", channel="#c", step_name="Esc"
)


@pytest.fixture
async def pagerduty() -> AsyncIterator[PagerDutyServer]:
    async with PagerDutyServer(PagerDutyStandIn()) as server:
        yield server


@pytest.fixture
async def pager(pagerduty: PagerDutyServer) -> AsyncIterator[Pager]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield Pager(http, pagerduty.url, "http://ui:8233")


def page(action: str = "trigger", **fields: object) -> PageInput:
    values: dict[str, object] = {
        "ctx": CTX,
        "action": action,
        "dedup_key": "rollback-search-a|budget:emergency_stop|20260302T100000",
        "routing_keys": {"sre-oncall": KEY},
        "summary": "[search-a] rollback escalation: Step 1 missed its budget",
        "custom_details": {"reason": "Step 1 missed its budget"},
        **fields,
    }
    return PageInput(**values)  # type: ignore[arg-type]


async def test_a_trigger_follows_the_published_schema(
    pager: Pager, pagerduty: PagerDutyServer
) -> None:
    result = await pager.send(page())
    assert result.paged == ["sre-oncall"] and not result.skipped
    [event] = pagerduty.standin.events
    assert not pagerduty.standin.refused
    assert event["routing_key"] == KEY and event["event_action"] == "trigger"
    payload = event["payload"]
    assert payload["severity"] == "critical" and payload["source"] == "rollback-engine/search-a"
    assert payload["custom_details"]["report"] == "rollback report -d search-a"
    assert (
        event["links"][0]["href"] == "http://ui:8233/namespaces/default/workflows/rollback-search-a"
    )


async def test_the_summary_is_clipped_to_pagerdutys_limit(
    pager: Pager, pagerduty: PagerDutyServer
) -> None:
    await pager.send(page(summary="x" * 5000))
    [event] = pagerduty.standin.events
    assert len(event["payload"]["summary"]) == 1024


async def test_acknowledge_and_resolve_carry_the_same_dedup_key(
    pager: Pager, pagerduty: PagerDutyServer
) -> None:
    for action in ("trigger", "acknowledge", "resolve"):
        await pager.send(page(action))
    dedup = page().dedup_key
    assert pagerduty.standin.actions(dedup) == ["trigger", "acknowledge", "resolve"]
    assert not pagerduty.standin.refused


async def test_a_key_named_by_environment_variable(
    pager: Pager, pagerduty: PagerDutyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRE_PD_KEY", "b" * 32)
    result = await pager.send(
        page(routing_keys={"sre-oncall": "${SRE_PD_KEY}", "eng-manager": "${UNSET_PD_KEY}"})
    )
    assert result.paged == ["sre-oncall"]
    assert result.skipped == ["eng-manager: ${UNSET_PD_KEY} is not set in the worker's environment"]
    assert pagerduty.standin.events[0]["routing_key"] == "b" * 32


async def test_rate_limits_and_outages_are_retried_refusals_are_not(
    pager: Pager, pagerduty: PagerDutyServer
) -> None:
    pagerduty.standin.failures = [429]
    with pytest.raises(ApplicationError) as limited:
        await pager.send(page())
    assert not limited.value.non_retryable and "429" in limited.value.message
    pagerduty.standin.failures = [500]
    with pytest.raises(ApplicationError) as down:
        await pager.send(page())
    assert not down.value.non_retryable
    refused = await pager.send(
        page(routing_keys={"sre-oncall": "short-key-but-valid-shape-xxxxxxx"})
    )
    assert refused.paged == []
    [why] = refused.skipped
    assert why.startswith("sre-oncall: PagerDuty refused") and "routing key" in why


async def test_a_key_pagerduty_refuses_never_costs_the_others_their_page(
    pager: Pager, pagerduty: PagerDutyServer
) -> None:
    """The refused person is named with PagerDuty's answer; the others are paged all the same."""
    keys = {"eng-manager": "b" * 32, "sre-oncall": "short-key-but-valid-shape-xxxxxxx", "vp": KEY}
    result = await pager.send(page(routing_keys=keys))
    assert result.paged == ["eng-manager", "vp"]
    [why] = result.skipped
    assert why.startswith("sre-oncall: PagerDuty refused the trigger event (400)")
    assert sorted(e["routing_key"] for e in pagerduty.standin.events) == [KEY, "b" * 32]


async def test_an_outage_on_one_key_retries_the_whole_page_and_the_rest_is_one_incident(
    pager: Pager, pagerduty: PagerDutyServer
) -> None:
    pagerduty.standin.failures = [503]  # the first event only
    keys = {"eng-manager": "b" * 32, "vp": KEY}
    with pytest.raises(ApplicationError) as down:
        await pager.send(page(routing_keys=keys))
    assert not down.value.non_retryable
    assert [e["routing_key"] for e in pagerduty.standin.events] == [KEY]  # the other went out
    retried = await pager.send(page(routing_keys=keys))
    assert retried.paged == ["eng-manager", "vp"]
    dedup = {e["dedup_key"] for e in pagerduty.standin.events}
    assert len(dedup) == 1  # a repeat is the same incident in PagerDuty


async def test_without_an_events_url_nobody_is_paged_and_it_says_why() -> None:
    async with httpx.AsyncClient() as http:
        result = await Pager(http, None, "http://ui").send(page())
    assert result.paged == []
    assert "ROLLBACK_PAGERDUTY_EVENTS_URL" in result.skipped[0]
