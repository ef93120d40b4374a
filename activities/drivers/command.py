"""The `command` driver: the plan's own commands (`traffic-split …`, `systemctl stop …`,
`config-update …`, `feature-flag …`), run locally or over SSH.

Every action reads first (the policy's `read` command) and acts only when the end state does not
hold yet, then reads back: a retry runs the read alone. Each command's exit code and expected
output are checked; what the commands printed, redacted, is kept in the step's result.
"""

from __future__ import annotations

import re
import shlex

from activities.drivers.base import ALL_ON_CONTROL, Acted, Reverted
from activities.drivers.redact import Redactor
from activities.drivers.runners import Ran, Runner, Session, excerpt
from activities.models import TrafficSplit
from activities.targets import not_confirmed, rejected, unavailable
from runbook.targets import PLACEHOLDERS, Command, CommandSplitDriver, CommandStateDriver

CANNOT_RUN = frozenset({126, 127})
"""The shell's "not executable" and "not found": no retry makes the command exist."""
SUDO_REFUSED = re.compile(
    r"sudo: (a password is required|a terminal is required|.* is not in the sudoers|"
    r"sorry, user .* is not allowed)"
)


def command_line(template: str, values: dict[str, str]) -> str:
    """The policy's command with `{deployment}`, `{service}`, … filled in, each shell-quoted."""
    for name in PLACEHOLDERS:
        if name in values:
            template = template.replace("{" + name + "}", shlex.quote(values[name]))
    return template


class Commands:
    """Runs one policy command and judges what came back."""

    def __init__(self, runner: Runner, redact: Redactor, label: str) -> None:
        self.runner = runner
        self.redact = redact
        self.where = f"{label} {runner.where}"

    async def run(self, session: Session, spec: Command, values: dict[str, str]) -> Ran:
        line = command_line(spec.run, values)
        ran = await session.run(line, spec.timeout.total_seconds())
        said = self.redact(excerpt(ran.output)) or "(no output)"
        if ran.exit_status not in spec.exit_codes:
            message = (
                f"{self.where}: `{line}` exited {_status(ran)} (expected "
                f"{' or '.join(map(str, spec.exit_codes))}): {said}"
            )
            if ran.exit_status in CANNOT_RUN:
                raise rejected(f"{message}; is the command installed and on the PATH there?")
            if SUDO_REFUSED.search(ran.output):
                raise rejected(
                    f"{message}; give the user a NOPASSWD sudo rule for exactly this command"
                )
            raise unavailable(message)
        if spec.expect and not re.search(spec.expect, ran.output, re.MULTILINE):
            raise not_confirmed(
                f"{self.where}: `{line}` exited {_status(ran)} but its output lacks "
                f"{spec.expect!r}: {said}"
            )
        return ran

    def shown(self, ran: Ran) -> str:
        """One command and what it printed, as kept in the step's result."""
        return f"`{ran.command}` → {self.redact(excerpt(ran.output)) or '(no output)'}"


class CommandLoadBalancer:
    """`traffic-split` on the load balancer; the split is read from the `read` command's output
    by the policy's pattern."""

    def __init__(self, config: CommandSplitDriver, runner: Runner, redact: Redactor) -> None:
        self.config = config
        self.commands = Commands(runner, redact, "load balancer")
        self.runner = runner
        self.where = self.commands.where

    async def read(self, deployment: str) -> TrafficSplit:
        async with self.runner.session() as session:
            split, _ = await self._read(session, deployment)
        return split

    async def revert(self, deployment: str, key: str) -> Reverted:
        values = {"deployment": deployment, "key": key}
        async with self.runner.session() as session:
            before, first = await self._read(session, deployment)
            if before == ALL_ON_CONTROL:
                return Reverted(before, "already", before, f"on {self.where}: {first}")
            acted = await self.commands.run(session, self.config.act, values)
            after, back = await self._read(session, deployment)
        if after != ALL_ON_CONTROL:
            raise not_confirmed(
                f"{self.where} still reports treatment {after.treatment}% / control "
                f"{after.control}% for {deployment} after {self.commands.shown(acted)}; "
                f"read back {back}"
            )
        return Reverted(
            after, "done", before, f"on {self.where}: {self.commands.shown(acted)}; then {back}"
        )

    async def _read(self, session: Session, deployment: str) -> tuple[TrafficSplit, str]:
        read = self.config.read
        ran = await self.commands.run(session, read, {"deployment": deployment})
        found = re.search(read.pattern, ran.output, re.MULTILINE)
        if found is None:
            printed = self.commands.redact(excerpt(ran.output))
            raise rejected(
                f"{self.where}: `{ran.command}` printed {printed!r}, which the policy's "
                f"read.pattern {read.pattern!r} cannot read a split from"
            )
        split = TrafficSplit(treatment=int(found["treatment"]), control=int(found["control"]))
        return split, self.commands.shown(ran)


class CommandState:
    """A service to stop, a configuration value or a flag to turn off, through commands:
    `read` tells whether the end state holds (its `done` pattern), `act` gets there."""

    def __init__(
        self,
        config: CommandStateDriver,
        runner: Runner,
        redact: Redactor,
        label: str,
        placeholder: str,
    ) -> None:
        self.config = config
        self.runner = runner
        self.commands = Commands(runner, redact, label)
        self.placeholder = placeholder
        """What the action's target is called in the commands: service, field or flag."""
        self.where = self.commands.where

    async def holds(self, deployment: str, name: str) -> bool:
        async with self.runner.session() as session:
            held, _ = await self._read(session, self._values(deployment, name, ""))
        return held

    async def reach(self, deployment: str, name: str, key: str) -> Acted:
        values = self._values(deployment, name, key)
        async with self.runner.session() as session:
            held, first = await self._read(session, values)
            if held:
                return Acted("already", f"on {self.where}: {first}")
            acted = await self.commands.run(session, self.config.act, values)
            held, back = await self._read(session, values)
        if not held:
            raise not_confirmed(
                f"{self.where}: {name} of {deployment} is not done after "
                f"{self.commands.shown(acted)}: read back {back}, which does not match "
                f"{self.config.read.done!r}"
            )
        return Acted("done", f"on {self.where}: {self.commands.shown(acted)}; then {back}")

    # The interfaces of activities/drivers/base.py: a service is stopped, a switch is off.
    async def is_stopped(self, deployment: str, service: str) -> bool:
        return await self.holds(deployment, service)

    async def stop(self, deployment: str, service: str, key: str) -> Acted:
        return await self.reach(deployment, service, key)

    async def is_off(self, deployment: str, name: str) -> bool:
        return await self.holds(deployment, name)

    async def disable(self, deployment: str, name: str, key: str) -> Acted:
        return await self.reach(deployment, name, key)

    async def _read(self, session: Session, values: dict[str, str]) -> tuple[bool, str]:
        ran = await self.commands.run(session, self.config.read, values)
        held = re.search(self.config.read.done, ran.output, re.MULTILINE) is not None
        return held, self.commands.shown(ran)

    def _values(self, deployment: str, name: str, key: str) -> dict[str, str]:
        return {"deployment": deployment, self.placeholder: name, "key": key}


def _status(ran: Ran) -> str:
    return str(ran.exit_status) if ran.exit_status is not None else "without a status (killed?)"
