"""Feature flags over http: turn a flag off (`feature-flag --disable …`)."""

from __future__ import annotations

from activities.drivers.base import Acted
from activities.targets import Target, fill, not_confirmed


class FeatureFlags:
    def __init__(self, target: Target, flag_path: str) -> None:
        self.target = target
        self.flag_path = flag_path
        self.where = f"{target.name} at {target.base_url}"

    async def is_off(self, deployment: str, name: str) -> bool:
        path = fill(self.flag_path, deployment=deployment, flag=name)
        return not self.target.field(await self.target.get(path), "enabled", bool)

    async def disable(self, deployment: str, name: str, key: str) -> Acted:
        if await self.is_off(deployment, name):
            return Acted("already")
        path = fill(self.flag_path, deployment=deployment, flag=name)
        data = await self.target.call("PUT", path, json={"enabled": False}, key=key)
        if self.target.field(data, "enabled", bool):
            raise not_confirmed(
                f"feature flags at {self.target.base_url}: {name} of {deployment} is still "
                "enabled after `feature-flag --disable`"
            )
        return Acted("done")
