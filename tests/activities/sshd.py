"""A real OpenSSH server (Debian `openssh-server`) on a loopback port, with its own host key,
a test user key and authorized_keys under a temporary directory, and the plan's commands
(`traffic-split`, `systemctl`, `config-update`, `feature-flag`) installed as scripts on its
PATH that keep their state in files and record every call they get."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import pytest

from tests.activities.servers import free_port
from tests.cli.stack_helpers import kill_processes_of

SSHD = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/usr/local/sbin")
SSH_KEYGEN = shutil.which("ssh-keygen")
PRIVILEGE_SEPARATION = Path("/run/sshd")
"""Where a root sshd insists on chrooting its unprivileged child (Debian's unit creates it)."""
SECRET = "s3cr3t-printed-by-a-tool"
"""A token the scripts print; it must never reach a step's result."""

SCRIPTS: dict[str, str] = {
    "traffic-split": """
case "${1:-}" in
  --show) cat "$STATE/split" ;;
  --treatment) echo "treatment=$2 control=$4" > "$STATE/split"
               echo "split set: treatment $2% / control $4% (token=$SECRET)" ;;
  *) echo "usage: traffic-split --show DEPLOYMENT | --treatment N --control M" >&2; exit 2 ;;
esac
""",
    "systemctl": """
case "$1" in
  is-active) if [ -e "$STATE/stopped-$2" ]; then echo inactive; exit 3; fi; echo active ;;
  stop) if [ "$2" = broken-service ]; then
          echo "Failed to stop $2.service: Access denied" >&2; exit 1
        fi
        touch "$STATE/stopped-$2" ;;
  *) echo "Unknown command verb $1." >&2; exit 1 ;;
esac
""",
    "config-update": """
case "$1" in
  --show) cat "$STATE/config-$2" 2>/dev/null || echo true ;;
  --disable-early-stop) echo false > "$STATE/config-ta_nra_early_stop"
                        echo "ta_nra_early_stop=false, authorized with $TOKEN" ;;
  *) echo "usage: config-update --show FIELD | --disable-early-stop" >&2; exit 2 ;;
esac
""",
    "feature-flag": """
case "$1" in
  --status) if [ -e "$STATE/flag-off-$2" ]; then echo disabled; else echo enabled; fi ;;
  --disable) shift
             for flag in "$@"; do touch "$STATE/flag-off-$flag"; echo "$flag disabled"; done ;;
  *) echo "usage: feature-flag --status FLAG | --disable FLAG..." >&2; exit 2 ;;
esac
""",
}


@dataclass
class PlanHost:
    """Where the plan's commands live: over SSH at `url`, or locally from `bin`."""

    url: str
    key: Path
    known_hosts: Path
    bin: Path
    state: Path
    token: str
    """The worker's target token, which `config-update` prints (the redaction must catch it)."""

    def calls(self) -> list[str]:
        log = self.state / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def reset(self, treatment: int = 25) -> None:
        for path in self.state.iterdir():
            path.unlink()
        (self.state / "split").write_text(f"treatment={treatment} control={100 - treatment}\n")


def install_scripts(workdir: Path, token: str) -> tuple[Path, Path]:
    """The plan's commands as scripts in `workdir/bin`, their state in `workdir/state`."""
    bin_dir, state = workdir / "bin", workdir / "state"
    bin_dir.mkdir(parents=True, exist_ok=True)
    state.mkdir(exist_ok=True)
    for name, body in SCRIPTS.items():
        script = bin_dir / name
        script.write_text(
            f'#!/bin/sh\nSTATE="{state}"\nSECRET="{SECRET}"\nTOKEN="{token}"\n'
            f'echo "{name} $*" >> "$STATE/calls.log"\n{body}'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return bin_dir, state


@contextmanager
def running_sshd(workdir: Path, token: str) -> Iterator[PlanHost]:
    if SSHD is None or SSH_KEYGEN is None:
        pytest.skip("sshd is not installed (Debian: apt-get install openssh-server openssh-client)")
    if os.geteuid() == 0 and not PRIVILEGE_SEPARATION.is_dir():
        try:
            PRIVILEGE_SEPARATION.mkdir(mode=0o755)
        except OSError as error:
            pytest.skip(f"sshd as root needs {PRIVILEGE_SEPARATION}: {error}")
    workdir.mkdir(parents=True, exist_ok=True)
    bin_dir, state = install_scripts(workdir, token)
    for name in ("host_key", "user_key"):
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(workdir / name)], check=True
        )
    authorized = workdir / "authorized_keys"
    authorized.write_text((workdir / "user_key.pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(workdir / 'host_key.pub').read_text()}")
    # In the environment of sshd, of the session processes it forks (each in a session of its
    # own, left running when the listener stops) and of the commands they run: what is killed.
    marker = ("ROLLBACK_TEST_SSHD", uuid4().hex)
    config = workdir / "sshd_config"
    config.write_text(
        f"""HostKey {workdir / "host_key"}
AuthorizedKeysFile {authorized}
PidFile {workdir / "sshd.pid"}
ListenAddress 127.0.0.1
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
SetEnv PATH={bin_dir}:/usr/bin:/bin {marker[0]}={marker[1]}
"""
    )
    log = (workdir / "sshd.log").open("w")
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
        stdout=log,
        stderr=log,
        env={**os.environ, marker[0]: marker[1]},
    )
    try:
        deadline = time.monotonic() + 5
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.skip(f"sshd cannot run here: {(workdir / 'sshd.log').read_text()}")
            time.sleep(0.02)
        yield PlanHost(
            url=f"ssh://{getpass.getuser()}@127.0.0.1:{port}",
            key=workdir / "user_key",
            known_hosts=known_hosts,
            bin=bin_dir,
            state=state,
            token=token,
        )
    finally:
        try:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        finally:
            # The listener's exit leaves its connections' processes (and what they run) alive.
            kill_processes_of(f"{marker[0]}={marker[1]}")
            log.close()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def command_drivers(host: str, bin_dir: Path | None = None) -> dict[str, object]:
    """The policy's `targets.drivers` for the plan's commands on `host` (`bin_dir`: the
    commands by absolute path, for a host whose PATH does not hold them)."""
    at = f"{bin_dir}/" if bin_dir else ""
    return {
        "load_balancer": {
            "driver": "command",
            "host": host,
            "read": {
                "run": f"{at}traffic-split --show {{deployment}}",
                "pattern": r"treatment=(?P<treatment>\d+) control=(?P<control>\d+)",
            },
            "act": {"run": f"{at}traffic-split --treatment 0 --control 100", "expect": "split set"},
        },
        "service_control": {
            "driver": "command",
            "host": host,
            "read": {
                "run": f"{at}systemctl is-active {{service}}",
                "exit_codes": [0, 3],
                "done": "^(inactive|failed)$",
            },
            "act": {"run": f"{at}systemctl stop {{service}}"},
        },
        "configuration_service": {
            "driver": "command",
            "host": host,
            "read": {"run": f"{at}config-update --show {{field}}", "done": "^false$"},
            "act": {"run": f"{at}config-update --disable-early-stop"},
        },
        "feature_flags": {
            "driver": "command",
            "host": host,
            "read": {"run": f"{at}feature-flag --status {{flag}}", "done": "^disabled$"},
            "act": {"run": f"{at}feature-flag --disable {{flag}}"},
        },
    }
