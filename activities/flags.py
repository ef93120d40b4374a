"""Feature flags: turn a flag off (`feature-flag --disable …`)."""

from __future__ import annotations

from typing import Literal

from activities.targets import Target, fill, not_confirmed

Outcome = Literal["done", "already"]


class FeatureFlags:
    def __init__(self, target: Target, flag_path: str) -> None:
        self.target = target
        self.flag_path = flag_path

    async def disable(self, deployment: str, flag: str, key: str) -> Outcome:
        path = fill(self.flag_path, deployment=deployment, flag=flag)
        if not self.target.field(await self.target.get(path), "enabled", bool):
            return "already"
        data = await self.target.call("PUT", path, json={"enabled": False}, key=key)
        if self.target.field(data, "enabled", bool):
            raise not_confirmed(
                f"feature flags at {self.target.base_url}: {flag} of {deployment} is still "
                "enabled after `feature-flag --disable`"
            )
        return "done"
