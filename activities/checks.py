"""Judging one reading against a health criterion or a quality check; pure."""

from __future__ import annotations

from datetime import datetime

from activities.metrics import Reading
from activities.models import CheckResult
from runbook.policy import HealthCriterion, QualityCheck, compare


def number(value: float | None) -> str:
    return "no data" if value is None else f"{value:.4g}"


def expected(criterion: HealthCriterion, baseline: float | None = None) -> str:
    if criterion.relative_to_baseline:
        return f"{criterion.comparison} {criterion.value:g}× baseline {number(baseline)}"
    return f"{criterion.comparison} {criterion.value:g}"


def judge(criterion: HealthCriterion, reading: Reading, at: datetime) -> CheckResult:
    value = reading.values.get(criterion.metric)
    baseline = reading.baselines.get(criterion.metric)
    result = CheckResult(
        id=criterion.id,
        name=criterion.name,
        passed=False,
        value=value,
        expected=expected(criterion, baseline),
        at=at,
    )
    if value is None:
        result.detail = f"no data for {criterion.metric}"
        return result
    compared = value
    if criterion.relative_to_baseline:
        if baseline is None or baseline <= 0:
            result.detail = f"no usable baseline for {criterion.metric} ({number(baseline)})"
            return result
        compared = value / baseline
        result.detail = f"{compared:.2f}× baseline"
    result.passed = compare(criterion.comparison, compared, criterion.value)
    return result


def judge_quality(check: QualityCheck, value: float | None, at: datetime) -> CheckResult:
    needs = [f">= {check.at_least:g}"] if check.at_least is not None else []
    needs += [f"<= {check.at_most:g}"] if check.at_most is not None else []
    passed = value is not None
    if value is not None and check.at_least is not None:
        passed = passed and value >= check.at_least
    if value is not None and check.at_most is not None:
        passed = passed and value <= check.at_most
    return CheckResult(
        id=check.id,
        name=check.name,
        passed=passed,
        value=value,
        expected=" and ".join(needs) or "any value",
        detail="" if value is not None else f"no data for {check.metric}",
        at=at,
    )


def line(check: CheckResult) -> str:
    """ "p99 latency back at baseline: failed, last 0.41 (needs <= 1.05× baseline 0.18)"."""
    verdict = "held" if check.passed else "failed"
    last = f", last {number(check.value)}" if check.value is not None else ""
    detail = f"; {check.detail}" if check.detail and not check.passed else ""
    return f"{check.name}: {verdict}{last} (needs {check.expected}{detail})"


def summary(checks: list[CheckResult], what: str) -> str:
    failed = [c for c in checks if not c.passed]
    head = (
        f"all {len(checks)} {what} held"
        if not failed
        else f"{len(failed)} of {len(checks)} {what} failed"
    )
    ordered = failed + [c for c in checks if c.passed]
    return f"{head}: " + "; ".join(line(c) for c in ordered)
