"""`rollback preflight`: the plan's pre-deployment validation, run before a canary (and by
`rollback drill` before it rehearses). Authority confirmation (runbook/readiness.py, and Slack's
`users.info` for every Slack id), tool access (each Phase 1 target answers a read-only call
through its driver with the worker's credentials, Redis, Slack `auth.test`, PagerDuty routing
keys, every metrics query of the policy), and the escalation path reachable.

Nothing here changes a target: the calls are the drivers' reads (`show servers state`,
`systemctl is-active`, GETs), `DBSIZE`, and Slack's read-only methods.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from temporalio.exceptions import ApplicationError

from activities.drivers.build import Drivers, build_drivers
from activities.drivers.haproxy import HaproxyLoadBalancer
from activities.metrics import MetricsProvider, build_provider
from activities.targets import Target, substitute
from client.signing import KeySigner, SigningError
from runbook.policy import MetricQuery, Policy, Targets
from runbook.readiness import Check, authority_checks, identity_checks

if TYPE_CHECKING:
    from config.settings import Settings

SLACK_API = "https://slack.com/api/"
ROUTING_KEY = re.compile(r"^[A-Za-z0-9]{32}$")
ENV_REFERENCE = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)\}$")
VARIANTS = ("treatment", "control")


async def run_preflight(settings: Settings, policy: Policy, deployment: str) -> list[Check]:
    """Every check, in the order the plan lists them; `passed` on each. Never raises for a
    target that is down or refuses: that is a failed check, with its fix."""
    checks = authority_checks(policy) + identity_checks(policy) + gateway_checks(settings, policy)
    async with httpx.AsyncClient(timeout=settings.http_timeout) as http:
        slack = await _slack_checks(settings, policy, http)
        checks += slack.checks
        pager = _pagerduty_checks(settings, policy)
        checks += pager.values()
        paged = {person for person, check in pager.items() if check.passed}
        checks += _escalation_checks(policy, slack.reachable, paged)
        checks += await _tool_checks(settings, policy, deployment, http)
    return checks


def gateway_checks(settings: Settings, policy: Policy) -> list[Check]:
    """The gateway's own settings for proven Slack acts: its key (whose public half the policy
    lists) and the one Slack workspace it serves."""
    if not policy.signed():
        return []
    listed = [
        " ".join(k.split()[:2]) for k in (policy.identity.gateway_keys if policy.identity else [])
    ]
    path = settings.gateway_signing_key
    if path is None:
        key = Check(
            id="identity.gateway_signing_key",
            area="identity",
            name="The gateway's signing key",
            passed=False,
            detail="ROLLBACK_GATEWAY_SIGNING_KEY is not set: Slack acts would be relayed unsigned",
            fix="make one with `ssh-keygen -t ed25519 -N '' -f gateway_key` and set "
            "ROLLBACK_GATEWAY_SIGNING_KEY to its path",
        )
    else:
        try:
            public = " ".join(KeySigner.from_file(path).public_line.split()[:2])
            ok = public in listed
            detail = (
                f"{path}: its public half is in identity.gateway_keys"
                if ok
                else f"{path}: its public half is not in identity.gateway_keys"
            )
        except SigningError as error:
            ok, detail = False, str(error)
        key = Check(
            id="identity.gateway_signing_key",
            area="identity",
            name="The gateway's signing key",
            passed=ok,
            detail=detail,
            fix=f"add `ssh-keygen -y -f {path}` to identity.gateway_keys",
        )
    team = Check(
        id="identity.slack_team",
        area="identity",
        name="The Slack workspace served",
        passed=bool(settings.slack_team_id),
        detail=f"clicks from workspace {settings.slack_team_id} only"
        if settings.slack_team_id
        else "ROLLBACK_SLACK_TEAM_ID is not set: a click from any workspace would be taken",
        fix="set ROLLBACK_SLACK_TEAM_ID to your workspace's id (T…)",
    )
    return [key, team]


def all_passed(checks: list[Check]) -> bool:
    return all(check.passed for check in checks)


# --- Slack ---------------------------------------------------------------------------------


@dataclass
class SlackResult:
    checks: list[Check]
    reachable: set[str]
    """Slack user ids `users.info` confirmed (a real, active, human account)."""


async def _slack_checks(settings: Settings, policy: Policy, http: httpx.AsyncClient) -> SlackResult:
    """`auth.test` for the bot token, then `users.info` for every person's Slack id, through
    ROLLBACK_SLACK_API_URL when it is set (a stand-in, a proxy)."""
    base = (settings.slack_api_url or SLACK_API).rstrip("/") + "/"
    token = settings.slack_bot_token
    if not token:
        return SlackResult([NO_SLACK_TOKEN], set())
    slack = _Slack(http, base, token)
    auth = await slack.call("auth.test")
    checks = [
        Check(
            id="tools.slack",
            area="tools",
            name="Slack auth.test",
            passed=bool(auth.get("ok")),
            detail=f"bot {auth.get('user', '?')} in {auth.get('team', '?')} at {base}"
            if auth.get("ok")
            else f"{base}auth.test answered {auth.get('error')}",
            fix=""
            if auth.get("ok")
            else "check ROLLBACK_SLACK_BOT_TOKEN (and ROLLBACK_SLACK_API_URL, when set); "
            "reinstall the app if the token was revoked",
        )
    ]
    if not auth.get("ok"):
        return SlackResult(checks, set())
    reachable: set[str] = set()
    for person_id in policy.people:
        check = _slack_person(
            policy, person_id, await slack.user(policy.people[person_id].slack_user_id)
        )
        if check.passed:
            reachable.add(policy.people[person_id].slack_user_id)
        checks.append(check)
    return SlackResult(checks, reachable)


NO_SLACK_TOKEN = Check(
    id="tools.slack",
    area="tools",
    name="Slack",
    passed=False,
    detail="no bot token: decisions, escalations and notices would reach only the worker's "
    "console, and no Slack id can be confirmed",
    fix="set ROLLBACK_SLACK_BOT_TOKEN (xoxb-…) of the app installed in the team's workspace",
)


class _Slack:
    """Slack's Web API, read-only methods, answers as Slack gives them (`ok`, `error`)."""

    def __init__(self, http: httpx.AsyncClient, base: str, token: str) -> None:
        self.http = http
        self.base = base
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, **form: str) -> dict[str, Any]:
        try:
            answer = await self.http.post(self.base + method, data=form, headers=self.headers)
            data = answer.json()
        except httpx.HTTPError as error:
            return {"ok": False, "error": f"unreachable: {error or type(error).__name__}"}
        except ValueError:
            return {"ok": False, "error": f"HTTP {answer.status_code}: {answer.text[:200]}"}
        if not isinstance(data, dict) or "ok" not in data:
            return {"ok": False, "error": f"HTTP {answer.status_code}: {answer.text[:200]}"}
        return data

    async def user(self, slack_user_id: str) -> dict[str, Any]:
        return await self.call("users.info", user=slack_user_id)


def _slack_person(policy: Policy, person_id: str, info: dict[str, Any]) -> Check:
    person = policy.people[person_id]
    user = info.get("user")
    if not info.get("ok"):
        problem: str | None = f"users.info answered {info.get('error')}"
    elif not isinstance(user, dict):
        problem = "users.info answered without a user"
    elif user.get("deleted"):
        problem = "the account is deactivated"
    elif user.get("is_bot"):
        problem = "it is a bot, not a person"
    else:
        problem = None
    if problem is None and isinstance(user, dict):
        return Check(
            id=f"authority.slack.{person_id}",
            area="authority",
            name=f"Slack id of {person_id}",
            passed=True,
            detail=f"<@{person.slack_user_id}> is {user.get('real_name') or user.get('name')}",
        )
    return Check(
        id=f"authority.slack.{person_id}",
        area="authority",
        name=f"Slack id of {person_id}",
        passed=False,
        detail=f"<@{person.slack_user_id}> ({person.name}): {problem}",
        fix=f"put {person.name}'s member id (Slack profile → ⋮ → Copy member ID) in "
        f"people.{person_id}.slack_user_id",
    )


# --- PagerDuty -----------------------------------------------------------------------------


def _pagerduty_checks(settings: Settings, policy: Policy) -> dict[str, Check]:
    """Per person with a routing key: its shape (a `${VAR}` resolved in this environment, as
    the worker resolves it), and PagerDuty configured at all."""
    results: dict[str, Check] = {}
    events_url = getattr(settings, "pagerduty_events_url", None)
    for person_id, person in policy.people.items():
        reference = getattr(person, "pagerduty_routing_key", None)
        if not reference:
            continue
        env = ENV_REFERENCE.match(reference)
        key = os.environ.get(env[1]) if env else reference
        if env and key is None:
            problem = f"{reference} is not set in this environment"
            fix = f"export {env[1]} (the 32-character integration key) for the worker"
        elif not ROUTING_KEY.match(key or ""):
            shown = reference if env is None else f"{reference} (= {len(key or '')} characters)"
            problem = f"{shown} is not a 32-character Events API v2 integration key"
            fix = "copy the integration key of the person's PagerDuty service (Events API v2)"
        elif not events_url:
            problem = "PagerDuty is not configured: escalations would not page"
            fix = "set ROLLBACK_PAGERDUTY_EVENTS_URL=https://events.pagerduty.com"
        else:
            problem, fix = None, ""
        results[person_id] = Check(
            id=f"tools.pagerduty.{person_id}",
            area="tools",
            name=f"PagerDuty key of {person_id}",
            passed=problem is None,
            detail="32-character integration key" if problem is None else problem,
            fix=fix,
        )
    return results


def _escalation_checks(policy: Policy, on_slack: set[str], paged: set[str]) -> list[Check]:
    """Each stage of the escalation path has someone a message or a page reaches."""
    checks = []
    for stage, role in enumerate(policy.escalation_path, start=1):
        holders = policy.people_with_role(role)
        ways = {
            p: [
                way
                for way, ok in (
                    ("Slack", policy.people[p].slack_user_id in on_slack),
                    ("PagerDuty", p in paged),
                )
                if ok
            ]
            for p in holders
            if p in policy.people
        }
        reached = {p: w for p, w in ways.items() if w}
        checks.append(
            Check(
                id=f"escalation.stage.{stage}",
                area="escalation",
                name=f"Escalation stage {stage}: {policy.role_name(role)}",
                passed=bool(reached),
                detail=(
                    ", ".join(f"{p} by {' and '.join(w)}" for p, w in reached.items())
                    if reached
                    else f"nobody reachable: {', '.join(holders) or 'no holder'} (Slack id "
                    "unconfirmed, no working PagerDuty key)"
                ),
                fix=""
                if reached
                else f"give a holder of {role} a confirmed Slack id (see the Slack checks) or "
                "a PagerDuty routing key",
            )
        )
    return checks


# --- tool access ---------------------------------------------------------------------------


async def _tool_checks(
    settings: Settings, policy: Policy, deployment: str, http: httpx.AsyncClient
) -> list[Check]:
    if policy.targets is None or policy.metrics is None:
        missing = " and ".join(n for n in ("targets", "metrics") if getattr(policy, n) is None)
        return [
            Check(
                id="tools.policy",
                area="tools",
                name="Targets",
                passed=False,
                detail=f"the policy has no {missing} section: nothing to act on or read",
                fix="add them (see policies/sprint-1.yaml and policies/examples/)",
            )
        ]

    def target(name: str, url: str | None) -> Target:
        return Target(http, name, url or settings.target_url, settings.target_token)

    drivers = build_drivers(settings, policy.targets, target)
    try:
        checks = await _target_checks(policy.targets, drivers, deployment)
        provider = build_provider(
            policy.metrics,
            target("metrics", settings.metrics_url),
            target("prometheus", settings.prometheus_url),
        )
        checks += await _metrics_checks(policy, provider, deployment)
    finally:
        await drivers.cache.aclose()
    return checks


async def _target_checks(targets: Targets, drivers: Drivers, deployment: str) -> list[Check]:
    kinds = targets.drivers

    async def split() -> str:
        read = await drivers.lb.read(deployment)
        text = f"split of {deployment}: treatment {read.treatment}% / control {read.control}%"
        if isinstance(drivers.lb, HaproxyLoadBalancer):
            level = await drivers.lb.level()
            if level != "admin":
                raise ApplicationError(
                    f"{drivers.lb.where} is at level {level!r}: the emergency stop's `set "
                    "server … weight` needs `level admin` on this stats socket"
                )
        return text

    async def services() -> str:
        states = [
            f"{s} {'stopped' if await drivers.services.is_stopped(deployment, s) else 'running'}"
            for s in targets.services_to_stop
        ]
        return ", ".join(states) or "no service to stop"

    async def config() -> str:
        off = await drivers.config.is_off(deployment, targets.early_stop_field)
        return f"{targets.early_stop_field} {'off' if off else 'on'}"

    async def flags() -> str:
        states = [
            f"{f} {'off' if await drivers.flags.is_off(deployment, f) else 'on'}"
            for f in targets.flags_to_disable
        ]
        return ", ".join(states) or "no flag to disable"

    async def cache() -> str:
        keys = await drivers.cache.probe()
        return f"{keys} key(s)"

    probes: list[tuple[str, str, Any, str, Callable[[], Awaitable[str]]]] = [
        ("load_balancer", "Load balancer", kinds.load_balancer, drivers.lb.where, split),
        (
            "service_control",
            "Service control",
            kinds.service_control,
            drivers.services.where,
            services,
        ),
        (
            "configuration_service",
            "Configuration service",
            kinds.configuration_service,
            drivers.config.where,
            config,
        ),
        ("feature_flags", "Feature flags", kinds.feature_flags, drivers.flags.where, flags),
        ("cache", "Configuration cache", kinds.cache, drivers.cache.where, cache),
    ]
    return list(await asyncio.gather(*(_probe(*probe) for probe in probes)))


async def _probe(
    kind: str, name: str, config: Any, where: str, read: Callable[[], Awaitable[str]]
) -> Check:
    """One driver's read-only call; its failure, whatever it is, is a failed check."""
    access = f", {config.access}" if config.access else ""
    check = Check(
        id=f"tools.{kind}",
        area="tools",
        name=f"{name} ({config.driver}{access})",
        passed=True,
        detail="",
    )
    try:
        return check.model_copy(update={"detail": f"{await read()} ({where})"})
    except ApplicationError as error:
        detail = error.message
    except Exception as error:  # a driver's bug must not hide the other checks
        detail = f"{where}: {type(error).__name__}: {error}"
    return check.model_copy(update={"passed": False, "detail": detail, "fix": FIXES[config.driver]})


FIXES = {
    "http": "check the target's ROLLBACK_…_URL (or ROLLBACK_TARGET_URL), ROLLBACK_TARGET_TOKEN "
    "and the policy's targets paths",
    "haproxy": "HAProxy must run with `stats socket … level admin` in its global section, "
    "readable and writable by the worker's user; check the backend and server names",
    "command": "check ROLLBACK_SSH_KEY, ROLLBACK_SSH_KNOWN_HOSTS and that the read command runs "
    "on the host as that user (sudo -n rules for systemctl)",
    "redis": "check ROLLBACK_REDIS_URL (password included) and ROLLBACK_CONFIG_CACHE_DB",
}


async def _metrics_checks(
    policy: Policy, provider: MetricsProvider, deployment: str
) -> list[Check]:
    """One check per section of the provider's block: every query answered."""
    assert policy.metrics is not None
    source = policy.metrics.source()
    where = f"metrics.{policy.metrics.provider}"
    sections: dict[str, dict[str, MetricQuery]] = {
        "metrics": dict(source.metrics),
        "baselines": dict(source.baselines),
        "variants": {
            f"{name}[{variant}]": q.model_copy(
                update={"query": substitute(q.query, {"variant": variant})}
            )
            for name, q in source.variants.items()
            for variant in VARIANTS
        },
    }
    checks = []
    for section, queries in sections.items():
        if not queries:
            continue
        answers = await asyncio.gather(
            *(_answer(provider, deployment, n, q) for n, q in queries.items())
        )
        failed: dict[str, list[str]] = {}
        for name, error, _ in answers:
            if error is not None:
                failed.setdefault(error, []).append(name)
        empty = [name for name, error, value in answers if error is None and value is None]
        if failed:
            # One line per distinct error: an unreachable provider fails every query alike.
            detail = "; ".join(f"{', '.join(names)}: {error}" for error, names in failed.items())
        else:
            detail = f"{len(queries)} queries answered" + (
                f" ({len(empty)} with no data yet: {', '.join(empty)})" if empty else ""
            )
        checks.append(
            Check(
                id=f"tools.metrics.{section}",
                area="tools",
                name=f"Metrics {where}.{section} ({deployment})",
                passed=not failed,
                detail=detail,
                fix=""
                if not failed
                else f"fix the queries named in {where}.{section}, or the provider's URL "
                "(ROLLBACK_METRICS_URL / ROLLBACK_PROMETHEUS_URL)",
            )
        )
    return checks


async def _answer(
    provider: MetricsProvider, deployment: str, name: str, query: MetricQuery
) -> tuple[str, str | None, float | None]:
    """(name, the error or None, the value or None while there is no data yet)."""
    try:
        values = await provider.query(deployment, {name: query})
    except ApplicationError as error:
        return name, error.message, None
    return name, None, values.get(name)
