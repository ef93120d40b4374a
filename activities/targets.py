"""One HTTP target system (load balancer, config service, …) and what its failures mean.

A failure that a retry may fix (unreachable, timed out, 5xx, 429) is a retryable
`TargetUnavailable`; Temporal retries it within the step's budget. One that no retry can fix
(401, 403, 404, 400, 422, an answer that is not the expected JSON) is a non-retryable
`TargetRejected` that names the target, the call and the answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from temporalio.exceptions import ApplicationError

UNAVAILABLE = "TargetUnavailable"
REJECTED = "TargetRejected"
NOT_CONFIRMED = "NotConfirmed"
RETRYABLE_STATUS = frozenset({408, 425, 429})
IDEMPOTENCY_HEADER = "Idempotency-Key"
EXCERPT = 200


def unavailable(message: str) -> ApplicationError:
    return ApplicationError(message, type=UNAVAILABLE)


def rejected(message: str) -> ApplicationError:
    return ApplicationError(message, type=REJECTED, non_retryable=True)


def not_confirmed(message: str) -> ApplicationError:
    """The target accepted a change but does not show it yet: retry (the change is idempotent)."""
    return ApplicationError(message, type=NOT_CONFIRMED)


def fill(template: str, **values: str) -> str:
    """`{deployment}` and friends replaced, each percent-encoded as one path segment (a value
    can never reach another path); other braces (JSON, PromQL) left alone."""
    return substitute(template, {name: quote(value, safe="") for name, value in values.items()})


def substitute(template: str, values: dict[str, str]) -> str:
    """`{name}` replaced as it is (PromQL, dotted JSON paths: the caller escapes for them)."""
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


class Target:
    """A named base URL on the shared client; every answer must be a JSON object."""

    def __init__(
        self, http: httpx.AsyncClient, name: str, base_url: str, token: str | None = None
    ) -> None:
        self.http = http
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return await self.call("GET", path, params=params)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """`key` is sent as `Idempotency-Key`: a retried call takes effect once."""
        response = await self.send(method, path, json=json, params=params, key=key)
        return self.parse(response)

    async def send(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        """The raw answer of a call that reached the target and did not fail (2xx)."""
        url = self.url(path)
        headers = dict(self.headers)
        if key is not None:
            headers[IDEMPOTENCY_HEADER] = key
        what = f"{self.name} {method} {url}"
        try:
            response = await self.http.request(
                method, url, json=json, params=params, headers=headers
            )
        except httpx.TimeoutException as error:
            raise unavailable(f"{what} timed out ({type(error).__name__})") from None
        except httpx.TransportError as error:
            raise unavailable(f"{what} unreachable: {error or type(error).__name__}") from None
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUS:
            raise unavailable(f"{what} answered {status}: {_excerpt(response)}")
        if status >= 400:
            raise rejected(f"{what} answered {status}: {_excerpt(response)}")
        return response

    def parse(self, response: httpx.Response) -> dict[str, Any]:
        what = f"{self.name} {response.request.method} {response.request.url}"
        try:
            data = response.json()
        except ValueError:
            raise rejected(
                f"{what} answered {response.status_code} with no JSON: {_excerpt(response)}"
            ) from None
        if not isinstance(data, dict):
            raise rejected(
                f"{what} answered a JSON {type(data).__name__}, not an object: {_excerpt(response)}"
            )
        return data

    def field(self, data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
        """`data[name]`, which must be of `kind`; anything else is a malformed answer."""
        value = data.get(name)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise rejected(
                f"{self.name} at {self.base_url} answered without a valid {name!r}: "
                f"{str(data)[:EXCERPT]}"
            )
        return value


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:EXCERPT] or "(empty body)"
