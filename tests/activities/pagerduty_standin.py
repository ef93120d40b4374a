"""A local stand-in for PagerDuty's Events API v2 (`POST /v2/enqueue`) that checks every event
against the published schema and limits, records what it accepted, and can be told to fail.

Schema (developer.pagerduty.com, Events API v2): `routing_key` (32 characters), `event_action`
trigger | acknowledge | resolve, `dedup_key` (≤ 255; required to acknowledge or resolve);
a trigger's `payload` with `summary` (≤ 1,024), `source`, `severity` critical | error |
warning | info, optional `timestamp` (ISO 8601), `component`, `group`, `class`,
`custom_details` (an object); optional `links` [{href, text}] and `images`. Answers 202
`{status, message, dedup_key}`, 400 with `errors` for an invalid event, 429 when rate-limited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulator.server import ThreadedServer

ACTIONS = {"trigger", "acknowledge", "resolve"}
SEVERITIES = {"critical", "error", "warning", "info"}
EVENT_FIELDS = {
    "routing_key",
    "event_action",
    "dedup_key",
    "payload",
    "links",
    "images",
    "client",
    "client_url",
}
PAYLOAD_FIELDS = {
    "summary",
    "source",
    "severity",
    "timestamp",
    "component",
    "group",
    "class",
    "custom_details",
}


def event_problems(event: Any) -> list[str]:
    if not isinstance(event, dict):
        return ["the body is not a JSON object"]
    problems = [f"unknown field {k!r}" for k in event if k not in EVENT_FIELDS]
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        problems.append("routing_key must be a 32-character integration key")
    action = event.get("event_action")
    if action not in ACTIONS:
        problems.append(f"event_action must be one of {sorted(ACTIONS)}")
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not 0 < len(dedup) <= 255):
        problems.append("dedup_key must be 1 to 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        problems.append(f"dedup_key is required to {action}")
    if action == "trigger":
        problems += _payload_problems(event.get("payload"))
    for link in event.get("links") or []:
        if not isinstance(link, dict) or not isinstance(link.get("href"), str):
            problems.append("each link needs an href")
    return problems


def _payload_problems(payload: Any) -> list[str]:
    if not isinstance(payload, dict):
        return ["a trigger needs a payload object"]
    problems = [f"unknown payload field {k!r}" for k in payload if k not in PAYLOAD_FIELDS]
    summary = payload.get("summary")
    if not isinstance(summary, str) or not summary:
        problems.append("payload.summary is required")
    elif len(summary) > 1024:
        problems.append(f"payload.summary is {len(summary)} characters (at most 1024)")
    if not isinstance(payload.get("source"), str) or not payload.get("source"):
        problems.append("payload.source is required")
    if payload.get("severity") not in SEVERITIES:
        problems.append(f"payload.severity must be one of {sorted(SEVERITIES)}")
    if "timestamp" in payload:
        try:
            datetime.fromisoformat(str(payload["timestamp"]))
        except ValueError:
            problems.append("payload.timestamp is not ISO 8601")
    details = payload.get("custom_details")
    if details is not None and not isinstance(details, dict):
        problems.append("payload.custom_details must be an object")
    return problems


@dataclass
class PagerDutyStandIn:
    events: list[dict[str, Any]] = field(default_factory=list)
    refused: list[tuple[dict[str, Any], list[str]]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    """HTTP statuses answered, in order, before anything is accepted again (429, 500)."""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v2/enqueue")
        async def enqueue(request: Request) -> JSONResponse:
            try:
                event = await request.json()
            except ValueError:
                return JSONResponse({"status": "invalid event", "errors": ["not JSON"]}, 400)
            if self.failures:
                status = self.failures.pop(0)
                headers = {"Retry-After": "1"} if status == 429 else {}
                return JSONResponse({"status": "throttled"}, status, headers=headers)
            problems = event_problems(event)
            if problems:
                self.refused.append((event, problems))
                return JSONResponse(
                    {
                        "status": "invalid event",
                        "message": "Event object is invalid",
                        "errors": problems,
                    },
                    400,
                )
            self.events.append(event)
            return JSONResponse(
                {
                    "status": "success",
                    "message": "Event processed",
                    "dedup_key": event.get("dedup_key") or f"generated-{len(self.events)}",
                },
                202,
            )

        return app

    def actions(self, dedup_key: str) -> list[str]:
        return [e["event_action"] for e in self.events if e.get("dedup_key") == dedup_key]


class PagerDutyServer(ThreadedServer):
    name = "PagerDuty stand-in"

    def __init__(self, standin: PagerDutyStandIn) -> None:
        super().__init__(standin.app())
        self.standin = standin
