"""Request bodies of the HTTP API; pydantic turns anything else into a 422."""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from simulator.api_faults import Api, Mode
from simulator.state import check_name

Percent = Annotated[StrictInt, Field(ge=0, le=100)]
Ratio = Annotated[float, Field(ge=0.0, le=1.0)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewDeployment(_Body):
    name: str
    treatment: Percent

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return check_name(name)


class Split(_Body):
    treatment: Percent
    control: Percent

    @model_validator(mode="after")
    def _sums_to_100(self) -> Self:
        if self.treatment + self.control != 100:
            raise ValueError(
                f"treatment + control must be 100, got {self.treatment} + {self.control}"
            )
        return self


class ConfigPatch(_Body):
    ta_nra_early_stop: StrictBool | None = None


class FlagUpdate(_Body):
    enabled: StrictBool


class DeploymentFaultsIn(_Body):
    """Any subset; an explicit ``null`` clears that fault."""

    treatment_error_rate: Ratio | None = None
    treatment_p99_latency_seconds: Annotated[float, Field(gt=0.0, le=60.0)] | None = None
    treatment_ndcg_at_10: Ratio | None = None
    treatment_sla_recall_at_50: Ratio | None = None
    shard_cpu: Ratio | None = None
    shard_memory: Ratio | None = None

    def changes(self) -> dict[str, float | None]:
        """Only the fields the body named."""
        return self.model_dump(include=self.model_fields_set)


class ApiFaultIn(_Body):
    api: Api
    mode: Mode
    count: StrictInt = Field(default=1, ge=-1)
    status: StrictInt = Field(default=503, ge=400, le=599)
    delay_seconds: Annotated[float, Field(ge=0.0, le=60.0)] = 1.0
    deployment: str | None = None

    @field_validator("count")
    @classmethod
    def _not_zero(cls, count: int) -> int:
        if count == 0:
            raise ValueError("count must be positive, or -1 for until cleared")
        return count
