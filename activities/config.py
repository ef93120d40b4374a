"""The configuration service: turn a boolean setting off (`config-update --disable-early-stop`)."""

from __future__ import annotations

from typing import Literal

from activities.targets import Target, fill, not_confirmed

Outcome = Literal["done", "already"]


class ConfigService:
    def __init__(self, target: Target, config_path: str) -> None:
        self.target = target
        self.config_path = config_path

    async def disable(self, deployment: str, field: str, key: str) -> Outcome:
        """Off, confirmed by the service's answer; already off is fine (a retry)."""
        path = fill(self.config_path, deployment=deployment)
        if not self.target.field(await self.target.get(path), field, bool):
            return "already"
        data = await self.target.call("PATCH", path, json={field: False}, key=key)
        if self.target.field(data, field, bool):
            raise not_confirmed(
                f"configuration service at {self.target.base_url}: {field} of {deployment} is "
                "still on after `config-update --disable-early-stop`"
            )
        return "done"
