"""What a target's failures become: retryable or not, and a message that names the call."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from temporalio.exceptions import ApplicationError

from activities.targets import Target, fill

Handler = Callable[[httpx.Request], httpx.Response]


def target(handler: Handler, token: str | None = None) -> Target:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Target(http, "load balancer", "http://lb.test/", token)


async def fails(call: object) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await call  # type: ignore[misc]
    return caught.value


@pytest.mark.parametrize("status", [500, 502, 503, 429, 408])
async def test_server_errors_and_throttling_are_retryable(status: int) -> None:
    t = target(lambda r: httpx.Response(status, text="busy, try later"))
    error = await fails(t.call("PUT", "/lb/x/split", json={"treatment": 0}))
    assert error.type == "TargetUnavailable" and not error.non_retryable
    assert error.message == (
        f"load balancer PUT http://lb.test/lb/x/split answered {status}: busy, try later"
    )


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_answers_no_retry_can_fix_fail_fast(status: int) -> None:
    t = target(lambda r: httpx.Response(status, json={"detail": "unknown deployment 'x'"}))
    error = await fails(t.call("PUT", "/lb/x/split"))
    assert error.type == "TargetRejected" and error.non_retryable
    assert error.message.startswith(
        f"load balancer PUT http://lb.test/lb/x/split answered {status}:"
    )
    assert "unknown deployment 'x'" in error.message


async def test_unreachable_and_timed_out_targets_are_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    refused = await fails(target(refuse).get("/lb/x/split"))
    assert refused.type == "TargetUnavailable" and not refused.non_retryable
    assert (
        refused.message
        == "load balancer GET http://lb.test/lb/x/split unreachable: connection refused"
    )
    timed_out = await fails(target(hang).get("/lb/x/split"))
    assert timed_out.type == "TargetUnavailable"
    assert "timed out (ReadTimeout)" in timed_out.message


async def test_a_real_closed_port_is_unreachable() -> None:
    async with httpx.AsyncClient(timeout=1) as http:
        error = await fails(Target(http, "config", "http://127.0.0.1:9").get("/config/x"))
    assert error.type == "TargetUnavailable"


@pytest.mark.parametrize(
    ("answer", "complaint"),
    [
        (httpx.Response(200, text="<html>login</html>"), "with no JSON: <html>login</html>"),
        (httpx.Response(200, json=[1, 2]), "a JSON list, not an object"),
    ],
)
async def test_a_malformed_answer_fails_fast(answer: httpx.Response, complaint: str) -> None:
    error = await fails(target(lambda r: answer).get("/lb/x/split"))
    assert error.non_retryable and error.type == "TargetRejected"
    assert complaint in error.message


async def test_a_missing_field_is_a_malformed_answer() -> None:
    t = target(lambda r: httpx.Response(200, json={"treatment": "zero"}))
    data = await t.get("/lb/x/split")
    with pytest.raises(ApplicationError) as caught:
        t.field(data, "treatment", int)
    assert caught.value.non_retryable
    assert "answered without a valid 'treatment'" in caught.value.message
    with pytest.raises(ApplicationError):
        t.field({"enabled": True}, "enabled", int)  # a bool is not a number


async def test_token_and_idempotency_key_are_sent() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    await target(record, token="s3cret").call("PUT", "/lb/x/split", json={}, key="wf/run/step/a")
    assert seen[0].headers["Authorization"] == "Bearer s3cret"
    assert seen[0].headers["Idempotency-Key"] == "wf/run/step/a"


def test_fill_leaves_other_braces_alone() -> None:
    promql = 'sum(x{deployment="{deployment}"})'
    assert fill(promql, deployment="d1") == 'sum(x{deployment="d1"})'
