"""The policy's `targets.drivers`: the sprint-1 protocol stays the default, each driver's block
is checked when the policy is read (with the field path and the reason), and an example may
extend sprint-1 by replacing its `targets`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from runbook.actions import phase1_actions
from runbook.loading import DEFAULT_POLICY, PolicyError, load_policy
from runbook.policy import Policy
from runbook.targets import CommandSplitDriver, HaproxyDriver, HttpDriver

EXAMPLES = DEFAULT_POLICY.parent / "examples"


def written(tmp_path: Path, drivers: str, paths: str = "") -> Path:
    """A policy extending sprint-1 whose targets have `drivers` (YAML, indented by 4)."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        f"extends: {DEFAULT_POLICY}\n"
        "targets:\n"
        "  early_stop_field: ta_nra_early_stop\n"
        "  services_to_stop: [hedging-service]\n"
        "  flags_to_disable: [hedging]\n"
        "  logs: /logs/{deployment}\n"
        f"{paths}"
        "  drivers:\n"
        f"{drivers}"
    )
    return path


def refused(path: Path) -> str:
    with pytest.raises(PolicyError) as error:
        load_policy(path)
    return str(error.value)


def test_sprint_1_names_its_targets_as_the_plan_does(policy: Policy) -> None:
    assert policy.targets is not None
    drivers = policy.targets.drivers
    assert isinstance(drivers.load_balancer, HttpDriver)
    assert drivers.load_balancer.access == "ssh://lb-primary.lens.com"
    assert drivers.configuration_service.access == "https://config.lens.com/admin"
    assert drivers.cache.driver == "redis"


@pytest.mark.parametrize("driver", ["http", "haproxy", "command"])
def test_each_drivers_example_passes_policy_check(
    driver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    example = EXAMPLES / f"{driver}.yaml"
    assert main(["policy", "check", str(example)]) == 0
    assert f"{example}: ok (6 triggers" in capsys.readouterr().out


def test_there_is_one_example_per_driver() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.yaml")) == ["command", "haproxy", "http"]


def test_examples_keep_the_plans_actions(policy: Policy) -> None:
    """A driver changes how an action is done, never which actions there are: recorded
    histories and the channel name them the same."""
    haproxy, command = (
        load_policy(EXAMPLES / "haproxy.yaml"),
        load_policy(EXAMPLES / "command.yaml"),
    )
    assert phase1_actions(haproxy) == phase1_actions(command) == phase1_actions(policy)
    assert haproxy.triggers == policy.triggers, "everything but targets comes from sprint-1"
    assert haproxy.targets is not None and command.targets is not None
    assert isinstance(haproxy.targets.drivers.load_balancer, HaproxyDriver)
    assert isinstance(command.targets.drivers.load_balancer, CommandSplitDriver)
    assert command.targets.drivers.load_balancer.host == "ssh://rollback@lb-primary.lens.com"


def test_an_http_driver_needs_its_paths(tmp_path: Path) -> None:
    text = refused(written(tmp_path, "    service_control: {driver: http}\n"))
    assert "targets: traffic_split is required: drivers.load_balancer is http" in text
    assert "service is required: drivers.service_control is http" in text


@pytest.mark.parametrize(
    ("drivers", "message"),
    [
        (
            "    load_balancer: {driver: f5, socket: /x}\n",
            "targets.drivers.load_balancer: Input tag 'f5' found using 'driver' does not match",
        ),
        (
            "    load_balancer: {driver: haproxy, socket: 'localhost:9999', backend: search}\n",
            "targets.drivers.load_balancer.haproxy.socket: must be a UNIX socket path or tcp://host:port",
        ),
        (
            "    load_balancer: {driver: haproxy, socket: /s, backend: b, control_weight: 300}\n",
            "targets.drivers.load_balancer.haproxy.control_weight: Input should be less than or "
            "equal to 256",
        ),
        (
            "    load_balancer:\n"
            "      driver: command\n"
            "      host: lb-primary.lens.com\n"
            "      read: {run: traffic-split --show, pattern: 't=(?P<treatment>[0-9]+)'}\n"
            "      act: {run: traffic-split --treatment 0 --control 100}\n",
            "targets.drivers.load_balancer.command.host: must be `local` or ssh://[user@]host[:port]",
        ),
        (
            "    load_balancer:\n"
            "      driver: command\n"
            "      read: {run: traffic-split --show, pattern: 't=(?P<treatment>[0-9]+)'}\n"
            "      act: {run: traffic-split --treatment 0 --control 100}\n",
            "targets.drivers.load_balancer.command.read.pattern: needs the named group(s) control",
        ),
        (
            "    service_control:\n"
            "      driver: command\n"
            "      read: {run: 'systemctl is-active {unit}', done: '^inactive$'}\n"
            "      act: {run: 'systemctl stop {service}'}\n",
            "targets.drivers.service_control.command.read.run: names unknown placeholder(s) unit",
        ),
        (
            "    feature_flags:\n"
            "      driver: command\n"
            "      read: {run: 'feature-flag --status {flag}', done: '^(disabled'}\n"
            "      act: {run: 'feature-flag --disable {flag}'}\n",
            "targets.drivers.feature_flags.command.read.done: is not a valid regular expression",
        ),
    ],
)
def test_a_bad_driver_block_is_named(tmp_path: Path, drivers: str, message: str) -> None:
    paths = "  traffic_split: /lb/{deployment}/split\n"
    assert message in refused(written(tmp_path, drivers, paths))


def test_extends_refuses_a_loop_and_a_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    assert "extends: policies extend each other" in refused(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    assert f"extends: cannot read {tmp_path / 'nowhere.yaml'}" in refused(tmp_path / "c.yaml")


def test_a_driver_block_without_driver_is_http(tmp_path: Path) -> None:
    paths = (
        "  traffic_split: /lb/{deployment}/split\n"
        "  configuration: /config/{deployment}\n"
        "  service: /services/{deployment}/{service}\n"
        "  service_stop: /services/{deployment}/{service}/stop\n"
        "  feature_flag: /flags/{deployment}/{flag}\n"
    )
    policy = load_policy(written(tmp_path, "    load_balancer: {access: 'https://lb'}\n", paths))
    assert policy.targets is not None
    assert policy.targets.drivers.load_balancer == HttpDriver(access="https://lb")
