"""The command driver: the plan's own commands, run over SSH on a real OpenSSH server (and
locally), installed as scripts that record every call. Each action reads first, runs the
plan's command once, reads back; a retry runs the reads alone; a failing command is reported
with the host, the command and its output; what the commands printed is kept, redacted."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import redis.asyncio as aioredis
from temporalio.exceptions import ApplicationError

from activities.drivers.command import CommandState
from activities.drivers.redact import Redactor
from activities.drivers.runners import LocalRunner, SshAccess, SshRunner
from activities.models import ActionDone, ActionInput
from activities.notify import ConsoleNotifier
from activities.preflight import run_preflight
from activities.procedure import RollbackActivities
from activities.targets import NOT_CONFIRMED, REJECTED, UNAVAILABLE
from runbook.actions import phase1_actions
from runbook.policy import Policy
from runbook.targets import CommandStateDriver
from simulator import SimulatorServer
from tests.activities.helpers import ctx
from tests.activities.servers import settings_for
from tests.activities.sshd import (
    SECRET,
    PlanHost,
    command_drivers,
    install_scripts,
    running_sshd,
)
from tests.policies import edited

TOKEN = "tgt-token-0123456789"


@pytest.fixture(scope="module")
def plan_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlanHost]:
    with running_sshd(tmp_path_factory.mktemp("sshd"), TOKEN) as host:
        yield host


@pytest.fixture
def host(plan_host: PlanHost) -> PlanHost:
    plan_host.reset(treatment=25)
    return plan_host


def access(host: PlanHost, **changes: Any) -> SshAccess:
    values: dict[str, Any] = {"key": host.key, "known_hosts": host.known_hosts, **changes}
    return SshAccess(connect_timeout=2, **values)


def state_driver(run: str, read: str = "systemctl is-active {service}", **act: Any) -> Any:
    return CommandStateDriver.model_validate(
        {
            "driver": "command",
            "read": {"run": read, "exit_codes": [0, 3], "done": "^(inactive|failed)$"},
            "act": {"run": run, **act},
        }
    )


@pytest.fixture
async def acts(
    host: PlanHost, policy: Policy, redis_url: str, simulator: SimulatorServer
) -> AsyncIterator[RollbackActivities]:
    """The worker's activities, every Phase 1 target but the cache driven by the plan's
    commands over SSH."""
    with_commands = edited(policy, {"targets.drivers": command_drivers(host.url)})
    settings = settings_for(
        simulator.url,
        redis_url,
        ssh_key=host.key,
        ssh_known_hosts=host.known_hosts,
        target_token=TOKEN,
    )
    activities = RollbackActivities(settings, notifier=ConsoleNotifier(), policy=with_commands)
    yield activities
    await activities.aclose()


async def run_all(acts: RollbackActivities, deployment: str) -> dict[str, ActionDone]:
    """Every Phase 1 action at once, as the workflow runs them."""
    actions = phase1_actions(acts.policy)
    done = await asyncio.gather(
        *(
            getattr(acts.actions, a.kind)(ActionInput(ctx=ctx(deployment), action=a))
            for a in actions
        )
    )
    return {a.id: d for a, d in zip(actions, done, strict=True)}


READS = {
    "traffic-split --show search-a",
    "systemctl is-active hedging-service",
    "config-update --show ta_nra_early_stop",
    "feature-flag --status hedging",
    "feature-flag --status ta_nra_optimization",
}
ACTS = {
    "traffic-split --treatment 0 --control 100",
    "systemctl stop hedging-service",
    "config-update --disable-early-stop",
    "feature-flag --disable hedging",
    "feature-flag --disable ta_nra_optimization",
}


async def test_each_action_runs_the_plans_command_once_and_a_retry_only_reads(
    acts: RollbackActivities, host: PlanHost, redis_url: str
) -> None:
    cache = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    await cache.set("config:x", "1")
    await cache.aclose()

    first = await run_all(acts, "search-a")

    assert {i: d.outcome for i, d in first.items()} == dict.fromkeys(first, "done")
    calls = Counter(host.calls())
    assert {c for c in calls if c in ACTS} == ACTS
    assert all(calls[c] == 1 for c in ACTS), calls
    assert all(calls[c] == 2 for c in READS), calls  # read first, read back
    split = first["traffic_split"]
    assert split.before is not None and split.before.treatment == 25
    assert split.split is not None and split.split.treatment == 0
    assert split.detail.startswith("read back treatment 0% / control 100%; on load balancer ")
    assert f"load balancer {host.url}: `traffic-split --treatment 0 --control 100` → " in (
        split.detail
    )
    assert "split set: treatment 0% / control 100% (token=***)" in split.detail
    config = first["config:ta_nra_early_stop"].detail
    assert "`config-update --disable-early-stop` → ta_nra_early_stop=false" in config
    assert "then `config-update --show ta_nra_early_stop` → false" in config
    for done in first.values():
        assert SECRET not in done.detail and TOKEN not in done.detail
    assert (host.state / "stopped-hedging-service").exists()

    before_retry = len(host.calls())
    again = await run_all(acts, "search-a")

    assert {i: d.outcome for i, d in again.items()} == dict.fromkeys(again, "already")
    retried = host.calls()[before_retry:]
    assert sorted(retried) == sorted(READS), "a retry reads once per action and changes nothing"
    assert "`systemctl is-active hedging-service` → inactive" in (
        again["stop_service:hedging-service"].detail
    )


async def test_a_failing_command_is_reported_with_host_command_and_output(host: PlanHost) -> None:
    driver = CommandState(
        state_driver("systemctl stop {service}"),
        SshRunner(host.url, access(host)),
        Redactor(),
        "service control",
        "service",
    )
    with pytest.raises(ApplicationError) as failed:
        await driver.stop("search-a", "broken-service", key="k")
    error = failed.value
    assert error.type == UNAVAILABLE and not error.non_retryable
    assert error.message == (
        f"service control {host.url}: `systemctl stop broken-service` exited 1 (expected 0): "
        "Failed to stop broken-service.service: Access denied"
    )

    missing = CommandState(
        state_driver("hedgectl stop {service}"),
        SshRunner(host.url, access(host)),
        Redactor(),
        "service control",
        "service",
    )
    with pytest.raises(ApplicationError) as not_found:
        await missing.stop("search-a", "hedging-service", key="k")
    assert not_found.value.type == REJECTED and not_found.value.non_retryable
    assert "`hedgectl stop hedging-service` exited 127" in not_found.value.message
    assert "installed and on the PATH" in not_found.value.message


async def test_a_host_key_not_in_known_hosts_is_refused(host: PlanHost, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    port = host.url.rsplit(":", 1)[1]
    impostor = tmp_path / "known_hosts"
    impostor.write_text(f"[127.0.0.1]:{port} {other}")
    runner = SshRunner(host.url, access(host, known_hosts=impostor))
    calls = len(host.calls())
    with pytest.raises(ApplicationError) as refused:
        async with runner.session() as session:
            await session.run("traffic-split --show search-a", 2)
    assert refused.value.type == REJECTED and refused.value.non_retryable
    assert f"{host.url}: host key not verified against {impostor}" in refused.value.message
    assert len(host.calls()) == calls, "nothing ran on an unverified host"


async def test_a_command_that_hangs_is_cut_at_its_timeout(host: PlanHost) -> None:
    driver = CommandState(
        CommandStateDriver.model_validate(
            {
                "driver": "command",
                "read": {"run": "echo checking; sleep 5", "done": "^inactive$", "timeout": "300ms"},
                "act": {"run": "systemctl stop {service}"},
            }
        ),
        SshRunner(host.url, access(host)),
        Redactor(),
        "service control",
        "service",
    )
    with pytest.raises(ApplicationError) as slow:
        await driver.is_stopped("search-a", "hedging-service")
    assert slow.value.type == UNAVAILABLE
    assert f"{host.url}: `echo checking; sleep 5` did not finish within 0.3 s" in (
        slow.value.message
    )


async def test_without_a_key_setting_the_fix_is_named(host: PlanHost) -> None:
    with pytest.raises(ApplicationError) as refused:
        async with SshRunner(host.url, access(host, key=None)).session():
            pass
    assert refused.value.type == REJECTED and "set ROLLBACK_SSH_KEY" in refused.value.message


# --- locally, without SSH ---------------------------------------------------------------


async def test_local_commands_read_act_and_read_back(tmp_path: Path) -> None:
    bin_dir, state = install_scripts(tmp_path, TOKEN)
    flags = CommandState(
        CommandStateDriver.model_validate(command_drivers("local", bin_dir)["feature_flags"]),
        LocalRunner(),
        Redactor([TOKEN]),
        "feature flags",
        "flag",
    )
    assert not await flags.is_off("search-a", "hedging")
    done = await flags.disable("search-a", "hedging", key="k")
    again = await flags.disable("search-a", "hedging", key="k")
    assert (done.outcome, again.outcome) == ("done", "already")
    assert done.evidence == (
        f"on feature flags local: `{bin_dir}/feature-flag --disable hedging` → hedging disabled; "
        f"then `{bin_dir}/feature-flag --status hedging` → disabled"
    )
    log = (state / "calls.log").read_text().splitlines()
    assert log.count("feature-flag --disable hedging") == 1


async def test_a_name_is_quoted_so_it_cannot_become_a_command(tmp_path: Path) -> None:
    bin_dir, state = install_scripts(tmp_path, TOKEN)
    flags = CommandState(
        CommandStateDriver.model_validate(command_drivers("local", bin_dir)["feature_flags"]),
        LocalRunner(),
        Redactor(),
        "feature flags",
        "flag",
    )
    await flags.disable("search-a", "x; touch pwned", key="k")
    assert not (Path.cwd() / "pwned").exists() and not (state / "pwned").exists()
    assert "feature-flag --disable x; touch pwned" in (state / "calls.log").read_text()


async def test_sudo_without_a_rule_is_refused_with_the_fix(tmp_path: Path) -> None:
    driver = CommandState(
        state_driver("echo 'sudo: a password is required' >&2; exit 1", read="echo active"),
        LocalRunner(),
        Redactor(),
        "service control",
        "service",
    )
    with pytest.raises(ApplicationError) as refused:
        await driver.stop("search-a", "hedging-service", key="k")
    assert refused.value.type == REJECTED
    assert "NOPASSWD sudo rule" in refused.value.message


async def test_output_that_lacks_the_expected_words_is_not_confirmed(tmp_path: Path) -> None:
    driver = CommandState(
        state_driver("echo 'nothing to do'", read="echo active", expect="^stopped"),
        LocalRunner(),
        Redactor(),
        "service control",
        "service",
    )
    with pytest.raises(ApplicationError) as unconfirmed:
        await driver.stop("search-a", "hedging-service", key="k")
    assert unconfirmed.value.type == NOT_CONFIRMED
    assert "lacks '^stopped': nothing to do" in unconfirmed.value.message


def test_redaction_masks_known_secrets_and_the_usual_shapes() -> None:
    redact = Redactor(["hunter2-known"])
    text = (
        "using hunter2-known; password=abc123 api_key: 'k e y' Authorization: Bearer "
        "abcdefghijkl xoxb-1-2-3 redis://user:pw@cache:6379 -----BEGIN OPENSSH PRIVATE KEY-----"
        "\nAAAA\n-----END OPENSSH PRIVATE KEY----- done"
    )
    assert redact(text) == (
        "using ***; password=*** api_key: *** Authorization: Bearer *** *** "
        "redis://user:***@cache:6379 [private key] done"
    )


async def test_preflight_only_reads_over_ssh(
    host: PlanHost, policy: Policy, redis_url: str, simulator: SimulatorServer
) -> None:
    settings = settings_for(
        simulator.url, redis_url, ssh_key=host.key, ssh_known_hosts=host.known_hosts
    )
    with_commands = edited(policy, {"targets.drivers": command_drivers(host.url)})
    checks = {c.id: c for c in await run_preflight(settings, with_commands, "search-a")}
    kinds = ("load_balancer", "service_control", "configuration_service", "feature_flags")
    assert {k: checks[f"tools.{k}"].passed for k in kinds} == dict.fromkeys(kinds, True)
    assert checks["tools.load_balancer"].name == "Load balancer (command)"
    assert checks["tools.load_balancer"].detail == (
        f"split of search-a: treatment 25% / control 75% (load balancer {host.url})"
    )
    assert checks["tools.service_control"].detail == (
        f"hedging-service running (service control {host.url})"
    )
    assert sorted(set(host.calls())) == sorted(READS), "preflight runs the read commands only"

    settings = settings.model_copy(update={"ssh_key": None})
    checks = {c.id: c for c in await run_preflight(settings, with_commands, "search-a")}
    assert not checks["tools.feature_flags"].passed
    assert "set ROLLBACK_SSH_KEY" in checks["tools.feature_flags"].detail
    assert "ROLLBACK_SSH_KNOWN_HOSTS" in checks["tools.feature_flags"].fix
