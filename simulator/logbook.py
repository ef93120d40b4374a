"""Per-deployment log lines, as a log search service would return them."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Level = Literal["INFO", "WARN", "ERROR"]
Variant = Literal["treatment", "control"]

MAX_LINES = 5000
"""Lines kept per deployment; older ones are dropped first."""


@dataclass(frozen=True)
class LogLine:
    at: datetime
    level: Level
    variant: Variant
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "at": self.at.isoformat(),
            "level": self.level,
            "variant": self.variant,
            "message": self.message,
        }


class LogBook:
    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._lines: deque[LogLine] = deque(maxlen=max_lines)

    def add(self, line: LogLine) -> None:
        self._lines.append(line)

    def extend(self, lines: Iterable[LogLine]) -> None:
        self._lines.extend(lines)

    def between(self, since: datetime | None, until: datetime | None) -> list[LogLine]:
        """Lines with ``since <= at <= until`` (either bound optional), oldest first."""
        return sorted(
            (
                line
                for line in self._lines
                if (since is None or line.at >= since) and (until is None or line.at <= until)
            ),
            key=lambda line: line.at,
        )
