"""One reading of the canary for its watch: every figure the watch judges, in one query to the
metrics provider (one GET of the JSON document; one instant query each on Prometheus), and the
live traffic split.

A reading that cannot be taken is not an activity failure: the answer says what went wrong and
the watch counts the interval as unreadable (the next interval reads again). Only a policy that
names a query the provider lacks fails, and for good.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.drivers.base import LoadBalancerDriver
from activities.metrics import MetricsReader
from activities.targets import substitute
from contract.watch import CanaryReading, CanaryReadingInput
from runbook.policy import MetricQuery
from runbook.watching import raw_key

POLICY_INCOMPLETE = "PolicyIncomplete"


class CanaryReader:
    def __init__(self, reader: MetricsReader, lb: LoadBalancerDriver) -> None:
        self.reader = reader
        self.lb = lb

    async def read(self, inp: CanaryReadingInput) -> CanaryReading:
        queries = self._queries(inp)
        errors: list[str] = []
        values: dict[str, float | None] = {}
        try:
            values = dict(await self.reader.provider.query(inp.deployment, queries))
        except ApplicationError as error:
            errors.append(f"metrics: {error.message}")
        treatment: int | None = None
        try:
            treatment = (await self.lb.read(inp.deployment)).treatment
        except ApplicationError as error:
            if error.type == POLICY_INCOMPLETE:
                raise
            errors.append(f"load balancer: {error.message}")
        return CanaryReading(values=values, treatment=treatment, error="; ".join(errors))

    def _queries(self, inp: CanaryReadingInput) -> dict[str, MetricQuery]:
        source = self.reader.source
        queries: dict[str, MetricQuery] = {}
        for metric in inp.plan.metrics:
            queries[raw_key(metric)] = self._known(source.metrics, "metrics", metric)
        for variant, metrics in inp.plan.variants.items():
            for metric in metrics:
                query = self._known(source.variants, "variants", metric)
                queries[raw_key(metric, variant)] = query.model_copy(
                    update={"query": substitute(query.query, {"variant": variant})}
                )
        return queries

    def _known(self, queries: dict[str, MetricQuery], section: str, name: str) -> MetricQuery:
        if name not in queries:
            raise ApplicationError(
                f"the policy's {self.reader.where}.{section} has no query for {name!r}",
                type=POLICY_INCOMPLETE,
                non_retryable=True,
            )
        return queries[name]
