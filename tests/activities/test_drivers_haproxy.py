"""The haproxy driver against a real HAProxy in front of two real backends (two simulators,
treatment and control): the split is read from the servers' weights, Step 1 sets treatment's
weight to 0 and afterwards every request sent through HAProxy reaches control (counted at the
backends); a retry changes nothing; refusals name the socket, the command and the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.drivers.haproxy import HaproxyLoadBalancer, RuntimeApi
from activities.models import ActionInput, ReadSplitInput, TrafficSplit
from activities.notify import ConsoleNotifier
from activities.preflight import run_preflight
from activities.procedure import RollbackActivities
from activities.targets import REJECTED, UNAVAILABLE
from runbook.actions import phase1_actions
from runbook.policy import Policy
from runbook.targets import HaproxyDriver
from tests.activities.haproxy import CountingBackend, Haproxy, running_haproxy, through
from tests.activities.helpers import ctx
from tests.activities.servers import settings_for
from tests.policies import edited


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[CountingBackend, CountingBackend]]:
    treatment, control = CountingBackend("treatment"), CountingBackend("control")
    with treatment.server, control.server:
        yield treatment, control


@pytest.fixture
def haproxy(tmp_path: Path, backends: tuple[CountingBackend, CountingBackend]) -> Iterator[Haproxy]:
    """A fresh HAProxy per test, at a 25 % canary (treatment weight 25, control 75)."""
    treatment, control = backends
    with running_haproxy(tmp_path / "haproxy", treatment, control, (25, 75)) as running:
        treatment.hits = control.hits = 0
        yield running


def driver(socket: str, **config: object) -> HaproxyLoadBalancer:
    values: dict[str, object] = {"driver": "haproxy", "socket": socket, "backend": "search"}
    return HaproxyLoadBalancer(
        HaproxyDriver.model_validate(values | config), RuntimeApi(socket, timeout=1)
    )


@pytest.fixture
async def acts(
    haproxy: Haproxy, policy: Policy, redis_url: str, backends: tuple[CountingBackend, ...]
) -> AsyncIterator[RollbackActivities]:
    """The worker's activities, the load balancer driven by the policy's haproxy block."""
    lb = {"driver": "haproxy", "socket": haproxy.admin_socket, "backend": "search"}
    with_haproxy = edited(policy, {"targets.drivers.load_balancer": lb})
    settings = settings_for(backends[1].server.url, redis_url)
    activities = RollbackActivities(settings, notifier=ConsoleNotifier(), policy=with_haproxy)
    yield activities
    await activities.aclose()


@pytest.mark.parametrize("socket", ["unix", "tcp"])
async def test_the_split_is_the_servers_weights(haproxy: Haproxy, socket: str) -> None:
    address = haproxy.admin_socket if socket == "unix" else haproxy.tcp_socket
    assert await driver(address).read("search-a") == TrafficSplit(treatment=25, control=75)


async def test_after_the_emergency_stop_every_request_reaches_control(
    haproxy: Haproxy, acts: RollbackActivities, backends: tuple[CountingBackend, CountingBackend]
) -> None:
    treatment, control = backends
    before = through(haproxy, 40)
    assert treatment.hits > 0 and control.hits > 0, "the canary serves both before the stop"
    assert before.count("treatment") == treatment.hits

    stop = next(a for a in phase1_actions(acts.policy) if a.kind == "set_traffic_split")
    inp = ActionInput(ctx=ctx("search-a"), action=stop)
    done = await acts.actions.set_traffic_split(inp)

    assert done.outcome == "done"
    assert done.before == TrafficSplit(treatment=25, control=75)
    assert done.split == TrafficSplit(treatment=0, control=100)
    assert done.detail.startswith("read back treatment 0% / control 100%; ")
    assert f"on HAProxy stats socket {haproxy.admin_socket}" in done.detail
    assert "`set server search/treatment weight 0`" in done.detail
    assert haproxy.ask("get weight search/treatment") == "0 (initial 25)"
    assert haproxy.ask("get weight search/control") == "75 (initial 75)"

    treatment.hits = control.hits = 0
    after = through(haproxy, 60)
    assert (treatment.hits, control.hits) == (0, 60)
    assert set(after) == {"control"}

    again = await acts.actions.set_traffic_split(inp)
    assert again.outcome == "already"
    assert again.split == TrafficSplit(treatment=0, control=100)
    split = await acts.read_traffic_split(ReadSplitInput(deployment="search-a"))
    assert split == TrafficSplit(treatment=0, control=100)


async def test_a_control_without_weight_is_given_one(haproxy: Haproxy) -> None:
    haproxy.ask("set server search/control weight 0")
    lb = driver(haproxy.tcp_socket, control_weight=50)
    reverted = await lb.revert("search-a", key="k")
    assert (reverted.before, reverted.split) == (
        TrafficSplit(treatment=100, control=0),
        TrafficSplit(treatment=0, control=100),
    )
    assert haproxy.ask("get weight search/control") == "50 (initial 75)"
    assert "`set server search/control weight 50`" in reverted.evidence


async def test_a_socket_below_level_admin_is_refused_with_the_fix(haproxy: Haproxy) -> None:
    lb = driver(haproxy.operator_socket)
    assert await lb.level() == "operator"
    with pytest.raises(ApplicationError) as refused:
        await lb.revert("search-a", key="k")
    error = refused.value
    assert error.type == REJECTED and error.non_retryable
    assert haproxy.operator_socket in error.message
    assert "`set server search/treatment weight 0`" in error.message
    assert "'Permission denied'" in error.message and "level admin" in error.message
    assert haproxy.ask("get weight search/treatment") == "25 (initial 25)"


async def test_unknown_backend_or_server_is_named(haproxy: Haproxy) -> None:
    with pytest.raises(ApplicationError) as no_backend:
        await driver(haproxy.admin_socket, backend="{deployment}").read("search-a")
    assert no_backend.value.type == REJECTED
    assert "`show servers state search-a`" in no_backend.value.message
    assert "Can't find backend" in no_backend.value.message

    with pytest.raises(ApplicationError) as no_server:
        await driver(haproxy.admin_socket, treatment_server="canary").read("search-a")
    assert no_server.value.type == REJECTED
    assert "no server 'canary' (it has treatment, control)" in no_server.value.message


async def test_a_name_that_would_be_a_second_command_is_refused(haproxy: Haproxy) -> None:
    with pytest.raises(ApplicationError) as refused:
        await driver(haproxy.admin_socket, backend="{deployment}").read("a;disable frontend x")
    assert refused.value.type == REJECTED and "not a name HAProxy accepts" in refused.value.message


async def test_no_haproxy_on_the_socket_is_retried(tmp_path: Path) -> None:
    socket = str(tmp_path / "absent.sock")
    with pytest.raises(ApplicationError) as down:
        await driver(socket).read("search-a")
    assert down.value.type == UNAVAILABLE and not down.value.non_retryable
    assert f"HAProxy stats socket {socket}: `show servers state search` failed" in (
        down.value.message
    )


async def test_preflight_reads_the_weights_and_wants_level_admin(
    haproxy: Haproxy,
    policy: Policy,
    redis_url: str,
    backends: tuple[CountingBackend, CountingBackend],
) -> None:
    settings = settings_for(backends[1].server.url, redis_url)
    found = {}
    for level, socket in (("admin", haproxy.admin_socket), ("operator", haproxy.operator_socket)):
        lb = {"driver": "haproxy", "socket": socket, "backend": "search"}
        checks = await run_preflight(
            settings, edited(policy, {"targets.drivers.load_balancer": lb}), "search-a"
        )
        found[level] = next(c for c in checks if c.id == "tools.load_balancer")
    assert found["admin"].passed
    assert found["admin"].name == "Load balancer (haproxy)"
    assert found["admin"].detail == (
        f"split of search-a: treatment 25% / control 75% (HAProxy stats socket "
        f"{haproxy.admin_socket})"
    )
    assert not found["operator"].passed
    assert found["operator"].detail == (
        f"HAProxy stats socket {haproxy.operator_socket} is at level 'operator': the emergency "
        "stop's `set server … weight` needs `level admin` on this stats socket"
    )
    assert "level admin" in found["operator"].fix
    assert haproxy.ask("get weight search/treatment") == "25 (initial 25)", "preflight only reads"
