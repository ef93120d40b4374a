"""Service control over http: stop a service of the deployment (`systemctl stop …`)."""

from __future__ import annotations

from activities.drivers.base import Acted
from activities.targets import Target, fill, not_confirmed


class ServiceControl:
    def __init__(self, target: Target, status_path: str, stop_path: str) -> None:
        self.target = target
        self.status_path = status_path
        self.stop_path = stop_path
        self.where = f"{target.name} at {target.base_url}"

    async def is_stopped(self, deployment: str, service: str) -> bool:
        names = {"deployment": deployment, "service": service}
        current = await self.target.get(fill(self.status_path, **names))
        return bool(self.target.field(current, "status", str) == "stopped")

    async def stop(self, deployment: str, service: str, key: str) -> Acted:
        """Already stopped is fine: the step may be a retry, or someone was faster."""
        if await self.is_stopped(deployment, service):
            return Acted("already")
        names = {"deployment": deployment, "service": service}
        data = await self.target.call("POST", fill(self.stop_path, **names), key=key)
        status = self.target.field(data, "status", str)
        if status != "stopped":
            raise not_confirmed(
                f"service control at {self.target.base_url}: {service} of {deployment} is "
                f"{status!r} after `systemctl stop {service}`"
            )
        return Acted("done")
