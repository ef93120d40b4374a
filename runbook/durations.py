"""Durations as people write them in a policy file ("30s", "5m", "4h", "7d")."""

from __future__ import annotations

import re
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer

_UNITS = MappingProxyType({"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800})
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: Any) -> Any:
    """Turn "1h30m", "90s" or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like 30s, 5m, 4h or 7d, got {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _PART.sub("", text) == "":
            return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in _PART.findall(text)))
    raise ValueError(f"must be a duration like 30s, 5m, 4h or 7d, got {value!r}")


def format_duration(delta: timedelta) -> str:
    """The shortest readable form: 30s, 5m, 1h30m, 7d."""
    total = delta.total_seconds()
    if total != int(total):
        return f"{round(total * 1000)}ms"
    parts = []
    remaining = round(total)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size:
            count, remaining = divmod(remaining, size)
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def spoken(delta: timedelta) -> str:
    """A measured duration for people: "0.08 s" and "4.2 s" below 10 s, "18s", "1m12s" above
    (whole seconds)."""
    seconds = delta.total_seconds()
    if abs(seconds) < 1:
        return f"{seconds:.2f} s"
    if abs(seconds) < 10:
        return f"{seconds:.1f} s"
    return format_duration(timedelta(seconds=round(seconds)))


def _positive(delta: timedelta) -> timedelta:
    if delta <= timedelta(0):
        raise ValueError("must be a positive duration")
    return delta


def _non_negative(delta: timedelta) -> timedelta:
    if delta < timedelta(0):
        raise ValueError("must not be negative")
    return delta


_Serialize = PlainSerializer(format_duration, return_type=str, when_used="json")

Duration = Annotated[timedelta, BeforeValidator(parse_duration), _Serialize]
"""Any duration of zero or more (for example a sustain period)."""

PositiveDuration = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_positive), _Serialize
]
"""A duration that must be greater than zero (windows, budgets, targets)."""

NonNegativeDuration = Annotated[
    timedelta, BeforeValidator(parse_duration), AfterValidator(_non_negative), _Serialize
]
