"""ASGI middleware in front of the target-system APIs: injected API faults, call
accounting and idempotency-key replay. Pure ASGI (no response buffering elsewhere) so
that a slow call whose client gave up still takes effect, as a real one would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulator.api_faults import APIS, ApiFaultBook
from simulator.calls import CallLedger, CallRecord, IdempotencyStore, Outcome, StoredResponse
from simulator.state import WallClock

MUTATING_METHODS = frozenset({"PUT", "PATCH", "POST", "DELETE"})
ACCOUNTED_APIS = frozenset({"lb", "config", "flags", "services"})
IDEMPOTENCY_HEADER = b"idempotency-key"
REPLAYED_HEADER = (b"idempotent-replayed", b"true")


@dataclass(frozen=True)
class Target:
    """Which target-system API a request is for."""

    api: str
    deployment: str | None
    method: str
    path: str
    route: str

    @property
    def accounted(self) -> bool:
        return self.method in MUTATING_METHODS and self.api in ACCOUNTED_APIS


def classify(method: str, path: str) -> Target | None:
    """``PUT /lb/a/split`` -> api ``lb``, deployment ``a``, route ``PUT /lb/{d}/split``."""
    parts = path.split("/")  # ["", api, deployment, ...]; the ASGI path is already decoded
    if len(parts) < 2 or parts[1] not in APIS:
        return None
    deployment = parts[2] if len(parts) > 2 and parts[2] else None
    templated = "/".join([*parts[:2], "{d}", *parts[3:]]) if deployment else path
    return Target(parts[1], deployment, method, path, f"{method} {templated}")


class TargetSystemsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        faults: ApiFaultBook,
        ledger: CallLedger,
        idempotency: IdempotencyStore,
        wall_clock: WallClock,
    ) -> None:
        self.app = app
        self.faults = faults
        self.ledger = ledger
        self.idempotency = idempotency
        self.wall_clock = wall_clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = classify(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        ticket = self.ledger.started(target.api, target.deployment, target.method, target.path)
        try:
            await self._serve(target, scope, receive, send)
        finally:
            self.ledger.finished(ticket)

    async def _serve(self, target: Target, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, IDEMPOTENCY_HEADER)

        fault = self.faults.take(target.api, target.deployment)
        if fault is not None and fault.mode == "fail":
            self._record(target, key, "failed", fault.status)
            body = json.dumps({"detail": "injected fault"}).encode()
            await _send_response(send, fault.status, [(b"content-type", b"application/json")], body)
            return
        if fault is not None and fault.mode == "html":
            self._record(target, key, "failed", 200)
            page = b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
            await _send_response(send, 200, [(b"content-type", b"text/html")], page)
            return
        if fault is not None:
            await asyncio.sleep(fault.delay_seconds)

        if not target.accounted:
            await self.app(scope, receive, send)
            return
        stored = self.idempotency.get(target.method, target.path, key) if key else None
        if stored is not None:
            self._record(target, key, "replayed", stored.status)
            await _send_response(
                send, stored.status, [*stored.headers, REPLAYED_HEADER], stored.body
            )
            return
        await self._serve_accounted(target, key, scope, receive, send)

    async def _serve_accounted(
        self, target: Target, key: str | None, scope: Scope, receive: Receive, send: Send
    ) -> None:
        status = 500
        headers: list[tuple[bytes, bytes]] = []
        body = bytearray()

        async def capture(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            applied = 200 <= status < 300
            self._record(target, key, "applied" if applied else "rejected", status)
            if applied and key:
                self.idempotency.put(
                    target.method, target.path, key, StoredResponse(status, headers, bytes(body))
                )

    def _record(self, target: Target, key: str | None, outcome: Outcome, status: int) -> None:
        self.ledger.record(
            CallRecord(
                deployment=target.deployment,
                api=target.api,
                method=target.method,
                path=target.path,
                route=target.route,
                idempotency_key=key,
                outcome=outcome,
                status=status,
                at=self.wall_clock(),
            )
        )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _send_response(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
