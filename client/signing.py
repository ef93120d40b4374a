"""A person's act signed with their own OpenSSH key, in OpenSSH's signature format (SSHSIG,
what `ssh-keygen -Y sign -n rollback` makes): from a key file (`--key`, ROLLBACK_SIGNING_KEY),
or by the running ssh-agent with the key the policy lists for them. The gateway signs what it
relays from Slack with its own key the same way.

`cryptography` does the cryptography (the keys engineers already have load with it); the
envelope around a signature is OpenSSH's wire format, a few length-prefixed strings.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_ssh_private_key,
)

from runbook.identity import NAMESPACE, Proof, Statement

ARMOR_WIDTH = 76


class SigningError(Exception):
    """The act cannot be signed as asked; the message says what to do."""


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def to_be_signed(text: str) -> bytes:
    """SSHSIG's signed data: the magic, the namespace, and the message's SHA-512."""
    digest = hashlib.sha512(text.encode()).digest()
    return (
        b"SSHSIG"
        + _string(NAMESPACE.encode())
        + _string(b"")
        + _string(b"sha512")
        + _string(digest)
    )


def envelope(public_blob: bytes, signature_blob: bytes) -> str:
    """The armored SSHSIG around a signature of `to_be_signed` by the key `public_blob`."""
    raw = (
        b"SSHSIG"
        + struct.pack(">I", 1)
        + _string(public_blob)
        + _string(NAMESPACE.encode())
        + _string(b"")
        + _string(b"sha512")
        + _string(signature_blob)
    )
    text = base64.b64encode(raw).decode()
    lines = [text[i : i + ARMOR_WIDTH] for i in range(0, len(text), ARMOR_WIDTH)]
    return "\n".join(["-----BEGIN SSH SIGNATURE-----", *lines, "-----END SSH SIGNATURE-----", ""])


class KeySigner:
    """An ed25519 OpenSSH private key, read from its file."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key

    @classmethod
    def from_file(cls, path: Path) -> KeySigner:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise SigningError(f"--key: cannot read {path}: {error.strerror}") from None
        try:
            key = load_ssh_private_key(data, password=None)
        except TypeError:
            raise SigningError(
                f"--key: {path} is protected by a passphrase: add it to your ssh-agent "
                f"(`ssh-add {path}`) and sign without --key"
            ) from None
        except ValueError as error:
            raise SigningError(f"--key: {path} is not an OpenSSH private key ({error})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise SigningError(
                f"--key: {path} is not an ed25519 key: make one with "
                "`ssh-keygen -t ed25519`, or sign through your ssh-agent"
            )
        return cls(key)

    @property
    def public_line(self) -> str:
        return self.key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()

    def sign(self, text: str) -> str:
        public_blob = base64.b64decode(self.public_line.split()[1])
        raw = self.key.sign(to_be_signed(text))
        return envelope(public_blob, _string(b"ssh-ed25519") + _string(raw))


async def sign_with_agent(text: str, allowed: list[str]) -> str | None:
    """Signed by the running ssh-agent with a key among `allowed` (OpenSSH public key lines);
    None when there is no agent or it holds none of them."""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return None
    import asyncssh
    from asyncssh.agent import SSHAgentKeyPair

    wanted = {base64.b64decode(line.split()[1]) for line in allowed if len(line.split()) >= 2}
    try:
        agent = await asyncssh.connect_agent()
    except (OSError, asyncssh.Error):
        return None
    try:
        for key in await agent.get_keys():
            if isinstance(key, SSHAgentKeyPair) and key.public_data in wanted:
                if key.algorithm == b"ssh-rsa":
                    key.set_sig_algorithm(b"rsa-sha2-512")  # SSHSIG's RSA signature
                signature = await key.sign_async(to_be_signed(text))
                return envelope(key.public_data, signature)
    finally:
        agent.close()
    return None


async def sign(statement: Statement, *, key: Path | None, allowed: list[str]) -> Proof:
    """The person's proof: with the key file when one is given (it must be one of `allowed`,
    the person's keys in the policy), else through their ssh-agent."""
    text = statement.text()
    if key is not None:
        signer = KeySigner.from_file(key)
        if signer.public_line.split()[:2] not in [line.split()[:2] for line in allowed]:
            raise SigningError(
                f"--key: {key} is not one of {statement.person}'s signing keys in the policy "
                f"(people.{statement.person}.signing_keys)"
            )
        return Proof(kind="key", statement=text, signature=signer.sign(text))
    if not allowed:
        raise SigningError(
            f"{statement.person} has no signing key in the policy: add your public key "
            f"(~/.ssh/id_ed25519.pub) to people.{statement.person}.signing_keys"
        )
    signed = await sign_with_agent(text, allowed)
    if signed is None:
        raise SigningError(
            "unsigned: identity.cli is signed: give your OpenSSH key with --key PATH (or "
            "ROLLBACK_SIGNING_KEY), or load it in your ssh-agent"
        )
    return Proof(kind="key", statement=text, signature=signed)
