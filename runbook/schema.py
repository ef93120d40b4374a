"""The policy's models are read two ways: from a file a person wrote, and from a rollback's
recorded input (a workflow's history, possibly written by an older release of the engine).

A file is judged: an unknown field, a cross-reference that finds nothing or a value out of
range is refused with its place. A recorded policy is only decoded: it was judged when its file
was read, by the release that recorded it, and a rule added since must not stop a rollback (or
its week of follow-ups) that is already running. So every check that judges a configuration
runs only under `FILE` (`judged(info)`), and decoding ignores fields that a newer release no
longer has.

The compatibility rule for recorded models (the policy and every workflow input): a field is
never removed or renamed within a major version (it is kept, ignored, and documented as such); a
new field has a default; a literal never loses a value; a field constraint is never tightened
(a stricter rule goes into a judging validator, which sees only files).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

FILE = MappingProxyType({"policy_file": True})
"""The validation context under which a policy read from a file is judged."""


def judged(info: ValidationInfo) -> bool:
    """True while a policy file is read; False while a recorded policy is decoded."""
    return bool(info.context and info.context.get("policy_file"))


class PolicyModel(BaseModel):
    """Every policy section: no unknown field in a file, none refused in a recorded input."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_fields_only_in_a_file(cls, data: Any, info: ValidationInfo) -> Any:
        if judged(info) and isinstance(data, dict):
            known = set(cls.model_fields)
            for key in data:
                if key not in known:
                    raise PydanticCustomError(
                        "unknown_field", "is not a known field", {"field": str(key)}
                    )
        return data
