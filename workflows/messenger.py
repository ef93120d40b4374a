"""Background work of a workflow: messages, escalations, held comms, reports.

One retry policy for every message, one way to say what failed, and one drain before the run
ends. A message that could not be sent is recorded (and never holds the rollback up); anything
else that goes wrong inside a background task is a bug, and fails the workflow task loudly
instead of vanishing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

R = TypeVar("R")
Record = Callable[[str, str], None]
"""(kind, message): how the messenger writes to its workflow's timeline."""

MESSAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
MESSAGE_ATTEMPT = timedelta(seconds=30)
MESSAGE_DEADLINE = timedelta(minutes=10)


def describe_failure(error: BaseException) -> str:
    """The innermost message: what the target (or Slack) actually said."""
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, ApplicationError) and error.type:
        return f"{error.type}: {error.message}"
    return str(error) or type(error).__name__


class Messenger:
    def __init__(self, record: Record, ui: bool) -> None:
        self._record = record
        self._ui = ui
        self._tasks: list[asyncio.Task[Any]] = []
        self._failure: BaseException | None = None

    def summary(self, text: str) -> str | None:
        """A Web UI summary, where the server supports them."""
        return text if self._ui else None

    async def call(
        self,
        what: str,
        method: Callable[[Any, Any], Awaitable[R]],
        inp: Any,
        *,
        deadline: timedelta = MESSAGE_DEADLINE,
    ) -> R | None:
        """Send now and wait for the answer; None (and a timeline entry) when it could not be
        sent."""
        sent, answer = await self._attempt(what, method, inp, deadline)
        return answer if sent else None

    async def deliver(
        self,
        what: str,
        method: Callable[[Any, Any], Awaitable[Any]],
        inp: Any,
        *,
        deadline: timedelta = MESSAGE_DEADLINE,
        supersedable: bool = False,
    ) -> bool:
        """Send now and wait; whether it went out (a failure is on the timeline).
        `supersedable`: cancelling the task stops the retries, and the task ends only once an
        attempt under way has settled (a later message then never lands before it)."""
        sent, _ = await self._attempt(what, method, inp, deadline, supersedable)
        return sent

    async def _attempt(
        self,
        what: str,
        method: Callable[[Any, Any], Awaitable[R]],
        inp: Any,
        deadline: timedelta,
        supersedable: bool = False,
    ) -> tuple[bool, R | None]:
        try:
            answer = await workflow.execute_activity_method(
                method,
                inp,
                start_to_close_timeout=min(MESSAGE_ATTEMPT, deadline),
                schedule_to_close_timeout=deadline,
                retry_policy=MESSAGE_RETRY,
                summary=self.summary(what[:1].upper() + what[1:]),
                cancellation_type=(
                    ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                    if supersedable
                    else ActivityCancellationType.TRY_CANCEL
                ),
            )
        except ActivityError as error:
            if supersedable and isinstance(error.cause, CancelledError):
                raise asyncio.CancelledError() from error  # superseded: not a failure
            self._record("message_failed", f"{what} could not be sent: {describe_failure(error)}")
            return False, None
        return True, answer

    def send(
        self,
        what: str,
        method: Callable[[Any, Any], Awaitable[Any]],
        inp: Any,
        *,
        deadline: timedelta = MESSAGE_DEADLINE,
    ) -> None:
        """Send in the background: a channel that is down never holds the rollback up."""
        self.spawn(self.deliver(what, method, inp, deadline=deadline))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        task = asyncio.ensure_future(work)
        task.add_done_callback(self._done)
        self._tasks.append(task)
        return task

    def check(self) -> None:
        """Raise what went wrong in a background task (a bug, never a message failure)."""
        if self._failure is not None:
            raise self._failure

    @property
    def pending(self) -> int:
        return sum(not task.done() for task in self._tasks)

    async def drain(self) -> None:
        """Wait for every background task, those started meanwhile included."""
        while True:
            self._tasks = [task for task in self._tasks if not task.done()]
            self.check()
            if not self._tasks:
                return
            await workflow.wait(list(self._tasks))  # asyncio.wait iterates a set

    def _done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()
