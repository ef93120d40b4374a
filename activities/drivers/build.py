"""The drivers a worker uses, as its policy's `targets.drivers` chooses them and its settings
say where and with what credentials. Adding a driver means a branch here and a module beside
this one; no activity or workflow changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from activities.cache import ConfigCache
from activities.config import ConfigService
from activities.drivers.base import LoadBalancerDriver, ServiceDriver, SwitchDriver
from activities.drivers.command import CommandLoadBalancer, CommandState
from activities.drivers.haproxy import HaproxyLoadBalancer, RuntimeApi
from activities.drivers.redact import Redactor
from activities.drivers.runners import LocalRunner, Runner, SshAccess, SshRunner
from activities.flags import FeatureFlags
from activities.services import ServiceControl
from activities.targets import Target
from activities.traffic import LoadBalancer
from runbook.policy import Targets
from runbook.targets import LOCAL, CommandStateDriver, HaproxyDriver, HttpDriver

if TYPE_CHECKING:
    from config.settings import Settings

HttpTarget = Callable[[str, "str | None"], Target]
"""`(name, url setting)` → the target on the shared client (the settings' base URL when the
target has no URL of its own)."""

SECRET_SETTINGS = (
    "target_token",
    "slack_bot_token",
    "slack_app_token",
    "slack_signing_secret",
    "alerts_token",
    "temporal_api_key",
    "pagerduty_webhook_secret",
    "ssh_key_passphrase",
)


@dataclass(frozen=True)
class Drivers:
    lb: LoadBalancerDriver
    services: ServiceDriver
    config: SwitchDriver
    flags: SwitchDriver
    cache: ConfigCache


def build_drivers(settings: Settings, targets: Targets, http_target: HttpTarget) -> Drivers:
    drivers = targets.drivers
    redact = redactor(settings)
    runners: dict[str, Runner] = {}

    def runner(host: str) -> Runner:
        if host not in runners:
            runners[host] = (
                LocalRunner() if host == LOCAL else SshRunner(host, ssh_access(settings))
            )
        return runners[host]

    lb_config = drivers.load_balancer
    lb: LoadBalancerDriver
    if isinstance(lb_config, HttpDriver):
        lb = LoadBalancer(
            http_target("load balancer", settings.lb_url), _path(targets.traffic_split)
        )
    elif isinstance(lb_config, HaproxyDriver):
        api = RuntimeApi(lb_config.socket, lb_config.timeout.total_seconds())
        lb = HaproxyLoadBalancer(lb_config, api)
    else:
        lb = CommandLoadBalancer(lb_config, runner(lb_config.host), redact)

    def state(
        config: HttpDriver | CommandStateDriver, label: str, placeholder: str
    ) -> CommandState:
        assert isinstance(config, CommandStateDriver)
        return CommandState(config, runner(config.host), redact, label, placeholder)

    services: ServiceDriver = (
        ServiceControl(
            http_target("service control", settings.services_url),
            _path(targets.service),
            _path(targets.service_stop),
        )
        if isinstance(drivers.service_control, HttpDriver)
        else state(drivers.service_control, "service control", "service")
    )
    config: SwitchDriver = (
        ConfigService(
            http_target("configuration service", settings.config_url), _path(targets.configuration)
        )
        if isinstance(drivers.configuration_service, HttpDriver)
        else state(drivers.configuration_service, "configuration service", "field")
    )
    flags: SwitchDriver = (
        FeatureFlags(http_target("feature flags", settings.flags_url), _path(targets.feature_flag))
        if isinstance(drivers.feature_flags, HttpDriver)
        else state(drivers.feature_flags, "feature flags", "flag")
    )
    cache = ConfigCache(settings.redis_url, settings.config_cache_db, settings.http_timeout)
    return Drivers(lb, services, config, flags, cache)


def ssh_access(settings: Settings) -> SshAccess:
    return SshAccess(
        key=settings.ssh_key,
        known_hosts=settings.ssh_known_hosts,
        user=settings.ssh_user,
        passphrase=settings.ssh_key_passphrase,
        connect_timeout=settings.ssh_connect_timeout,
    )


def redactor(settings: Settings) -> Redactor:
    """Every secret the worker holds, masked in what a command printed."""
    secrets = [getattr(settings, name, None) for name in SECRET_SETTINGS]
    secrets.append(urlsplit(settings.redis_url).password)
    return Redactor(secrets)


def _path(path: str | None) -> str:
    assert path is not None, "checked when the policy was read (runbook/targets.py)"
    return path
