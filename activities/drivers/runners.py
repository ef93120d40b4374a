"""Where the `command` driver runs the plan's commands: on the worker's host, or on a host over
SSH (asyncssh), its host key verified against a known_hosts file and the key from the settings.

One session per action (read, act, read back on one connection), opened and closed by the
action itself: nothing is shared between actions or left open when the worker stops, and a
retry starts on a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from activities.targets import rejected, unavailable
from runbook.targets import LOCAL, SSH_HOST

if TYPE_CHECKING:
    import asyncssh

EXCERPT = 300


@dataclass(frozen=True)
class Ran:
    command: str
    exit_status: int | None
    """None: killed by a signal, or the connection dropped before it said."""
    output: str
    """stdout and stderr, interleaved as printed."""


class Session(Protocol):
    async def run(self, command: str, within: float) -> Ran: ...


class Runner(Protocol):
    where: str
    """`local` or `ssh://user@host:port`, as errors and results name it."""

    def session(self) -> contextlib.AbstractAsyncContextManager[Session]: ...


def excerpt(output: str) -> str:
    """The end of an output, on one line: what a person needs to see is usually last."""
    text = " ".join(output.split())
    return text if len(text) <= EXCERPT else "…" + text[-EXCERPT:]


class LocalRunner:
    """Commands run by `/bin/sh -c` on the worker's host, as the worker's user."""

    where = LOCAL

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        yield self

    async def run(self, command: str, within: float) -> Ran:
        try:
            process = await asyncio.create_subprocess_shell(
                command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as error:
            raise unavailable(f"local: cannot start `{command}`: {error}") from None
        try:
            out, _ = await asyncio.wait_for(process.communicate(), within)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise unavailable(
                f"local: `{command}` did not finish within {within:g} s (killed); raise its "
                "timeout in the policy if it is slow, or find what it waits for"
            ) from None
        return Ran(command, process.returncode, out.decode(errors="replace"))


@dataclass(frozen=True)
class SshAccess:
    """The worker's credentials for every ssh:// host (settings, never the policy)."""

    key: Path | None
    known_hosts: Path
    user: str | None = None
    passphrase: str | None = None
    connect_timeout: float = 5.0


class SshRunner:
    def __init__(self, host: str, access: SshAccess) -> None:
        parsed = SSH_HOST.match(host)
        if parsed is None:
            raise ValueError(f"not an ssh:// host: {host!r}")
        self.host = parsed["host"]
        self.port = int(parsed["port"] or 22)
        self.user = parsed["user"] or access.user or getpass.getuser()
        self.access = access
        self.where = f"ssh://{self.user}@{self.host}:{self.port}"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        connection = await self._connect()
        try:
            yield _SshSession(connection, self.where)
        finally:
            connection.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.wait_closed(), 2)

    async def _connect(self) -> asyncssh.SSHClientConnection:
        import asyncssh  # on first use: it and cryptography cost every process ~0.15 s to load

        access = self.access
        known_hosts = access.known_hosts.expanduser()
        if not known_hosts.is_file():
            raise rejected(
                f"{self.where}: no known_hosts file at {known_hosts}, so the host key cannot "
                "be verified; set ROLLBACK_SSH_KNOWN_HOSTS to a file holding the host's key "
                f"(check the fingerprint, then: ssh-keyscan -p {self.port} {self.host} >> FILE)"
            )
        if access.key is None:
            raise rejected(
                f"{self.where}: no SSH key configured; set ROLLBACK_SSH_KEY to the private key "
                "whose public half is in the host's authorized_keys"
            )
        key = access.key.expanduser()
        if not key.is_file():
            raise rejected(f"{self.where}: the SSH key {key} (ROLLBACK_SSH_KEY) does not exist")
        try:
            return await asyncssh.connect(
                self.host,
                self.port,
                username=self.user,
                client_keys=[str(key)],
                passphrase=access.passphrase,
                known_hosts=str(known_hosts),
                agent_path=None,
                config=None,
                password=None,
                kbdint_auth=False,
                connect_timeout=access.connect_timeout,
            )
        except asyncssh.HostKeyNotVerifiable as error:
            raise rejected(
                f"{self.where}: host key not verified against {known_hosts} ({error.reason}); "
                "if the host was rebuilt, check its new fingerprint with its owner and replace "
                f"its line (ssh-keygen -R '[{self.host}]:{self.port}' -f {known_hosts})"
            ) from None
        except asyncssh.PermissionDenied as error:
            raise rejected(
                f"{self.where}: the key {key} was refused for {self.user} ({error.reason}); "
                f"add its public half to ~{self.user}/.ssh/authorized_keys on {self.host}"
            ) from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as error:
            raise rejected(
                f"{self.where}: cannot use the key {key}: {error} (a passphrase goes in "
                "ROLLBACK_SSH_KEY_PASSPHRASE)"
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as error:
            raise unavailable(
                f"{self.where}: cannot connect: {error or type(error).__name__}"
            ) from None


class _SshSession:
    def __init__(self, connection: asyncssh.SSHClientConnection, where: str) -> None:
        self.connection = connection
        self.where = where

    async def run(self, command: str, within: float) -> Ran:
        import asyncssh

        try:
            done = await self.connection.run(
                command,
                check=False,
                timeout=within,
                stdin=asyncssh.DEVNULL,
                stderr=asyncssh.STDOUT,
            )
        except asyncssh.TimeoutError as error:
            raise unavailable(
                f"{self.where}: `{command}` did not finish within {within:g} s; output so "
                f"far: {excerpt(_text(error.stdout)) or '(none)'}"
            ) from None
        except (OSError, asyncssh.Error) as error:
            raise unavailable(
                f"{self.where}: `{command}` lost its connection: {error or type(error).__name__}"
            ) from None
        return Ran(command, done.exit_status, _text(done.stdout))


def _text(output: object) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output if isinstance(output, str) else ""
