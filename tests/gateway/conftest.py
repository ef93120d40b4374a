from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from config.settings import Settings
from gateway.app import create_app
from gateway.temporal_link import TemporalLink
from runbook.policy import Policy
from runbook.status import RollbackStatus
from tests.gateway.slack_standin import SlackServer, SlackStandIn
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS

TOKEN = "alert-t0ken"
SECRET = "slack-s3cret"


@dataclass
class Gateway:
    http: httpx.AsyncClient
    settings: Settings
    client: Client
    slack: SlackServer
    standins: StandIns
    policy: Policy

    @property
    def response_url(self) -> str:
        return f"{self.slack.url}/response/{uuid4().hex[:6]}"

    async def status(self, deployment: str) -> RollbackStatus:
        return await operations.status(self.client, deployment)

    def new_worker(self) -> Worker:
        return Worker(
            self.client,
            task_queue=self.settings.task_queue,
            workflows=WORKFLOWS,
            activities=self.standins.activities(),
        )


def make_settings(**overrides: Any) -> Settings:
    return Settings(
        alerts_token=TOKEN, slack_signing_secret=SECRET, task_queue=f"tq-{uuid4()}", **overrides
    )


@pytest.fixture
async def slack() -> AsyncIterator[SlackServer]:
    async with SlackServer(SlackStandIn()) as server:
        yield server


@pytest.fixture
async def gateway_no_worker(
    local_env: WorkflowEnvironment, policy: Policy, slack: SlackServer
) -> AsyncIterator[Gateway]:
    settings = make_settings(
        temporal_address=local_env.client.service_client.config.target_host,
        slack_bot_token="xoxb-test",
        slack_api_url=f"{slack.url}/api",
    )
    app = create_app(settings, policy, TemporalLink(settings, local_env.client))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gateway"
    ) as http:
        yield Gateway(http, settings, local_env.client, slack, StandIns(treatment=50), policy)
    await app.state.slack.http.aclose()


@pytest.fixture
async def gateway(gateway_no_worker: Gateway) -> AsyncIterator[Gateway]:
    async with gateway_no_worker.new_worker():
        yield gateway_no_worker
