"""The `haproxy` driver: the split as the weights of a backend's treatment and control servers,
over HAProxy's Runtime API (the stats socket, UNIX or TCP, `level admin`).

HAProxy answers one command per connection, its answer ending with an empty line; a `set`
that worked answers nothing, a refusal answers why ("Permission denied", "No such server").
The split is read with `show servers state <backend>` (`srv_uweight`, the current weight) and
the change confirmed with `get weight <backend>/<server>`.
"""

from __future__ import annotations

import asyncio
import re

from activities.drivers.base import Reverted
from activities.models import TrafficSplit
from activities.targets import not_confirmed, rejected, unavailable
from runbook.targets import TCP_SOCKET, HaproxyDriver

NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
"""What HAProxy accepts as a backend or server name; anything else (a space, `;`, a newline)
would be another command on the socket."""
GET_WEIGHT = re.compile(r"^(\d+) \(initial (\d+)\)$")
MAX_ANSWER = 1_000_000


class RuntimeApi:
    """One stats socket; each command on a connection of its own."""

    def __init__(self, socket: str, timeout: float) -> None:
        self.socket = socket
        self.timeout = timeout
        self.where = f"HAProxy stats socket {socket}"

    async def ask(self, command: str) -> str:
        try:
            return await asyncio.wait_for(self._exchange(command), self.timeout)
        except TimeoutError:
            raise unavailable(
                f"{self.where}: `{command}` got no answer within {self.timeout:g} s"
            ) from None
        except PermissionError as error:
            raise rejected(
                f"{self.where}: `{command}`: {error.strerror}; the worker's user needs read and "
                "write access to the socket (`stats socket … mode 660 group <worker's group>`)"
            ) from None
        except OSError as error:
            raise unavailable(
                f"{self.where}: `{command}` failed: {error.strerror or error}; is HAProxy running "
                "with `stats socket … level admin` in its global section?"
            ) from None

    async def _exchange(self, command: str) -> str:
        tcp = TCP_SOCKET.match(self.socket)
        if tcp:
            reader, writer = await asyncio.open_connection(tcp["host"], int(tcp["port"]))
        else:
            reader, writer = await asyncio.open_unix_connection(self.socket)
        try:
            writer.write(command.encode() + b"\n")
            await writer.drain()
            answer = await reader.read(MAX_ANSWER)
            while chunk := await reader.read(MAX_ANSWER):
                answer += chunk
        finally:
            writer.close()
        return answer.decode(errors="replace").strip()


class HaproxyLoadBalancer:
    def __init__(self, config: HaproxyDriver, api: RuntimeApi) -> None:
        self.config = config
        self.api = api
        self.where = api.where

    async def read(self, deployment: str) -> TrafficSplit:
        treatment, control = await self.weights(deployment)
        return split_of(treatment, control)

    async def revert(self, deployment: str, key: str) -> Reverted:
        """Treatment's weight to 0 (control given `control_weight` if it has none), confirmed
        with `get weight`. `key` is not sent: HAProxy has no idempotency keys, and reading the
        weights first is what makes a retry harmless."""
        backend, treatment, control = self._names(deployment)
        t_before, c_before = await self.weights(deployment)
        before = split_of(t_before, c_before)
        if t_before == 0 and c_before > 0:
            shown = f"{backend}: {treatment} weight 0, {control} weight {c_before}"
            return Reverted(before, "already", before, f"on {self.where}: {shown}")
        sent = []
        if t_before != 0:
            sent.append(await self._set(backend, treatment, 0))
        if c_before == 0:
            sent.append(await self._set(backend, control, self.config.control_weight))
        t_after = await self._get_weight(backend, treatment)
        c_after = await self._get_weight(backend, control)
        after = split_of(t_after, c_after)
        if t_after != 0 or c_after == 0:
            raise not_confirmed(
                f"{self.where}: after {'; '.join(sent)}, `get weight` reads {treatment} "
                f"{t_after} and {control} {c_after} in backend {backend}"
            )
        return Reverted(
            after,
            "done",
            before,
            f"on {self.where}: {'; '.join(sent)}; `get weight` reads {treatment} {t_after}, "
            f"{control} {c_after} (were {t_before}, {c_before})",
        )

    async def level(self) -> str:
        """The socket's level (`show cli level`): the emergency stop needs `admin`."""
        return await self.api.ask("show cli level")

    async def weights(self, deployment: str) -> tuple[int, int]:
        """The current weights of the treatment and control servers."""
        backend, treatment, control = self._names(deployment)
        command = f"show servers state {backend}"
        answer = await self.api.ask(command)
        lines = answer.splitlines()
        header = next((line for line in lines if line.startswith("#")), None)
        if header is None:
            raise rejected(
                f"{self.where}: `{command}` answered {answer[:200]!r}; check the backend name "
                "(targets.drivers.load_balancer.backend)"
            )
        columns = header.lstrip("# ").split()
        name_at, weight_at = columns.index("srv_name"), columns.index("srv_uweight")
        found: dict[str, int] = {}
        for line in lines:
            fields = line.split()
            if line.startswith("#") or len(fields) <= max(name_at, weight_at):
                continue
            found[fields[name_at]] = int(fields[weight_at])
        for server, field in ((treatment, "treatment_server"), (control, "control_server")):
            if server not in found:
                raise rejected(
                    f"{self.where}: backend {backend} has no server {server!r} (it has "
                    f"{', '.join(found) or 'none'}); check targets.drivers.load_balancer.{field}"
                )
        return found[treatment], found[control]

    async def _set(self, backend: str, server: str, weight: int) -> str:
        command = f"set server {backend}/{server} weight {weight}"
        answer = await self.api.ask(command)
        if answer:
            hint = (
                "; the socket needs `level admin` (stats socket … level admin)"
                if "permission denied" in answer.lower()
                else ""
            )
            raise rejected(f"{self.where}: `{command}` answered {answer[:200]!r}{hint}")
        return f"`{command}`"

    async def _get_weight(self, backend: str, server: str) -> int:
        command = f"get weight {backend}/{server}"
        answer = await self.api.ask(command)
        found = GET_WEIGHT.match(answer)
        if found is None:
            raise rejected(f"{self.where}: `{command}` answered {answer[:200]!r}")
        return int(found[1])

    def _names(self, deployment: str) -> tuple[str, str, str]:
        config = self.config
        backend = config.backend.replace("{deployment}", deployment)
        names = (backend, config.treatment_server, config.control_server)
        for name in names:
            if not NAME.match(name):
                raise rejected(
                    f"{self.where}: {name!r} is not a name HAProxy accepts (letters, digits, "
                    "`_.:-`); check targets.drivers.load_balancer and the deployment's name"
                )
        return names


def split_of(treatment: int, control: int) -> TrafficSplit:
    """Weights as percentages. A treatment with any weight shows at least 1 %: it still gets
    traffic, and the phase must not read as reverted."""
    total = treatment + control
    if total == 0:
        return TrafficSplit(treatment=0, control=0)
    share = max(1, round(100 * treatment / total)) if treatment else 0
    return TrafficSplit(treatment=share, control=100 - share)
