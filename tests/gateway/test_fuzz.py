"""The gateway's OpenAPI spec fuzzed with schemathesis over real HTTP: no 5xx, no crash."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from temporalio.testing import WorkflowEnvironment

from gateway.app import create_app
from runbook.policy import Policy
from simulator.server import ThreadedServer
from tests.gateway.conftest import TOKEN, make_settings

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def gateway_url(local_env: WorkflowEnvironment, policy: Policy) -> Iterator[str]:
    address = local_env.client.service_client.config.target_host
    app = create_app(make_settings(temporal_address=address), policy)
    with ThreadedServer(app) as server:
        yield server.url


def test_openapi_fuzzed_without_a_server_error(gateway_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 9  # alerts 2, slack 2, pagerduty, healthz, livez, readyz, metrics
    for operation in operations:
        if operation.path == "/readyz":
            # 503 is its answer while no worker polls (none does here): said, not a crash.
            answer = httpx.get(f"{gateway_url}/readyz")
            assert answer.status_code == 503 and "no worker polls" in answer.json()["workers"]
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(
                base_url=gateway_url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                checks=[not_a_server_error],
            )

        fuzz()
