"""Who acted, proven: what a person's act says, and how the workflow checks who said it.

An act (a trigger, a decision, a wording approval, an acknowledgement) is a `Statement`: its
fields as canonical JSON. From the CLI it is signed by the person's own OpenSSH key (SSHSIG,
the format of `ssh-keygen -Y sign`, in the namespace `rollback`); from Slack it is signed by the
gateway's key, after the gateway verified Slack's signature and workspace, and names the Slack
user and the message clicked. The workflow rebuilds the statement from the act it received and
its own state (the deployment, the run, the open window), and checks the signature against the
keys the policy lists (`people.<id>.signing_keys`, `identity.gateway_keys`): pure computation,
so a workflow may do it, and `rollback report --verify` does it again offline from the history.

Under `identity.cli: asserted` (demo, tests) and in drills, `--as` is taken as said, and every
record says "asserted". A policy recorded before `identity` existed is judged as it was then.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel
from sshsig import InvalidSignature, PublicKey, check_signature

if TYPE_CHECKING:
    from runbook.policy import Policy

NAMESPACE = "rollback"
"""The SSHSIG namespace: a signature made for anything else (git, a file) is not a rollback act."""

Act = Literal["trigger", "decide", "comms", "ack_escalation", "ack_follow_up"]
How = Literal["key", "slack", "asserted"]


class Proof(BaseModel):
    """A signature over an act's statement: the person's (`key`) or the gateway's relaying what
    Slack verified (`slack`)."""

    kind: Literal["key", "slack"]
    statement: str
    """The canonical text that was signed (what a reader of the history sees was signed)."""
    signature: str
    """Armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`)."""


class Statement(BaseModel):
    """What an act says. Fields that do not apply stay empty; `text()` is what is signed."""

    act: Act
    person: str
    deployment: str
    rollback: str = ""
    """The rollback's run id the act was made against ("" for a trigger: it may start one)."""
    window: str = ""
    """The decision window or wording window it answers (its opening instant), or the
    escalation key, or the follow-up id."""
    choice: str = ""
    reason: str = ""
    made_at: str
    request_id: str
    via: str = "cli"
    slack_user: str = ""
    slack_team: str = ""
    message: str = ""
    """Slack: `channel/ts` of the message whose button was clicked."""

    def text(self) -> str:
        return json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Verified:
    """A person's act, with how it was proven: shown next to their name everywhere."""

    person: str
    how: How
    detail: str
    """ "ssh-ed25519 SHA256:…", "Slack U123 in T456", "asserted"."""

    def label(self) -> str:
        return self.detail if self.how != "asserted" else "asserted (not proven)"


@dataclass(frozen=True)
class Refused:
    reason: str
    code: Literal["unsigned", "invalid"]
    """unsigned: no proof, or no key for the person (the CLI exits 2); invalid: the proof does
    not hold (exit 1)."""


def stamp(moment: datetime) -> str:
    """An instant as statements carry it (UTC, microseconds: what the act's `made_at` holds)."""
    return moment.isoformat()


def fingerprint(openssh_line: str) -> str:
    """`ssh-ed25519 SHA256:…`, as `ssh-keygen -lf` names a key."""
    key = PublicKey.from_openssh_str(openssh_line)
    return f"{key.algo_name} {key.sha256_str()}"


def key_problem(openssh_line: str) -> str | None:
    """Why an OpenSSH public key line cannot be used (None: it can)."""
    try:
        PublicKey.from_openssh_str(openssh_line)
    except (ValueError, NotImplementedError) as error:
        return f"not an OpenSSH public key line ({error}): {openssh_line[:40]!r}"
    return None


def verify(
    statement: Statement,
    proof: Proof | None,
    *,
    person_keys: list[str],
    person_slack: str,
    gateway_keys: list[str],
    signed: bool,
) -> Verified | Refused:
    """Whether `proof` proves `statement` was made by `statement.person`.

    `signed`: the policy's `identity.cli` is `signed` (False: asserted, a drill, or a policy
    from before identity: the act is taken as said, and says so)."""
    if proof is None:
        if signed:
            return Refused(
                f"unsigned: {statement.person}'s act must be signed with their key "
                "(identity.cli is signed): `--key PATH` or ROLLBACK_SIGNING_KEY",
                "unsigned",
            )
        return Verified(statement.person, "asserted", "asserted")
    expected = statement.text()
    if proof.statement != expected:
        return Refused(_mismatch(proof.statement, statement), "invalid")
    if proof.kind == "key":
        if not person_keys:
            return Refused(
                f"{statement.person} has no signing key in the policy "
                f"(people.{statement.person}.signing_keys)",
                "unsigned",
            )
        return _by_key(statement, proof, person_keys, "key")
    if statement.slack_user != person_slack or not person_slack:
        return Refused(
            f"the Slack user {statement.slack_user or '?'} is not {statement.person}", "invalid"
        )
    if not gateway_keys:
        return Refused(
            "a Slack act needs the gateway's key in identity.gateway_keys to be proven", "unsigned"
        )
    relayed = _by_key(statement, proof, gateway_keys, "slack")
    if isinstance(relayed, Refused):
        return Refused(f"not relayed by the gateway: {relayed.reason}", "invalid")
    return Verified(
        statement.person, "slack", f"Slack {statement.slack_user} in {statement.slack_team}"
    )


def _by_key(statement: Statement, proof: Proof, keys: list[str], how: How) -> Verified | Refused:
    try:
        signer = check_signature(proof.statement, proof.signature, namespace=NAMESPACE)
    except (InvalidSignature, ValueError, NotImplementedError) as error:
        return Refused(f"the signature does not hold: {error}", "invalid")
    allowed = []
    for line in keys:
        try:
            allowed.append(PublicKey.from_openssh_str(line))
        except (ValueError, NotImplementedError):
            continue
    if signer not in allowed:
        whose = "the gateway's" if how == "slack" else f"{statement.person}'s"
        return Refused(
            f"signed by {signer.algo_name} {signer.sha256_str()}, which is not one of {whose} "
            "keys in the policy",
            "invalid",
        )
    return Verified(statement.person, how, f"{signer.algo_name} {signer.sha256_str()}")


def _mismatch(signed_text: str, expected: Statement) -> str:
    """Which field the signature was made for differs from the act as received."""
    try:
        signed = json.loads(signed_text)
    except ValueError:
        return "the signed statement is not one of ours"
    wanted = expected.model_dump()
    differ = [k for k in sorted(wanted) if signed.get(k) != wanted[k]]
    shown = ", ".join(f"{k} signed {signed.get(k)!r}, act {wanted[k]!r}" for k in differ[:3])
    return f"the signature is for another act ({shown})"


def claimed(proof: Proof | None) -> Statement | None:
    """The statement a proof says it signed (None: no proof, or not one of ours)."""
    if proof is None:
        return None
    try:
        return Statement.model_validate_json(proof.statement)
    except ValueError:
        return None


def fresh(made_at: datetime, now: datetime, within: timedelta) -> bool:
    """A signed act is judged only within `within` of when it was made (a signature captured
    and sent again later is refused)."""
    return now - made_at <= within


def expected(
    act: Act,
    person: str,
    deployment: str,
    proof: Proof | None,
    fields: Mapping[str, str],
    accept: Mapping[str, Collection[str]] | None = None,
) -> Statement:
    """The statement an act should have been signed over, from the act as received. Where the
    signer could rightly name one of several values (`rollback`: any run of this incident;
    `window`: the open one, or none when it could not read it), the signed one is taken when it
    is in `accept`; the Slack user and workspace come from the proof (the gateway verified and
    signed them; the user must be the person's, which `verify` checks)."""
    values = dict(fields)
    signed = claimed(proof)
    if signed is not None:
        for name, allowed in (accept or {}).items():
            if getattr(signed, name) in allowed:
                values[name] = getattr(signed, name)
        if values.get("via") == "slack":
            values.update(slack_user=signed.slack_user, slack_team=signed.slack_team)
    return Statement(act=act, person=person, deployment=deployment, **values)


def check(
    policy: Policy, statement: Statement, proof: Proof | None, *, drill: bool, now: datetime
) -> Verified | Refused:
    """`verify` against the policy's keys, and, when signed, made within `identity.max_age`."""
    person = policy.people.get(statement.person)
    signed = policy.signed(drill)
    verdict = verify(
        statement,
        proof,
        person_keys=list(person.signing_keys) if person else [],
        person_slack=person.slack_user_id if person else "",
        gateway_keys=list(policy.identity.gateway_keys) if policy.identity else [],
        signed=signed,
    )
    if isinstance(verdict, Verified) and signed and policy.identity is not None:
        made = datetime.fromisoformat(statement.made_at)
        if not fresh(made, now, policy.identity.max_age):
            return Refused(
                f"signed at {made:%H:%M:%S} UTC, more than identity.max_age before it reached "
                "the rollback: sign it again",
                "invalid",
            )
    return verdict
