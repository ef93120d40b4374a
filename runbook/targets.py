"""How each target of Phase 1 is driven: the policy's `targets.drivers`.

The plan's System Access section names three places (the load balancer, the configuration
service, the monitoring dashboard) and its steps name the commands run there. A team picks, per
kind of action, one driver:

- `http`: the simulator's JSON protocol (paths in `targets`, base URLs in `ROLLBACK_…_URL`);
- `haproxy` (load balancer only): HAProxy's Runtime API on its stats socket, the split being the
  weights of the backend's treatment and control servers;
- `command`: the plan's own commands, run locally or on a host over SSH, each with a read-back
  command that says whether the action's end state already holds;
- `redis` (cache only): `FLUSHDB` on the configuration cache's database.

Only the shape lives here; the drivers themselves are in `activities/drivers/`. Credentials
(SSH key, known_hosts, tokens) are settings, never policy: every rollback's history carries it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from runbook.durations import PositiveDuration
from runbook.schema import PolicyModel, judged

SSH_HOST = re.compile(r"^ssh://(?:(?P<user>[^@/:\s]+)@)?(?P<host>[^@/:\s]+)(?::(?P<port>\d+))?/?$")
"""`ssh://[user@]host[:port]`, the plan's form (`ssh://lb-primary.lens.com`)."""
TCP_SOCKET = re.compile(r"^tcp://(?P<host>[^/:\s]+):(?P<port>\d+)$")
LOCAL = "local"
PLACEHOLDERS = ("deployment", "service", "flag", "field", "key")
"""What a command may name: `{deployment}`, the action's `{service}`, `{flag}` or `{field}`,
and `{key}`, the action's idempotency key (the same on every retry)."""


def _compiles(pattern: Any, info: ValidationInfo) -> Any:
    if not judged(info) or not isinstance(pattern, str):
        return pattern
    try:
        re.compile(pattern)
    except re.error as error:
        raise ValueError(f"is not a valid regular expression ({error}): {pattern!r}") from None
    return pattern


Regex = Annotated[str, BeforeValidator(_compiles)]


class Command(PolicyModel):
    """One command line. Placeholders are shell-quoted when filled in, so a name can never
    become a second command."""

    run: str = Field(min_length=1)
    exit_codes: list[int] = Field(default=[0], min_length=1)
    """Exit codes that mean the command did its job (`systemctl is-active` answers 3 when a
    service is stopped)."""
    expect: Regex | None = None
    """A regular expression the output (stdout and stderr) must contain."""
    timeout: PositiveDuration = timedelta(seconds=5)
    """Keep it under the step's budget: the step's attempt is cut at its budget."""

    @field_validator("run")
    @classmethod
    def _known_placeholders(cls, run: str, info: ValidationInfo) -> str:
        if not judged(info):
            return run
        unknown = sorted(set(re.findall(r"\{(\w+)\}", run)) - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(
                f"names unknown placeholder(s) {', '.join(unknown)} "
                f"(known: {', '.join(PLACEHOLDERS)})"
            )
        return run


class SplitRead(Command):
    """The load balancer's read-back: its output holds the split."""

    pattern: Regex
    """A regular expression with the groups `treatment` and `control` (percent), e.g.
    `treatment=(?P<treatment>\\d+) control=(?P<control>\\d+)`."""

    @field_validator("pattern")
    @classmethod
    def _names_both_shares(cls, pattern: str, info: ValidationInfo) -> str:
        if not judged(info):
            return pattern
        groups = set(re.compile(pattern).groupindex)
        missing = sorted({"treatment", "control"} - groups)
        if missing:
            raise ValueError(f"needs the named group(s) {', '.join(missing)}: {pattern!r}")
        return pattern


class StateRead(Command):
    """A read-back that says whether the action's end state holds (stopped, off)."""

    done: Regex
    """Output matching this means the end state holds (e.g. `^(inactive|failed)$` for
    `systemctl is-active`); anything else means the action is still to do."""


class _Described(PolicyModel):
    access: str | None = None
    """Where the plan says the target is (its System Access line), shown by `rollback
    preflight` and in errors; no effect on how it is reached."""


def _host(value: Any, info: ValidationInfo) -> Any:
    if not judged(info) or not isinstance(value, str):
        return value
    if value != LOCAL and not SSH_HOST.match(value):
        raise ValueError(f"must be `local` or ssh://[user@]host[:port], got {value!r}")
    return value


Host = Annotated[str, BeforeValidator(_host)]


class HttpDriver(_Described):
    """Today's protocol: the paths of `targets` on the target's `ROLLBACK_…_URL`."""

    driver: Literal["http"] = "http"


class HaproxyDriver(_Described):
    """HAProxy's Runtime API. Treatment and control are two servers of one backend; the split is
    their weights (`set server <backend>/<server> weight N`), read back with `get weight`."""

    driver: Literal["haproxy"]
    socket: str
    """The stats socket, `level admin`: a UNIX socket path (`/run/haproxy/admin.sock`) or
    `tcp://host:port`."""
    backend: str = Field(min_length=1)
    """`{deployment}` is replaced, so one backend per deployment works too."""
    treatment_server: str = "treatment"
    control_server: str = "control"
    control_weight: int = Field(default=100, ge=1, le=256)
    """The weight control is given when it has none (0) at the emergency stop; a control that
    has a weight keeps it."""
    timeout: PositiveDuration = timedelta(seconds=2)

    @field_validator("socket")
    @classmethod
    def _socket_form(cls, socket: str, info: ValidationInfo) -> str:
        if not judged(info):
            return socket
        if not (socket.startswith("/") or TCP_SOCKET.match(socket)):
            raise ValueError(f"must be a UNIX socket path or tcp://host:port, got {socket!r}")
        return socket


class CommandSplitDriver(_Described):
    """The plan's `traffic-split` on the load balancer (`host`), read back by `read`."""

    driver: Literal["command"]
    host: Host = LOCAL
    read: SplitRead
    act: Command


class CommandStateDriver(_Described):
    """A service, the configuration or the flags through commands on `host`: `read` says
    whether the end state holds, `act` gets there (only when it does not hold yet)."""

    driver: Literal["command"]
    host: Host = LOCAL
    read: StateRead
    act: Command


class RedisDriver(_Described):
    """The configuration cache: `FLUSHDB` on `ROLLBACK_CONFIG_CACHE_DB` at `ROLLBACK_REDIS_URL`."""

    driver: Literal["redis"] = "redis"


def _http_by_default(value: Any) -> Any:
    """A driver block without `driver:` is the http one (the sprint-1 protocol)."""
    if isinstance(value, dict) and "driver" not in value:
        return {**value, "driver": "http"}
    return value


LoadBalancerDriver = Annotated[
    HttpDriver | HaproxyDriver | CommandSplitDriver,
    BeforeValidator(_http_by_default),
    Field(discriminator="driver"),
]
StateDriver = Annotated[
    HttpDriver | CommandStateDriver,
    BeforeValidator(_http_by_default),
    Field(discriminator="driver"),
]


class TargetDrivers(PolicyModel):
    """One driver per kind of Phase 1 action; all http (and redis) unless the policy says."""

    load_balancer: LoadBalancerDriver = HttpDriver()
    """Step 1, `traffic-split --treatment 0 --control 100`; also the live split read at
    trigger time (the canary's phase)."""
    service_control: StateDriver = HttpDriver()
    """Step 2, `systemctl stop <service>`, once per `services_to_stop`."""
    configuration_service: StateDriver = HttpDriver()
    """Step 2, `config-update --disable-early-stop` (`early_stop_field`)."""
    feature_flags: StateDriver = HttpDriver()
    """Step 2, `feature-flag --disable <flag>`, once per `flags_to_disable`."""
    cache: RedisDriver = RedisDriver()
    """Step 2, `redis-cli FLUSHDB` on the configuration cache only."""

    @model_validator(mode="after")
    def _haproxy_servers_differ(self, info: ValidationInfo) -> TargetDrivers:
        if not judged(info):
            return self
        lb = self.load_balancer
        if isinstance(lb, HaproxyDriver) and lb.treatment_server == lb.control_server:
            raise ValueError("load_balancer: treatment_server and control_server must differ")
        return self


HTTP_PATHS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "load_balancer": ("traffic_split",),
        "service_control": ("service", "service_stop"),
        "configuration_service": ("configuration",),
        "feature_flags": ("feature_flag",),
    }
)
"""The `targets` paths each http driver needs."""
HTTP_PATH_NAMES = tuple(name for names in HTTP_PATHS.values() for name in names)


def missing_http_paths(drivers: TargetDrivers, paths: dict[str, str | None]) -> list[str]:
    """`targets` paths an http driver needs but the policy does not give, as problems."""
    problems = []
    for kind, names in HTTP_PATHS.items():
        if getattr(drivers, kind).driver != "http":
            continue
        for name in names:
            if not paths.get(name):
                problems.append(f"{name} is required: drivers.{kind} is http")
    return problems
