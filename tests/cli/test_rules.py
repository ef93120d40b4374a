"""`rollback rules`: alert rules whose thresholds and `for:` are the policy's, an Alertmanager
configuration that reaches the gateway, both accepted by promtool and amtool, and (where
Prometheus and Alertmanager are installed) an alert that starts a real rollback through them."""

from __future__ import annotations

import asyncio
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import yaml
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from cli.main import main
from config.settings import Settings
from contract.rollback import TRIGGER_SIGNAL, workflow_id
from gateway.alerts import Alert, Routed, route
from gateway.app import create_app
from gateway.temporal_link import TemporalLink
from runbook.durations import parse_duration
from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.policy import Policy
from simulator import SimulatorServer, ThreadedServer
from tests.activities.servers import free_port

POLICY = DEFAULT_POLICY.read_text()
TOKEN = "rules-t0ken"
PROMTOOL = shutil.which("promtool")
AMTOOL = shutil.which("amtool")
PROMETHEUS = shutil.which("prometheus")
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
COMPARISON = re.compile(r"\s(>|>=|<|<=|==)\s(\S+)$")


def rules(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["rules", *args])
    out, err = capsys.readouterr()
    return code, out, err


def written_policy(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = POLICY
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def generate(
    capsys: pytest.CaptureFixture[str], out: Path, policy: Path = DEFAULT_POLICY, *extra: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    options = ["--gateway-url", "http://gateway:8000", "--token", TOKEN, *extra]
    code, _, err = rules(capsys, "--policy", str(policy), "--out", str(out), *options)
    assert code == 0, err
    return (
        yaml.safe_load((out / "rules.yml").read_text()),
        yaml.safe_load((out / "alertmanager.yml").read_text()),
    )


def by_trigger(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (group,) = document["groups"]
    return {rule["labels"]["trigger"]: rule for rule in group["rules"]}


def threshold_of(rule: dict[str, Any]) -> tuple[str, float]:
    found = COMPARISON.search(rule["expr"])
    assert found, rule["expr"]
    return found.group(1), float(found.group(2))


def test_a_rule_per_automated_trigger_with_the_policys_threshold_and_sustain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: Policy
) -> None:
    rules_doc, _ = generate(capsys, tmp_path)
    found = by_trigger(rules_doc)
    automated = {tid for tid, t in policy.triggers.items() if t.kind == "automated"}
    assert automated == {"error_rate", "p99_latency", "resource_exhaustion"}
    found = {t: r for t, r in found.items() if t in automated}
    assert set(found) == automated
    for trigger_id, rule in found.items():
        trigger = policy.triggers[trigger_id]
        assert threshold_of(rule) == (trigger.comparison, trigger.threshold)
        assert parse_duration(rule["for"]) == trigger.sustain
        assert policy.alerts.names[rule["alert"]] == trigger_id
        assert "by (deployment" in rule["expr"]  # the alert keeps its deployment label
    assert [threshold_of(found[t])[1] for t in sorted(found)] == [0.005, 0.15, 0.95]
    assert [found[t]["for"] for t in sorted(found)] == ["2m", "5m", "3m"]


def test_quality_regression_and_every_primary_gate_get_the_watchs_condition(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: Policy
) -> None:
    """Trigger 5 by its threshold; a gate by the negation of its pass condition, held for the
    gate's own sustain, raising the watch's gate trigger with the gate named."""
    found = by_trigger(generate(capsys, tmp_path)[0])
    quality = found["quality_regression"]
    assert threshold_of(quality) == ("<", 0.5184)
    assert quality["for"] == "0s"
    assert "search_ndcg_at_10" in quality["expr"] and 'variant="treatment"' in quality["expr"]
    gate = found[policy.watch.gate_trigger]
    (sla,) = policy.watch.gates
    assert gate["labels"]["gate"] == sla.id == "sla_recall"
    assert threshold_of(gate) == ("<", 0.95)  # passes while >= 0.95: fails below it
    assert parse_duration(gate["for"]) == sla.sustain
    assert gate["alert"] == "RollbackGateSlaRecall"
    assert {quality["labels"]["severity"], gate["labels"]["severity"]} == {"warning"}


def test_a_gate_that_is_not_primary_gets_no_rule_and_a_missing_query_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown_only = written_policy(
        tmp_path, ("      sustain: 5m\n\n", "      sustain: 5m\n      primary: false\n\n")
    )
    found = by_trigger(generate(capsys, tmp_path / "out", shown_only)[0])
    assert "gate_failure" not in found
    no_query = written_policy(
        tmp_path,
        ("      treatment_sla_recall_at_50: >-\n", "      unused_sla_recall: >-\n"),
    )
    code, _, err = rules(
        capsys, "--policy", str(no_query), "--out", str(tmp_path / "x"), "--token", TOKEN
    )
    assert code != 0
    assert "treatment_sla_recall_at_50" in err and "watch.gates.sla_recall" in err


def test_thresholds_and_durations_follow_an_edited_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = written_policy(
        tmp_path,
        ("threshold: 0.005\n", "threshold: 0.02\n"),
        ("sustain: 2m\n", "sustain: 90s\n"),
        ("sustain: 3m\n", "sustain: 1h\n"),
    )
    found = by_trigger(generate(capsys, tmp_path / "out", policy)[0])
    assert threshold_of(found["error_rate"]) == (">", 0.02)
    assert found["error_rate"]["for"] == "1m30s"
    assert found["resource_exhaustion"]["for"] == "1h"


def test_every_generated_alert_routes_to_its_trigger_through_the_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: Policy
) -> None:
    rules_doc, manager = generate(capsys, tmp_path)
    routes = manager["route"]["routes"]
    for trigger_id, rule in by_trigger(rules_doc).items():
        labels = {"alertname": rule["alert"], "deployment": "search-a", **rule["labels"]}
        routed = route(policy, Alert(status="firing", labels=labels), "alertmanager")
        assert isinstance(routed, Routed)
        assert (routed.deployment, routed.event.trigger) == ("search-a", trigger_id)
        assert any(matches(r["matchers"], labels) for r in routes), labels
    assert not any(matches(r["matchers"], {"alertname": "DiskFull"}) for r in routes)


def matches(matchers: list[str], labels: dict[str, str]) -> bool:
    """Alertmanager's `name=~"regex"` matchers (anchored), the only kind written."""
    for matcher in matchers:
        name, pattern = matcher.split("=~", 1)
        if not re.fullmatch(pattern.strip('"'), labels.get(name, "")):
            return False
    return True


def test_the_receiver_posts_to_the_gateways_webhook_with_the_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: Policy
) -> None:
    _, manager = generate(capsys, tmp_path)
    receivers = {r["name"]: r for r in manager["receivers"]}
    assert {r["receiver"] for r in manager["route"]["routes"]} == {"rollback-gateway"}
    (webhook,) = receivers["rollback-gateway"]["webhook_configs"]
    assert webhook["url"] == "http://gateway:8000/alerts/alertmanager"
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials": TOKEN}
    app = create_app(Settings(_env_file=None), policy)
    assert "/alerts/alertmanager" in app.openapi()["paths"]
    mode = stat.S_IMODE((tmp_path / "alertmanager.yml").stat().st_mode)
    assert mode == 0o600, "a file holding the token is its owner's only"


def test_a_token_file_keeps_the_token_out_of_the_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = rules(
        capsys, "--out", str(tmp_path), "--token-file", "/run/secrets/alerts_token"
    )
    assert code == 0, err
    manager = yaml.safe_load((tmp_path / "alertmanager.yml").read_text())
    authorization = manager["receivers"][1]["webhook_configs"][0]["http_config"]["authorization"]
    assert authorization == {"type": "Bearer", "credentials_file": "/run/secrets/alerts_token"}
    assert "token from /run/secrets/alerts_token" in out


def test_the_gateway_url_and_token_default_to_the_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("ROLLBACK_ALERTS_TOKEN", "from-settings")
    monkeypatch.setenv("ROLLBACK_GATEWAY_HOST", "0.0.0.0")
    monkeypatch.setenv("ROLLBACK_GATEWAY_PORT", "8123")
    code, _, err = rules(capsys, "--out", "out")
    assert code == 0, err
    webhook = yaml.safe_load(Path("out/alertmanager.yml").read_text())["receivers"][1][
        "webhook_configs"
    ][0]
    assert webhook["url"] == "http://127.0.0.1:8123/alerts/alertmanager"
    assert webhook["http_config"]["authorization"]["credentials"] == "from-settings"


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert PROMTOOL is not None
    generate(capsys, tmp_path)
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 rules found" in result.stdout


@pytest.mark.skipif(
    AMTOOL is None, reason="amtool is not installed (Debian: prometheus-alertmanager)"
)
@pytest.mark.parametrize("token", [("--token", TOKEN), ("--token-file", "/run/secrets/t")])
def test_amtool_accepts_the_alertmanager_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], token: tuple[str, str]
) -> None:
    assert AMTOOL is not None
    code, _, err = rules(
        capsys, "--out", str(tmp_path), "--gateway-url", "http://gateway:8000", *token
    )
    assert code == 0, err
    result = subprocess.run(
        [AMTOOL, "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- bad input: exit 2 and one line that says what is wrong --------------------------------


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = rules(capsys, *args)
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_a_missing_policy_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    err = refused(capsys, "--policy", str(missing), "--out", str(tmp_path), "--token", "t")
    assert f"{missing}: cannot read" in err


def test_an_invalid_policy_names_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = written_policy(tmp_path, ("    kind: automated\n", "    kind: robotic\n"))
    err = refused(capsys, "--policy", str(bad), "--out", str(tmp_path / "o"), "--token", "t")
    assert f"{bad}: triggers.error_rate.kind:" in err
    assert not (tmp_path / "o").exists()


def test_a_policy_without_the_promql_of_a_trigger_metric(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = written_policy(
        tmp_path,
        (
            "      p99_latency_increase: >-\n        histogram_quantile(0.99, sum by (deployment,",
            "      p99_latency_renamed: >-\n        histogram_quantile(0.99, sum by (deployment,",
        ),
    )
    err = refused(capsys, "--policy", str(bad), "--out", str(tmp_path / "o"), "--token", "t")
    assert (
        f"{bad}: metrics.prometheus.alert_rules: no query for 'p99_latency_increase', "
        "the metric of triggers.p99_latency"
    ) in err


def test_an_alert_rule_query_for_one_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = written_policy(
        tmp_path,
        (
            'max by (deployment) ({__name__=~"search_shard_(cpu|memory)_ratio"})',
            'max(search_shard_cpu_ratio{deployment="{deployment}"})',
        ),
    )
    err = refused(capsys, "--policy", str(bad), "--out", str(tmp_path / "o"), "--token", "t")
    assert f"{bad}: metrics.prometheus.alert_rules.max_shard_utilization: covers every" in err


def test_alert_rules_outside_the_prometheus_block(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = written_policy(
        tmp_path,
        (
            "    url: /metrics/{deployment}\n",
            "    url: /metrics/{deployment}\n    alert_rules: {a: b}\n",
        ),
    )
    err = refused(capsys, "--policy", str(bad), "--out", str(tmp_path / "o"), "--token", "t")
    assert f"{bad}: metrics: alert_rules are PromQL: they belong in the prometheus block" in err


def test_an_out_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.write_text("")
    err = refused(capsys, "--out", str(taken), "--token", "t")
    assert f"--out: cannot create directory {taken}" in err
    err = refused(capsys, "--out", str(taken / "below"), "--token", "t")
    assert f"--out: cannot create directory {taken / 'below'}" in err


def test_an_out_where_a_file_cannot_be_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules.yml").mkdir()
    err = refused(capsys, "--out", str(tmp_path), "--token", "t")
    assert f"--out: cannot write {tmp_path / 'rules.yml'}" in err
    assert not list(tmp_path.glob(".*partial"))


def test_no_token_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLLBACK_ALERTS_TOKEN", raising=False)
    err = refused(capsys, "--out", "out")
    assert "no token for the gateway" in err and "ROLLBACK_ALERTS_TOKEN" in err
    assert not Path("out").exists()


def test_token_and_token_file_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, "--out", str(tmp_path), "--token", "t", "--token-file", "/t")
    assert "--token or --token-file, not both" in err


def test_a_gateway_url_that_is_not_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, "--out", str(tmp_path), "--token", "t", "--gateway-url", "gateway:8000")
    assert "--gateway-url: 'gateway:8000' is not a gateway URL" in err


# --- the whole path: simulator → Prometheus → Alertmanager → gateway → a rollback ------------


@contextmanager
def process(*argv: str) -> Iterator[None]:
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def started_rollback(client: Client, deployment: str, seconds: float) -> bytes:
    """The first trigger signal's payload, once the gateway has started the rollback."""
    handle = client.get_workflow_handle(workflow_id(deployment))
    for _ in range(int(seconds / 0.2)):
        try:
            async for event in handle.fetch_history_events():
                signaled = event.workflow_execution_signaled_event_attributes
                if event.HasField("workflow_execution_signaled_event_attributes"):
                    assert signaled.signal_name == TRIGGER_SIGNAL
                    return b"".join(p.data for p in signaled.input.payloads)
        except RPCError:
            pass  # not started yet
        await asyncio.sleep(0.2)
    raise AssertionError(f"no rollback for {deployment} within {seconds}s")


@pytest.mark.skipif(
    PROMETHEUS is None or ALERTMANAGER is None,
    reason="prometheus and prometheus-alertmanager are not installed",
)
@pytest.mark.timeout(60)
async def test_an_error_rate_alert_starts_the_deployments_rollback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], local_env: WorkflowEnvironment
) -> None:
    """The simulator's 0.05 % error rate is above a policy whose threshold is 0.01 %."""
    assert PROMETHEUS is not None and ALERTMANAGER is not None
    deployment = f"rules-{uuid4().hex[:8]}"
    policy = written_policy(
        tmp_path,
        (
            "threshold: 0.005\n    threshold_unit: ratio of requests\n    sustain: 2m\n",
            "threshold: 0.0001\n    threshold_unit: ratio of requests\n    sustain: 0s\n",
        ),
    )
    settings = Settings(
        _env_file=None,
        temporal_address=local_env.client.service_client.config.target_host,
        alerts_token=TOKEN,
        task_queue=f"tq-{uuid4()}",
        ui_metadata=True,
        policy=policy,
    )
    gateway = ThreadedServer(create_app(settings, load_policy(policy), TemporalLink(settings)))
    am_port, prom_port = free_port(), free_port()
    with SimulatorServer({deployment: 25}) as simulator, gateway:
        code, _, err = rules(
            capsys,
            *("--policy", str(policy), "--out", str(tmp_path)),
            *("--gateway-url", gateway.url, "--token", TOKEN),
        )
        assert code == 0, err
        (tmp_path / "prometheus.yml").write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": ["rules.yml"],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "search",
                            "static_configs": [{"targets": [f"127.0.0.1:{simulator.port}"]}],
                        }
                    ],
                }
            )
        )
        with (
            process(
                ALERTMANAGER,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ),
            process(
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--log.level=warn",
            ),
        ):
            signal = await started_rollback(local_env.client, deployment, seconds=40)
    assert b'"trigger":"error_rate"' in signal.replace(b" ", b"")
    assert b'"source":"alertmanager"' in signal.replace(b" ", b"")
    await local_env.client.get_workflow_handle(workflow_id(deployment)).terminate("test over")
