"""docker-compose.yml agrees with the code: Docker cannot run here, so the file is read and every
service's image or build, command, ports, environment and dependencies are checked against the
`rollback` command, the settings and the other services; the Prometheus and Alertmanager files
it mounts are checked against each other, the gateway and the policy."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml

from cli.main import app, main
from config.settings import Settings
from gateway.app import create_app
from runbook.loading import DEFAULT_POLICY, load_policy
from simulator import parse_deployment_arg
from workflows import search_attributes

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DEPLOY = ROOT / "deploy"
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")

# How deploy/rules.yml and deploy/alertmanager.yml are made (README, "Alert rules").
REGENERATE = [
    "rules",
    "--policy",
    "policies/sprint-1.yaml",
    "--out",
    "deploy",
    "--gateway-url",
    "http://gateway:8000",
    "--token-file",
    "/run/secrets/alerts_token",
]

# What each of our services cannot run without inside a container (the defaults point at
# 127.0.0.1, the container itself).
NEEDS = {
    "worker": {"temporal_address", "policy", "redis_url", "target_url", "prometheus_url"},
    "gateway": {"temporal_address", "policy", "alerts_token"},
}
PREFIX = "ROLLBACK_"
INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?-|:?\?)([^}]*))?\}")


def resolve(value: object) -> str:
    """A value as Compose passes it when the operator sets nothing: `${X:-d}` is d, `${X:?m}`
    (the operator must set X) is `<X>`."""

    def one(found: re.Match[str]) -> str:
        name, kind, default = found.groups()
        if kind and "?" in kind:
            return f"<{name}>"
        return default or ""

    return INTERPOLATION.sub(one, str(value)).replace("$$", "$")


def environment(service: str) -> dict[str, str]:
    env = SERVICES[service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def settings_of(service: str) -> dict[str, str]:
    """The service's ROLLBACK_ settings, by field name, as the container sees them."""
    return {
        key.removeprefix(PREFIX).lower(): resolve(value)
        for key, value in environment(service).items()
        if key.startswith(PREFIX)
    }


def published(service: str) -> set[int]:
    """The ports the service listens on: the container side of `ports`, and `expose`."""
    ports = {
        int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in SERVICES[service].get("ports", [])
    }
    return ports | {int(p) for p in SERVICES[service].get("expose", [])}


def built() -> list[str]:
    return [name for name, service in SERVICES.items() if "build" in service]


def rollback_commands() -> dict[str, Any]:
    """`rollback`'s subcommands as click commands (Typer vendors its own click)."""
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def mounts(service: str) -> dict[PurePosixPath, Path]:
    """Bind mounts: container path → path in this repository."""
    found = {}
    for volume in SERVICES[service].get("volumes", []):
        source, target, *_ = str(volume).split(":")
        if source.startswith("."):
            found[PurePosixPath(target)] = ROOT / source
    return found


def in_repository(service: str, container_path: str) -> Path | None:
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if path == target or target in path.parents:
            return source / path.relative_to(target)
    return None


def flag(service: str, name: str) -> str:
    """The value of `--name=value` in the service's command."""
    for argument in SERVICES[service]["command"]:
        if str(argument).startswith(f"{name}="):
            return str(argument).split("=", 1)[1]
    raise AssertionError(f"{service} has no {name}=… in its command")


def listening_port(service: str) -> int:
    """Where our service listens: its command's --port, else the settings' gateway port."""
    command = [str(a) for a in SERVICES[service]["command"]]
    if "--port" in command:
        return int(command[command.index("--port") + 1])
    port = settings_of(service).get("gateway_port")
    return int(port) if port else Settings.model_fields["gateway_port"].default


# --- the services -----------------------------------------------------------------------------


def test_the_stack_has_every_part() -> None:
    assert {
        "postgresql",
        "temporal",
        "temporal-ui",
        "worker",
        "gateway",
        "redis",
        "prometheus",
        "alertmanager",
        "simulator",
    } <= set(SERVICES)
    assert SERVICES["simulator"]["profiles"] == ["simulator"]
    assert [n for n, s in SERVICES.items() if "profiles" in s] == ["simulator"]


def test_every_service_has_a_pinned_image_or_our_build() -> None:
    for name, service in SERVICES.items():
        assert ("image" in service) != ("build" in service), name
        if "image" in service:
            image, _, tag = service["image"].partition(":")
            assert tag and tag != "latest", f"{name}: pin a version of {image}"
    assert set(built()) == {"worker", "gateway", "simulator"}
    for name in built():
        assert SERVICES[name]["build"] == ".", name


def test_temporal_runs_on_postgresql() -> None:
    temporal, db = environment("temporal"), environment("postgresql")
    assert SERVICES["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert SERVICES["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert temporal["DB"].startswith("postgres")
    assert temporal["POSTGRES_SEEDS"] in SERVICES
    assert int(temporal["DB_PORT"]) in published(temporal["POSTGRES_SEEDS"])
    assert temporal["POSTGRES_USER"] == db["POSTGRES_USER"]
    assert temporal["POSTGRES_PWD"] == db["POSTGRES_PASSWORD"]
    assert 7233 in published("temporal")
    assert environment("temporal-ui")["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_our_services_run_real_rollback_commands() -> None:
    commands = rollback_commands()
    expected = {"worker": "worker", "gateway": "gateway", "simulator": "simulate"}
    for name in built():
        argv = [str(a) for a in SERVICES[name]["command"]]
        assert argv[0] == "rollback", name
        assert argv[1] == expected[name], name
        command = commands[argv[1]]
        # Parsing checks every option's name and type, as `rollback` would, without running it.
        command.make_context(f"rollback {argv[1]}", argv[2:])
    assert "0.0.0.0" in SERVICES["gateway"]["command"]
    simulate = [str(a) for a in SERVICES["simulator"]["command"]]
    for i, argument in enumerate(simulate):
        if argument == "--deployment":
            parse_deployment_arg(simulate[i + 1])
    assert "0.0.0.0" in SERVICES["simulator"]["command"]


def test_the_dockerfile_installs_the_project_and_its_policy() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "rollback" in pyproject["project"]["scripts"]
    packages = [
        p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert re.search(rf"^COPY {package} {package}$", DOCKERFILE, re.M), package
    assert re.search(r"^RUN pip install \.", DOCKERFILE, re.M)
    assert "ENTRYPOINT" not in DOCKERFILE  # the compose commands start with `rollback`
    workdir = re.search(r"^WORKDIR (\S+)$", DOCKERFILE, re.M)
    policy = re.search(r"^ENV ROLLBACK_POLICY=(\S+)$", DOCKERFILE, re.M)
    assert workdir and policy
    relative = PurePosixPath(policy.group(1)).relative_to(workdir.group(1))
    assert re.search(rf"^COPY {relative.parts[0]} {relative.parts[0]}$", DOCKERFILE, re.M)
    assert (ROOT / relative).is_file()


def test_published_ports_are_where_the_services_listen() -> None:
    for name in ("gateway", "simulator"):
        assert listening_port(name) in published(name), name
    upstream = {
        "temporal": 7233,
        "temporal-ui": 8080,
        "prometheus": 9090,
        "alertmanager": 9093,
        "redis": 6379,
        "postgresql": 5432,
    }
    for name, port in upstream.items():
        assert port in published(name), name


# --- the environment --------------------------------------------------------------------------


def test_every_rollback_variable_is_a_setting_with_a_valid_value() -> None:
    for name in SERVICES:
        values = settings_of(name)
        for field in values:
            assert field in Settings.model_fields, f"{name}: {PREFIX}{field.upper()} is no setting"
        # Validates types (a port is a number, a URL a string…) as the container would.
        Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_our_services_set_what_they_need() -> None:
    for name, needed in NEEDS.items():
        missing = needed - set(settings_of(name))
        assert not missing, f"{name} needs {', '.join(PREFIX + m.upper() for m in missing)}"
    # The gateway's token is the operator's, never a value committed here.
    assert environment("gateway")["ROLLBACK_ALERTS_TOKEN"].startswith("${ROLLBACK_ALERTS_TOKEN:?")
    # Worker and gateway meet on the same Temporal namespace and task queue.
    for field in ("temporal_address", "temporal_namespace", "task_queue", "policy"):
        worker = settings_of("worker").get(field, Settings.model_fields[field].default)
        gateway = settings_of("gateway").get(field, Settings.model_fields[field].default)
        assert str(worker) == str(gateway), field


def test_the_policy_a_container_reads_is_a_policy_of_this_repository() -> None:
    for name in NEEDS:
        path = in_repository(name, settings_of(name)["policy"])
        assert path is not None and path.is_file(), name
        load_policy(path)


def test_addresses_name_a_service_listening_there() -> None:
    address = re.compile(r"(?:^|//)([A-Za-z][\w.-]*):(\d+)")
    for name in SERVICES:
        for key, value in environment(name).items():
            for host, port in address.findall(resolve(value)):
                assert host in SERVICES, f"{name}: {key} names {host!r}, not a service"
                assert int(port) in published(host), f"{name}: {key}: {host} is not on {port}"


def test_dependencies_exist_and_need_no_profile() -> None:
    for name, service in SERVICES.items():
        depends = service.get("depends_on", [])
        for dependency in depends:
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert "profiles" not in SERVICES[dependency], f"{name} needs {dependency}'s profile"
        if isinstance(depends, dict):
            for dependency, how in depends.items():
                assert how["condition"] in {
                    "service_started",
                    "service_healthy",
                    "service_completed_successfully",
                }, (name, dependency)
                if how["condition"] == "service_healthy":
                    assert "healthcheck" in SERVICES[dependency], dependency
    for name in ("worker", "gateway"):
        setup = SERVICES[name]["depends_on"]["temporal-setup"]
        assert setup["condition"] == "service_completed_successfully", name
    assert "redis" in SERVICES["worker"]["depends_on"]


def test_temporal_setup_registers_the_workflows_search_attributes() -> None:
    script = "\n".join(str(part) for part in SERVICES["temporal-setup"]["command"])
    registered = dict(re.findall(r"^\s*add (\w+) (\w+)$", script, re.M))
    flags = search_attributes.cli_flags()
    expected = dict(value.split("=") for value in flags[1::2])
    assert registered == expected
    assert environment("temporal-setup")["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_bind_mounts_and_named_volumes_exist() -> None:
    for name in SERVICES:
        for target, source in mounts(name).items():
            assert source.exists(), f"{name}: {source} (mounted on {target}) is missing"
        for volume in SERVICES[name].get("volumes", []):
            named = str(volume).split(":")[0]
            if not named.startswith((".", "/")):
                assert named in COMPOSE["volumes"], f"{name}: volume {named} is not declared"


# --- Prometheus, Alertmanager and the generated files ---------------------------------------


def test_prometheus_loads_the_rules_and_sends_to_alertmanager() -> None:
    config_path = flag("prometheus", "--config.file")
    config_file = in_repository("prometheus", config_path)
    assert config_file == DEPLOY / "prometheus.yml"
    config = yaml.safe_load(config_file.read_text())
    for rule_file in config["rule_files"]:
        in_container = PurePosixPath(config_path).parent / rule_file
        assert in_repository("prometheus", str(in_container)) == DEPLOY / "rules.yml"
    (manager,) = config["alerting"]["alertmanagers"]
    (target,) = manager["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "alertmanager" and int(port) in published("alertmanager")
    scraped = {
        t
        for job in config["scrape_configs"]
        for c in job.get("static_configs", [])
        for t in c["targets"]
    }
    scraped |= {
        f"{name}:{c['port']}"
        for job in config["scrape_configs"]
        for c in job.get("dns_sd_configs", [])
        for name in c["names"]
    }
    assert f"simulator:{listening_port('simulator')}" in scraped
    # The engine's own metrics: the gateway's /metrics and the worker's metrics address.
    assert f"gateway:{listening_port('gateway')}" in scraped
    worker = SERVICES["worker"]["environment"]["ROLLBACK_WORKER_METRICS_ADDRESS"]
    assert f"worker:{worker.rsplit(':', 1)[1]}" in scraped


def test_alertmanager_posts_to_the_gateway_with_the_gateways_token() -> None:
    config_file = in_repository("alertmanager", flag("alertmanager", "--config.file"))
    assert config_file == DEPLOY / "alertmanager.yml"
    config = yaml.safe_load(config_file.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    webhooks = [w for r in receivers.values() for w in r.get("webhook_configs", [])]
    (webhook,) = webhooks
    url = urlsplit(webhook["url"])
    assert url.hostname == "gateway" and url.port == listening_port("gateway")
    policy = load_policy(DEFAULT_POLICY)
    assert url.path in create_app(Settings(_env_file=None), policy).openapi()["paths"]
    # The token reaches Alertmanager as a compose secret made from the gateway's variable.
    secret_file = PurePosixPath(webhook["http_config"]["authorization"]["credentials_file"])
    assert secret_file.parent == PurePosixPath("/run/secrets")
    assert secret_file.name in SERVICES["alertmanager"]["secrets"]
    source = COMPOSE["secrets"][secret_file.name]["environment"]
    assert environment("gateway")["ROLLBACK_ALERTS_TOKEN"].startswith(f"${{{source}:?")


def test_the_deploy_files_are_what_rollback_rules_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [str(DEFAULT_POLICY) if a == "policies/sprint-1.yaml" else a for a in REGENERATE]
    argv[argv.index("deploy")] = str(tmp_path)
    assert main(argv) == 0, capsys.readouterr().err
    for name in ("rules.yml", "alertmanager.yml"):
        assert (DEPLOY / name).read_text() == (tmp_path / name).read_text(), (
            f"deploy/{name} is out of date: run `rollback {' '.join(REGENERATE)}`"
        )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_prometheus_configuration() -> None:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(DEPLOY / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(
    AMTOOL is None, reason="amtool is not installed (Debian: prometheus-alertmanager)"
)
def test_amtool_accepts_the_alertmanager_configuration() -> None:
    assert AMTOOL is not None
    result = subprocess.run(
        [AMTOOL, "check-config", str(DEPLOY / "alertmanager.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
