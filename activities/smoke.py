"""End-to-end smoke tests: real searches against the search endpoint."""

from __future__ import annotations

import asyncio

import httpx

from activities.models import CheckResult
from activities.targets import Target, fill
from runbook.policy import SmokeTest


class SmokeTests:
    """A failing search is retried a few times: the endpoint fails at its own error rate,
    and one unlucky request must not fail the step."""

    def __init__(self, target: Target, attempts: int, pause: float) -> None:
        self.target = target
        self.attempts = attempts
        self.pause = pause

    async def run(self, deployment: str, test: SmokeTest) -> CheckResult:
        url = self.target.url(fill(test.path, deployment=deployment))
        answer = ""
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.target.http.get(url, headers=self.target.headers)
            except httpx.HTTPError as error:
                answer = f"unreachable ({error or type(error).__name__})"
            else:
                if response.status_code == test.expect_status:
                    tries = f" on try {attempt}" if attempt > 1 else ""
                    return CheckResult(
                        id=test.id,
                        name=test.name,
                        passed=True,
                        expected=f"HTTP {test.expect_status}",
                        detail=f"GET {url}: {response.status_code}{tries}",
                    )
                answer = f"{response.status_code} {response.text[:120]}".strip()
            if attempt < self.attempts:
                await asyncio.sleep(self.pause)
        return CheckResult(
            id=test.id,
            name=test.name,
            passed=False,
            expected=f"HTTP {test.expect_status}",
            detail=f"GET {url} answered {answer} ({self.attempts} tries)",
        )
