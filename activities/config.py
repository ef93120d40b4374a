"""The configuration service over http: turn a boolean setting off
(`config-update --disable-early-stop`)."""

from __future__ import annotations

from activities.drivers.base import Acted
from activities.targets import Target, fill, not_confirmed


class ConfigService:
    def __init__(self, target: Target, config_path: str) -> None:
        self.target = target
        self.config_path = config_path
        self.where = f"{target.name} at {target.base_url}"

    async def is_off(self, deployment: str, name: str) -> bool:
        path = fill(self.config_path, deployment=deployment)
        return not self.target.field(await self.target.get(path), name, bool)

    async def disable(self, deployment: str, name: str, key: str) -> Acted:
        """Off, confirmed by the service's answer; already off is fine (a retry)."""
        if await self.is_off(deployment, name):
            return Acted("already")
        path = fill(self.config_path, deployment=deployment)
        data = await self.target.call("PATCH", path, json={name: False}, key=key)
        if self.target.field(data, name, bool):
            raise not_confirmed(
                f"configuration service at {self.target.base_url}: {name} of {deployment} is "
                "still on after `config-update --disable-early-stop`"
            )
        return Acted("done")
