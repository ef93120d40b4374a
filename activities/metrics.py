"""Metrics providers: where Steps 3-6 read their figures, as the policy's `metrics` names them.

`http_json` reads one JSON document per reading and picks dotted paths out of it;
`prometheus` runs PromQL instant queries over the Prometheus HTTP API. Both answer a name with
a float, or None while there is no data yet (an empty vector, NaN).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from temporalio.exceptions import ApplicationError

from activities.targets import Target, fill, rejected, substitute
from runbook.policy import MetricQuery, Metrics, MetricsSource

Values = dict[str, float | None]
DEFAULT_PERIOD = "15m"
"""`{period}` in a PromQL query read for no particular period (a figure now)."""
Variant = str


@dataclass(frozen=True)
class Period:
    """A span of time a query is about (the rollback period: breach start to reversion).
    Prometheus evaluates at its end with `{period}` as its length; an http_json document has
    no history, so it answers for now."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return max((self.end - self.start).total_seconds(), 0.0)

    def promql(self) -> str:
        return f"{max(1, math.ceil(self.seconds))}s"


class MetricsProvider(Protocol):
    async def query(
        self, deployment: str, queries: Mapping[str, MetricQuery], period: Period | None = None
    ) -> Values: ...


class HttpJsonProvider:
    def __init__(self, target: Target, url: str) -> None:
        self.target = target
        self.url = url

    async def query(
        self, deployment: str, queries: Mapping[str, MetricQuery], period: Period | None = None
    ) -> Values:
        if not queries:
            return {}
        data = await self.target.get(fill(self.url, deployment=deployment))
        return {name: self._pick(data, q) for name, q in queries.items()}

    def _pick(self, data: dict[str, Any], query: MetricQuery) -> float | None:
        value: Any = data
        for part in query.query.split("."):
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                raise rejected(
                    f"metrics at {self.target.url(self.url)} answered without "
                    f"{query.query!r}: {str(data)[:200]}"
                )
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise rejected(
                f"metrics at {self.target.url(self.url)}: {query.query!r} is {value!r}, "
                "not a number"
            )
        return _finite(float(value) * query.scale)


class PrometheusProvider:
    def __init__(self, target: Target) -> None:
        self.target = target

    async def query(
        self, deployment: str, queries: Mapping[str, MetricQuery], period: Period | None = None
    ) -> Values:
        names = list(queries)
        answers = await asyncio.gather(
            *(self._instant(deployment, queries[name], period) for name in names)
        )
        return dict(zip(names, answers, strict=True))

    async def _instant(
        self, deployment: str, query: MetricQuery, period: Period | None = None
    ) -> float | None:
        values = {"deployment": _promql_string(deployment), "period": DEFAULT_PERIOD}
        params: dict[str, str] = {}
        if period is not None:  # evaluated at the period's end, over its length
            values["period"] = period.promql()
            params["time"] = f"{period.end.timestamp():.3f}"
        promql = substitute(query.query, values)
        params["query"] = promql
        answer = await self.target.get("/api/v1/query", params=params)
        data = answer.get("data")
        if answer.get("status") != "success" or not isinstance(data, dict):
            raise rejected(f"prometheus at {self.target.base_url} failed {promql!r}: {answer}")
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and isinstance(result, list):
            return _sample(result, query, promql)
        if kind != "vector" or not isinstance(result, list):
            raise rejected(
                f"prometheus query {promql!r} answered a {kind}; the policy needs an instant "
                "vector or a scalar"
            )
        if not result:
            return None
        if len(result) > 1:
            series = ", ".join(str(s.get("metric")) for s in result[:3])
            raise rejected(
                f"prometheus query {promql!r} answered {len(result)} series ({series}, …); "
                "aggregate it to one (sum, max, …) in the policy's metrics section"
            )
        return _sample(result[0].get("value"), query, promql)


def _sample(pair: Any, query: MetricQuery, promql: str) -> float | None:
    try:
        value = float(pair[1])
    except (TypeError, ValueError, IndexError):
        raise rejected(
            f"prometheus query {promql!r} answered a malformed sample {pair!r}"
        ) from None
    return _finite(value * query.scale)


def _finite(value: float) -> float | None:
    """NaN (0/0 over no traffic) and infinities are "no data yet", not a reading."""
    return value if math.isfinite(value) else None


def _promql_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass(frozen=True)
class Reading:
    values: Values
    baselines: Values


class MetricsReader:
    """Metric names, as the policy's checks use them, to readings from the chosen provider."""

    def __init__(self, provider: MetricsProvider, metrics: Metrics) -> None:
        self.provider = provider
        self.source: MetricsSource = metrics.source()
        self.where = f"metrics.{metrics.provider}"

    def defines(self, name: str) -> bool:
        return name in self.source.metrics

    async def read(
        self,
        deployment: str,
        names: Iterable[str],
        baselines: Iterable[str] = (),
        period: Period | None = None,
    ) -> Reading:
        wanted = {n: self._query("metrics", self.source.metrics, n) for n in names}
        wanted |= {
            f"baseline:{n}": self._query("baselines", self.source.baselines, n) for n in baselines
        }
        values = await self.provider.query(deployment, wanted, period)
        return Reading(
            values={n: v for n, v in values.items() if not n.startswith("baseline:")},
            baselines={
                n.removeprefix("baseline:"): v
                for n, v in values.items()
                if n.startswith("baseline:")
            },
        )

    async def variant(self, deployment: str, variant: Variant, names: Iterable[str]) -> Values:
        queries = {
            n: q.model_copy(update={"query": substitute(q.query, {"variant": variant})})
            for n in names
            if (q := self.source.variants.get(n)) is not None
        }
        return await self.provider.query(deployment, queries)

    def _query(self, section: str, queries: Mapping[str, MetricQuery], name: str) -> MetricQuery:
        if name not in queries:
            raise ApplicationError(
                f"the policy's {self.where}.{section} has no query for {name!r} "
                f"(known: {', '.join(queries) or 'none'})",
                type="PolicyIncomplete",
                non_retryable=True,
            )
        return queries[name]


def build_provider(metrics: Metrics, json_target: Target, prometheus: Target) -> MetricsProvider:
    if metrics.provider == "prometheus":
        return PrometheusProvider(prometheus)
    return HttpJsonProvider(json_target, metrics.source().url or "")
