"""Issue 19 on the real dev server, through the real `rollback` command: under `identity.cli:
signed` a person's act counts only when signed by one of their own keys. One OS user without
keys cannot fill a seat, let alone both of a two-person approval; a key of another person is
refused (by the CLI, and by the workflow when the CLI is bypassed); a deny needs its reason; and
the report verifies every signature again from the history. Before, `--as` alone filled both
seats."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from client import operations
from client.signing import KeySigner
from contract.rollback import DecisionInput, RollbackOptions, TriggerEvent
from runbook.identity import Proof, Statement, stamp
from runbook.loading import DEFAULT_POLICY, load_policy
from runbook.policy import Policy
from tests.policies import edited
from tests.workflows.standins import StandIns
from workflows.registry import WORKFLOWS

pytestmark = pytest.mark.timeout(90)


def new_key(path: Path) -> str:
    key = Ed25519PrivateKey.generate()
    path.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()))
    path.chmod(0o600)
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


@dataclass
class Signed:
    client: Client
    env: dict[str, str]
    policy: Policy
    keys: dict[str, Path]
    task_queue: str
    standins: StandIns

    async def cli(self, *args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cli.main",
            *args,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def window(self, deployment: str) -> None:
        await operations.send_trigger(
            self.client,
            task_queue=self.task_queue,
            policy=self.policy,
            deployment=deployment,
            event=TriggerEvent(trigger="quality_regression", source="alertmanager"),
            options=RollbackOptions(ui_metadata=True),
        )
        for _ in range(200):
            try:
                if (await operations.status(self.client, deployment)).state == "awaiting_decision":
                    return
            except Exception:  # not started yet
                pass
            await asyncio.sleep(0.05)
        raise AssertionError("no decision window opened")


@pytest.fixture
async def signed(local_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Signed]:
    """The plan as written (`identity.cli: signed`), with a key for three people."""
    keys = {p: tmp_path / f"{p}.key" for p in ("qa-dri", "dri-search", "dri-backend")}
    changes: dict[str, Any] = {f"people.{p}.signing_keys": [new_key(k)] for p, k in keys.items()}
    policy = edited(load_policy(DEFAULT_POLICY), changes)
    assert policy.signed()
    path = tmp_path / "policy.json"
    path.write_text(policy.model_dump_json())
    task_queue = f"id-{uuid4()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROLLBACK_")}
    env.pop("SSH_AUTH_SOCK", None)  # no agent: only what --key gives signs
    env.update(
        ROLLBACK_TEMPORAL_ADDRESS=local_env.client.service_client.config.target_host,
        ROLLBACK_TASK_QUEUE=task_queue,
        ROLLBACK_POLICY=str(path),
    )
    standins = StandIns(treatment=50)
    async with Worker(
        local_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=standins.activities(),
    ):
        yield Signed(local_env.client, env, policy, keys, task_queue, standins)


async def test_one_user_without_keys_cannot_fill_a_seat_and_two_keys_fill_two(
    signed: Signed,
) -> None:
    deployment = f"search-{uuid4().hex[:8]}"
    await signed.window(deployment)
    keys = signed.keys

    # The finding: one shell, one OS user, `--as` two people. Unsigned, nothing is sent.
    code, _, err = await signed.cli("decide", "-d", deployment, "--approve", "--as", "qa-dri")
    assert code == 2 and "unsigned" in err, err
    # Another person's key: refused by the CLI before anything is sent.
    code, _, err = await signed.cli(
        "decide", "-d", deployment, "--approve", "--as", "dri-search", "--key", str(keys["qa-dri"])
    )
    assert code == 2 and "not one of dri-search's signing keys" in err, err
    # A deny needs its reason.
    code, _, err = await signed.cli(
        "decide", "-d", deployment, "--deny", "--as", "qa-dri", "--key", str(keys["qa-dri"])
    )
    assert code == 2 and "--reason" in err, err

    # Bypassing the CLI (anyone with access to the namespace can send an update): the workflow
    # itself refuses an unsigned decision, and one signed by another person's key.
    now = datetime.now(UTC)
    bare = DecisionInput(action="approve", person="qa-dri", made_at=now, request_id="bare-1")
    refused = await operations.decide(signed.client, deployment, bare)
    assert not refused.accepted and "unsigned" in refused.message
    run = (await signed.client.get_workflow_handle(f"rollback-{deployment}").describe()).run_id
    statement = Statement(
        act="decide",
        person="dri-search",
        deployment=deployment,
        rollback=run or "",
        choice="approve",
        made_at=stamp(now),
        request_id="forged-1",
    )
    text = statement.text()
    forged = DecisionInput(
        action="approve",
        person="dri-search",
        made_at=now,
        request_id="forged-1",
        proof=Proof(kind="key", statement=text, signature=signer(keys["qa-dri"]).sign(text)),
    )
    refused = await operations.decide(signed.client, deployment, forged)
    assert not refused.accepted and "not one of dri-search's keys" in refused.message
    status = await operations.status(signed.client, deployment)
    assert status.decision is not None and status.decision.votes == {}  # nothing counted
    assert [a.how for a in status.acts] == ["refused", "refused"]

    # Each person with their own key: both seats, two people, two keys.
    code, out, err = await signed.cli(
        "decide", "-d", deployment, "--approve", "--as", "qa-dri", "--key", str(keys["qa-dri"])
    )
    assert code == 0 and "waiting for Sprint DRI" in out, out + err
    code, out, err = await signed.cli(
        "decide", "-d", deployment, "--approve", "--as", "dri-search", "--key",
        str(keys["dri-search"]),
    )  # fmt: skip
    assert code == 0 and "approved rollback" in out, out + err
    for _ in range(200):
        status = await operations.status(signed.client, deployment)
        if status.state == "following_up":
            break
        await asyncio.sleep(0.05)
    assert status.decided_by == ["qa-dri", "dri-search"]
    assert status.last_decision is not None
    fingerprints = status.last_decision.proven
    assert fingerprints["qa-dri"].startswith("ssh-ed25519 SHA256:")
    assert fingerprints["dri-search"].startswith("ssh-ed25519 SHA256:")
    assert fingerprints["qa-dri"] != fingerprints["dri-search"]

    # The report verifies every signature again, offline, from the history.
    code, out, err = await signed.cli("report", "-d", deployment, "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    checks = report["signatures"]
    assert [(c["person"], c["holds"]) for c in checks if c["holds"]] == [
        ("qa-dri", True),
        ("dri-search", True),
    ]
    assert [c for c in checks if not c["holds"]] == [
        c for c in checks if c["person"] == "dri-search" and not c["holds"]
    ]  # only the forged one fails
    assert {a["how"] for a in report["acts"]} == {"refused", "key"}
    await signed.client.get_workflow_handle(f"rollback-{deployment}").terminate("test over")


async def test_a_signed_trigger_counts_and_an_unsigned_one_is_not_sent(signed: Signed) -> None:
    deployment = f"search-{uuid4().hex[:8]}"
    args = ("trigger", "-d", deployment, "-t", "operational_anomaly", "-r", "odd", "--as")
    code, _, err = await signed.cli(*args, "dri-search")
    assert code == 2 and "unsigned" in err, err
    key = str(signed.keys["dri-search"])
    code, out, err = await signed.cli(*args, "dri-search", "--key", key, "--format", "json")
    assert code == 0, out + err
    assert json.loads(out)["accepted"] is True
    status = await operations.status(signed.client, deployment)
    [act] = status.acts
    assert (act.act, act.person, act.how) == ("trigger", "dri-search", "key")
    code, out, err = await signed.cli("report", "-d", deployment)
    assert code == 0, err
    assert "by ?" not in out  # the raise names its person (it said "raise_trigger by ?")
    raised = [line for line in out.splitlines() if "raised:" in line]
    assert raised and "by Sprint DRI (Search) (dri-search)" in raised[0], raised
    await signed.client.get_workflow_handle(f"rollback-{deployment}").terminate("test over")


def signer(path: Path) -> KeySigner:
    return KeySigner.from_file(path)
