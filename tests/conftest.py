"""Real Temporal servers for the whole session: the time-skipping one and the local dev server."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.policy import Policy
from worker.binaries import temporal_cli, temporal_test_server
from workflows import search_attributes

SESSION_MARKER = "ROLLBACK_TEST_SESSION"


def pytest_configure(config: pytest.Config) -> None:
    """Every process a test starts inherits this session's marker in its environment."""
    os.environ.setdefault(SESSION_MARKER, uuid.uuid4().hex)


def pytest_unconfigure(config: pytest.Config) -> None:
    """The net under every fixture's own `finally`: whatever this session started and is still
    running (a server a failed test orphaned) is killed, and named on stderr."""
    from tests.cli.stack_helpers import kill_processes_in, kill_processes_of

    if hasattr(config, "workerinput"):
        return  # a pytest-xdist worker: the controller sweeps once all of them have ended
    marker = os.environ.get(SESSION_MARKER)
    if marker:
        left = kill_processes_of(f"{SESSION_MARKER}={marker}")
        # A redis-server writes its title over its environment: found by where it works.
        factory = getattr(config, "_tmp_path_factory", None)
        if factory is not None and factory._basetemp is not None:
            left += kill_processes_in(factory._basetemp)
        if left:
            print(f"\ntests: killed {len(left)} process(es) left behind: {left}", file=sys.stderr)


ASSERTED_POLICY = DEFAULT_POLICY.parent / "asserted.yaml"
"""The plan with identities taken as said (tests act as anyone; test_identity*.py sign)."""


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(ASSERTED_POLICY)


@pytest.fixture
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of its own per test: its clock is shared by every workflow on
    it, so a workflow another test left behind could hold or move it."""
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server(),
    ) as env:
        yield env


@pytest.fixture(scope="session")
async def local_env() -> AsyncIterator[WorkflowEnvironment]:
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL,
    ) as env:
        yield env
