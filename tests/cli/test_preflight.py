"""`rollback preflight` against real parts: the simulator as every http target and the metrics,
a real redis-server, the Slack stand-in (reached through ROLLBACK_SLACK_API_URL). A team whose
contacts are filled in passes every check; the sprint-1 plan as written (placeholders, no Slack
token) fails with a fix per check; an unknown Slack id, a dead Redis and a bad PagerDuty key
are each named."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cli.main import main
from runbook.loading import DEFAULT_POLICY
from runbook.policy import Person
from simulator import SimulatorServer
from tests.activities.servers import free_port, redis_url
from tests.gateway.slack_standin import SlackCall, SlackServer, SlackStandIn

__all__ = ["redis_url"]

SLACK_IDS = {
    "dri-backend": "U0DRIBACK",
    "dri-search": "U0DRISRCH",
    "qa-dri": "U0QADRI01",
    "sprint-pm": "U0SPRINTPM",
    "eng-manager": "U0ENGMGR1",
    "vp-eng": "U0VPENG01",
    "sre-oncall": "U0SREPAGE",
}
NAMES = {
    "Sprint DRI (Backend)": "Ada Lovelace",
    "Sprint DRI (Search)": "Grace Hopper",
    "QA DRI": "Edsger Dijkstra",
    "Sprint PM": "Barbara Liskov",
    "Engineering Manager": "Ken Thompson",
    "VP Engineering": "Frances Allen",
    "SRE On-call (pager)": "Margaret Hamilton",
}


class SlackWithUsers(SlackStandIn):
    """The stand-in, answering `users.info` from a directory as Slack does."""

    def __init__(self, users: dict[str, dict[str, Any]]) -> None:
        super().__init__()
        self.users = users
        self.url = ""
        """The Web API's base URL, once serving."""

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/api/users.info")
        async def users_info(request: Request) -> JSONResponse:
            form = parse_qs((await request.body()).decode())
            user = form.get("user", [""])[0]
            self.calls.append(SlackCall("users.info", {"user": user}))
            found = self.users.get(user)
            if found is None:
                return JSONResponse({"ok": False, "error": "user_not_found"})
            return JSONResponse({"ok": True, "user": {"id": user, **found}})

        app.mount("/", super().app())
        return app


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorServer]:
    with SimulatorServer({"search-a": 25}, window_seconds=0.3) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[SlackWithUsers]:
    standin = SlackWithUsers({sid: {"real_name": p} for p, sid in SLACK_IDS.items()})
    with SlackServer(standin) as server:
        standin.url = f"{server.url}/api/"
        yield standin


def ready_policy(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """Sprint-1 with its contacts filled in, a signing key for each person and the gateway's
    (whose private half `gateway_key` wrote)."""
    text = DEFAULT_POLICY.read_text()
    keys = {person: new_key(tmp_path / f"{person}.key") for person in SLACK_IDS}
    gateway = new_key(tmp_path / "gateway.key")
    text = text.replace("  gateway_keys: []\n", f"  gateway_keys: [{gateway}]\n", 1)
    for person, line in keys.items():
        text = text.replace(f"  {person}:\n", f"  {person}:\n    signing_keys: [{line}]\n", 1)
    for role_name, person in NAMES.items():
        text = text.replace(f"name: {role_name}\n", f"name: {person}\n", 1)
    text = text.replace("phone: xxx-xxx-xxxx", "phone: +1 555 0100").replace(
        "pager: xxx-xxx-xxxx", "pager: +1 555 0199"
    )
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, simulator: SimulatorServer, redis_url: str
) -> pytest.MonkeyPatch:
    """The worker's settings, as the command reads them: simulator, Redis, short timeouts."""
    for name in [n for n in os.environ if n.startswith("ROLLBACK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ROLLBACK_TARGET_URL", simulator.url)
    monkeypatch.setenv("ROLLBACK_REDIS_URL", redis_url)
    monkeypatch.setenv("ROLLBACK_HTTP_TIMEOUT", "1")
    return monkeypatch


def with_slack(
    env: pytest.MonkeyPatch, slack: SlackWithUsers, tmp_path: Path | None = None
) -> None:
    env.setenv("ROLLBACK_SLACK_BOT_TOKEN", "xoxb-preflight-test")
    env.setenv("ROLLBACK_SLACK_API_URL", slack.url)
    env.setenv("ROLLBACK_SLACK_TEAM_ID", "T0LENS")
    if tmp_path is not None:
        env.setenv("ROLLBACK_GATEWAY_SIGNING_KEY", str(tmp_path / "gateway.key"))


def new_key(path: Path) -> str:
    """An ed25519 OpenSSH key pair: the private half written to `path`, the public line back."""
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def preflight(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["preflight", "-d", "search-a", "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def by_id(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in report["checks"]}


def test_a_ready_team_and_stack_pass_every_check(
    tmp_path: Path,
    simulator: SimulatorServer,
    env: pytest.MonkeyPatch,
    slack: SlackWithUsers,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env.setenv("ROLLBACK_POLICY", str(ready_policy(tmp_path)))
    with_slack(env, slack, tmp_path)
    code, report = preflight(capsys)
    failed = [c for c in report["checks"] if not c["passed"]]
    assert (code, report["passed"], failed) == (0, True, [])
    checks = by_id(report)
    assert {"authority.role.qa_dri", "authority.slack.qa-dri", "tools.slack"} <= set(checks)
    assert checks["authority.slack.qa-dri"]["detail"] == "<@U0QADRI01> is qa-dri"
    assert checks["tools.load_balancer"]["name"] == (
        "Load balancer (http, ssh://lb-primary.lens.com)"
    )
    assert checks["tools.load_balancer"]["detail"] == (
        f"split of search-a: treatment 25% / control 75% (load balancer at {simulator.url})"
    )
    assert checks["tools.service_control"]["detail"] == (
        f"hedging-service running (service control at {simulator.url})"
    )
    assert checks["tools.feature_flags"]["detail"] == (
        f"hedging on, ta_nra_optimization on (feature flags at {simulator.url})"
    )
    assert checks["tools.metrics.metrics"]["detail"] == "7 queries answered"
    assert checks["tools.metrics.variants"]["passed"]
    stages = [checks[f"escalation.stage.{n}"]["detail"] for n in (1, 2, 3)]
    assert stages == ["sre-oncall by Slack", "eng-manager by Slack", "vp-eng by Slack"]


def test_the_plan_as_written_fails_with_a_fix_per_check(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("ROLLBACK_POLICY", str(DEFAULT_POLICY))
    code, report = preflight(capsys)
    assert (code, report["passed"]) == (1, False)
    checks = by_id(report)
    contact = checks["authority.contact.qa-dri"]
    assert not contact["passed"]
    assert contact["detail"] == "QA DRI (QA DRI): placeholder name 'QA DRI', phone 'xxx-xxx-xxxx'"
    assert "people.qa-dri.name, people.qa-dri.phone" in contact["fix"]
    assert not checks["authority.role.qa_dri"]["passed"]
    assert "ROLLBACK_SLACK_BOT_TOKEN" in checks["tools.slack"]["fix"]
    assert not checks["escalation.stage.1"]["passed"]
    assert all(c["fix"] for c in report["checks"] if not c["passed"])
    assert checks["tools.load_balancer"]["passed"], "the targets answer all the same"

    code = main(["preflight", "-d", "search-a"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out and "Tool access" in out
    assert "Preflight failed: " in out


def test_an_unknown_slack_id_and_a_dead_redis_are_named(
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    slack: SlackWithUsers,
    capsys: pytest.CaptureFixture[str],
) -> None:
    del slack.users["U0SREPAGE"]
    env.setenv("ROLLBACK_POLICY", str(ready_policy(tmp_path)))
    env.setenv("ROLLBACK_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    with_slack(env, slack, tmp_path)
    code, report = preflight(capsys)
    assert code == 1
    checks = by_id(report)
    assert checks["authority.slack.sre-oncall"]["detail"] == (
        "<@U0SREPAGE> (Margaret Hamilton): users.info answered user_not_found"
    )
    assert checks["escalation.stage.1"]["passed"] is False
    assert checks["escalation.stage.2"]["passed"] is True
    assert not checks["tools.cache"]["passed"]
    assert "unreachable" in checks["tools.cache"]["detail"]
    assert "ROLLBACK_REDIS_URL" in checks["tools.cache"]["fix"]
    assert [c["id"] for c in report["checks"] if not c["passed"]] == [
        "authority.slack.sre-oncall",
        "escalation.stage.1",
        "tools.cache",
    ]


@pytest.mark.skipif(
    "pagerduty_routing_key" not in Person.model_fields,
    reason="people have no pagerduty_routing_key in this policy schema yet",
)
def test_a_pagerduty_key_must_be_set_and_32_characters(
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    slack: SlackWithUsers,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = "    pager: +1 555 0199\n"
    policy = ready_policy(
        tmp_path, (key, key + "    pagerduty_routing_key: ${PREFLIGHT_TEST_PD_KEY}\n")
    )
    env.setenv("ROLLBACK_POLICY", str(policy))
    env.setenv("ROLLBACK_PAGERDUTY_EVENTS_URL", "http://127.0.0.1:9/")
    with_slack(env, slack, tmp_path)
    env.delenv("PREFLIGHT_TEST_PD_KEY", raising=False)
    _, report = preflight(capsys)
    assert by_id(report)["tools.pagerduty.sre-oncall"]["detail"] == (
        "${PREFLIGHT_TEST_PD_KEY} is not set in this environment"
    )
    env.setenv("PREFLIGHT_TEST_PD_KEY", "too-short")
    _, report = preflight(capsys)
    assert (
        "is not a 32-character Events API v2 integration key"
        in (by_id(report)["tools.pagerduty.sre-oncall"]["detail"])
    )
    env.setenv("PREFLIGHT_TEST_PD_KEY", "a" * 32)
    code, report = preflight(capsys)
    assert code == 0
    assert by_id(report)["escalation.stage.1"]["detail"] == "sre-oncall by Slack and PagerDuty"


def test_a_metrics_query_the_provider_cannot_answer_is_named(
    tmp_path: Path,
    env: pytest.MonkeyPatch,
    slack: SlackWithUsers,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = ready_policy(tmp_path, ("ndcg_at_10: total.ndcg_at_10", "ndcg_at_10: total.ndcg"))
    env.setenv("ROLLBACK_POLICY", str(policy))
    with_slack(env, slack, tmp_path)
    code, report = preflight(capsys)
    assert code == 1
    failed = [c for c in report["checks"] if not c["passed"]]
    assert [c["id"] for c in failed] == ["tools.metrics.metrics"]
    assert failed[0]["detail"].startswith("ndcg_at_10: metrics at ")
    assert "answered without 'total.ndcg'" in failed[0]["detail"]
    assert "metrics.http_json.metrics" in failed[0]["fix"]
