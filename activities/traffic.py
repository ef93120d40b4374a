"""The load balancer over http (the simulator's protocol): read the traffic split, send all of
it back to control."""

from __future__ import annotations

from typing import Any

from activities.drivers.base import ALL_ON_CONTROL, Reverted
from activities.models import TrafficSplit
from activities.targets import Target, fill, not_confirmed

COMMAND = "traffic-split --treatment 0 --control 100"


class LoadBalancer:
    def __init__(self, target: Target, split_path: str) -> None:
        self.target = target
        self.split_path = split_path
        self.where = f"{target.name} at {target.base_url}"

    async def read(self, deployment: str) -> TrafficSplit:
        data = await self.target.get(self._path(deployment))
        return self._split(data)

    async def set(self, deployment: str, split: TrafficSplit, key: str) -> TrafficSplit:
        data = await self.target.call(
            "PUT", self._path(deployment), json=split.model_dump(), key=key
        )
        return self._split(data)

    async def revert(self, deployment: str, key: str) -> Reverted:
        """All traffic to control, confirmed by reading it back; also the split read first
        (the canary's phase). Read first: a retry, or a split someone already reverted,
        changes nothing."""
        before = await self.read(deployment)
        if before == ALL_ON_CONTROL:
            return Reverted(ALL_ON_CONTROL, "already", before)
        await self.set(deployment, ALL_ON_CONTROL, key)
        confirmed = await self.read(deployment)
        if confirmed != ALL_ON_CONTROL:
            raise not_confirmed(
                f"load balancer at {self.target.base_url} still reports treatment "
                f"{confirmed.treatment}% / control {confirmed.control}% for {deployment} "
                f"after `{COMMAND}`"
            )
        return Reverted(confirmed, "done", before)

    def _path(self, deployment: str) -> str:
        return fill(self.split_path, deployment=deployment)

    def _split(self, data: dict[str, Any]) -> TrafficSplit:
        return TrafficSplit(
            treatment=self.target.field(data, "treatment", int),
            control=self.target.field(data, "control", int),
        )
