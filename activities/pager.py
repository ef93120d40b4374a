"""Paging over PagerDuty's Events API v2: `POST {events_url}/v2/enqueue`, one event per routing
key (each person's PagerDuty service), a `dedup_key` per rollback and reason, so that PagerDuty
keeps one incident whatever the number of events.

httpx rather than the `pagerduty` package: its Events API client is synchronous (requests),
and this is one small POST whose retries are Temporal's.

A 429 or a 5xx is retryable (after `Retry-After`); a 400 (an invalid event) is not, and says
what PagerDuty objected to. With `ROLLBACK_PAGERDUTY_EVENTS_URL` unset, paging is off: the
result says who was not paged and why, and the Slack escalation still goes out.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.models import PageInput, PageResult

SUMMARY_LIMIT = 1024
ENV_REFERENCE = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)\}$")
UNAVAILABLE = "PagerDutyUnavailable"
REFUSED = "PagerDutyRefused"


class Pager:
    def __init__(
        self,
        http: httpx.AsyncClient,
        events_url: str | None,
        ui_url: str,
        namespace: str = "default",
    ) -> None:
        self.http = http
        self.events_url = events_url.rstrip("/") if events_url else None
        self.ui_url = ui_url.rstrip("/")
        self.namespace = namespace

    async def send(self, inp: PageInput) -> PageResult:
        if self.events_url is None:
            return PageResult(
                paged=[],
                skipped=[
                    f"{person}: PagerDuty is not configured (ROLLBACK_PAGERDUTY_EVENTS_URL)"
                    for person in inp.routing_keys
                ],
            )
        paged, skipped = [], []
        unavailable: ApplicationError | None = None
        for person, reference in sorted(inp.routing_keys.items()):
            key = resolve_key(reference)
            if key is None:
                skipped.append(f"{person}: {reference} is not set in the worker's environment")
                continue
            try:
                await self._enqueue(self.event(inp, key))
            except ApplicationError as error:
                if error.type == REFUSED:  # this key only: the others are still paged
                    skipped.append(f"{person}: {error.message}")
                    continue
                unavailable = unavailable or error
                continue
            paged.append(person)
        if unavailable is not None:
            # Retried whole: a repeat of an event PagerDuty took is one incident (dedup_key).
            raise unavailable
        return PageResult(paged=paged, skipped=skipped)

    def event(self, inp: PageInput, routing_key: str) -> dict[str, Any]:
        """The event as PagerDuty's Events API v2 documents it."""
        event: dict[str, Any] = {
            "routing_key": routing_key,
            "event_action": inp.action,
            "dedup_key": inp.dedup_key,
        }
        if inp.action == "trigger":
            workflow = inp.ctx.rollback_id.split("/")[0]
            event["payload"] = {
                "summary": _clip(inp.summary, SUMMARY_LIMIT),
                "source": f"rollback-engine/{inp.ctx.deployment}",
                "severity": inp.severity,
                "timestamp": datetime.now(UTC).isoformat(),
                "component": inp.ctx.deployment,
                "group": "canary-rollback",
                "class": inp.ctx.step_name or "escalation",
                "custom_details": {
                    **inp.custom_details,
                    "report": f"rollback report -d {inp.ctx.deployment}",
                },
            }
            event["links"] = [
                {
                    "href": f"{self.ui_url}/namespaces/{self.namespace}/workflows/{workflow}",
                    "text": f"Rollback of {inp.ctx.deployment} in the Temporal Web UI",
                }
            ]
        return event

    async def _enqueue(self, event: dict[str, Any]) -> None:
        url = f"{self.events_url}/v2/enqueue"
        try:
            answer = await self.http.post(url, json=event)
        except httpx.HTTPError as error:
            raise ApplicationError(
                f"PagerDuty at {url} unreachable: {error or type(error).__name__}",
                type=UNAVAILABLE,
            ) from None
        if answer.status_code == 429 or answer.status_code >= 500:
            raise ApplicationError(
                f"PagerDuty at {url} answered {answer.status_code}: {answer.text[:200]}",
                type=UNAVAILABLE,
                next_retry_delay=_retry_after(answer),
            )
        if answer.status_code >= 400:
            raise ApplicationError(
                f"PagerDuty refused the {event['event_action']} event ({answer.status_code}): "
                f"{answer.text[:300]}; check the routing key in the policy",
                type=REFUSED,
                non_retryable=True,
            )


def resolve_key(reference: str) -> str | None:
    """A literal key, or the value of the `${ENV_VAR}` it names (None when unset)."""
    match = ENV_REFERENCE.match(reference)
    if match is None:
        return reference
    return os.environ.get(match.group(1)) or None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _retry_after(answer: httpx.Response) -> timedelta | None:
    try:
        return timedelta(seconds=float(answer.headers.get("Retry-After", "")))
    except ValueError:
        return None
