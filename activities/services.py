"""Service control: stop a service of the deployment (`systemctl stop …`)."""

from __future__ import annotations

from typing import Literal

from activities.targets import Target, fill, not_confirmed

Outcome = Literal["done", "already"]


class ServiceControl:
    def __init__(self, target: Target, status_path: str, stop_path: str) -> None:
        self.target = target
        self.status_path = status_path
        self.stop_path = stop_path

    async def stop(self, deployment: str, service: str, key: str) -> Outcome:
        """Already stopped is fine: the step may be a retry, or someone was faster."""
        names = {"deployment": deployment, "service": service}
        current = await self.target.get(fill(self.status_path, **names))
        if self.target.field(current, "status", str) == "stopped":
            return "already"
        data = await self.target.call("POST", fill(self.stop_path, **names), key=key)
        status = self.target.field(data, "status", str)
        if status != "stopped":
            raise not_confirmed(
                f"service control at {self.target.base_url}: {service} of {deployment} is "
                f"{status!r} after `systemctl stop {service}`"
            )
        return "done"
