"""Helpers shared by the simulator tests (imported by name: pytest puts this folder on
``sys.path`` as the folder has no ``__init__.py``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

LabelSet = frozenset[tuple[str, str]]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_SAMPLE = re.compile(
    rf"^(?P<name>{_NAME})(?:\{{(?P<labels>{_LABEL}(?:,{_LABEL})*)?\}})? "
    r"(?P<value>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+|Inf|NaN))$"
)
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
_TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


@dataclass(frozen=True)
class Exposition:
    types: dict[str, str]
    samples: dict[tuple[str, LabelSet], float]

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, frozenset(labels.items()))]

    def select(self, name: str, **labels: str) -> dict[LabelSet, float]:
        wanted = set(labels.items())
        return {
            label_set: value
            for (sample_name, label_set), value in self.samples.items()
            if sample_name == name and wanted <= label_set
        }


def parse_exposition(text: str) -> Exposition:
    """A strict reader of the text format 0.0.4: every line well formed, each sample of a
    ``# TYPE``d family that came before it, families contiguous, no duplicate series."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types: dict[str, str] = {}
    helps: set[str] = set()
    samples: dict[tuple[str, LabelSet], float] = {}
    finished: set[str] = set()
    current: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in helps, f"second HELP, {where}"
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in _TYPES, where
            assert name not in types, f"second TYPE, {where}"
            if current is not None:
                finished.add(current)
            types[name], current = kind, name
            continue
        assert not line.startswith("#") and line.strip(), f"unexpected {where}"
        match = _SAMPLE.match(line)
        assert match, f"malformed sample, {where}"
        name = match["name"]
        family = _family_of(name, types)
        assert family is not None, f"sample of no TYPEd family, {where}"
        assert family == current and family not in finished, f"family not contiguous, {where}"
        labels = frozenset(_PAIR.findall(match["labels"] or ""))
        key = (name, labels)
        assert key not in samples, f"duplicate series, {where}"
        samples[key] = _value(match["value"])
    return Exposition(types, samples)


def _family_of(name: str, types: dict[str, str]) -> str | None:
    if name in types and types[name] not in _SUFFIXES:
        return name
    for family, kind in types.items():
        for suffix in _SUFFIXES.get(kind, ()):
            if suffix and name == family + suffix:
                return family
    return None


def _value(text: str) -> float:
    return float(text.replace("Inf", "inf"))


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus's ``histogram_quantile`` on cumulative ``{upper bound: count}``."""
    bounds = sorted(buckets)
    total = buckets[math.inf]
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if bound == math.inf:
                return previous_bound
            return previous_bound + (bound - previous_bound) * (
                (rank - previous_count) / (count - previous_count)
            )
        previous_bound, previous_count = bound, count
    raise AssertionError("unreachable: the +Inf bucket holds every observation")


def bucket_increase(before: Exposition, after: Exposition, **labels: str) -> dict[float, float]:
    """How much each latency bucket grew between two scrapes, as ``{le: increase}``."""
    name = "search_request_duration_seconds_bucket"
    return {
        _value(dict(label_set)["le"]): value - before.samples[(name, label_set)]
        for label_set, value in after.select(name, **labels).items()
    }
