"""Background work of a workflow: messages, escalations, held comms, reports.

One retry policy for every message, one way to say what failed, and one way to wait for it all
before the run ends. A message that could not be sent is recorded (and never holds the rollback
up); anything else that goes wrong inside a background task is a bug, and fails the workflow
task loudly instead of vanishing.

Every message on its way is known by the activity that sends it and its input, so a run that
continues as new hands the ones not sent yet to the next run (`unsent()`), which sends them in
the order they were made (`Messenger(carried=…)`). An `ordered` messenger sends its background
messages one after another, so retries never reorder them (a rollback's channel posts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from contract.outbox import Outgoing

R = TypeVar("R")
Record = Callable[[str, str], None]
"""(kind, message): how the messenger writes to its workflow's timeline."""
Method = Callable[[Any, Any], Awaitable[Any]]

MESSAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
MESSAGE_ATTEMPT = timedelta(minutes=2)
"""An attempt includes its wait for the channel's turn (Slack's pace: a busy channel's queue)."""
MESSAGE_DEADLINE = timedelta(minutes=10)
MESSAGE_MIN = timedelta(seconds=5)
"""The least a message in order is given, however late its turn came."""


def describe_failure(error: BaseException) -> str:
    """The innermost message: what the target (or Slack) actually said."""
    while error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, ApplicationError) and error.type:
        return f"{error.type}: {error.message}"
    return str(error) or type(error).__name__


@dataclass
class _OnTheWay:
    what: str
    target: Method | str
    """The activity method, or its name (a message carried from the previous run)."""
    arg: Any

    def outgoing(self) -> Outgoing:
        name = (
            self.target
            if isinstance(self.target, str)
            else activity._Definition.must_from_callable(self.target).name
        )
        arg = self.arg.model_dump(mode="json") if isinstance(self.arg, BaseModel) else self.arg
        return Outgoing(what=self.what, activity=name, arg=arg)


class Messenger:
    def __init__(
        self, record: Record, ui: bool, carried: Sequence[Outgoing] = (), ordered: bool = False
    ) -> None:
        self._record = record
        self._ui = ui
        self._ordered = ordered
        self._lane: asyncio.Future[Any] | None = None
        """The last message sent in order (`ordered`): the next one waits for it to settle."""
        self._tasks: list[asyncio.Task[Any]] = []
        self._failure: BaseException | None = None
        self._on_the_way: dict[int, _OnTheWay] = {}
        self._made = 0
        self._carried = list(carried)
        for item in self._carried:  # known at once: a hand-over before the resend keeps them
            self._made += 1
            self._on_the_way[self._made] = _OnTheWay(item.what, item.activity, item.arg)

    def resume(self) -> None:
        """Send what the previous run handed over, first to last (call from the run)."""
        if self._carried:
            self._lane = self.spawn(self._resend(len(self._carried)))
            self._carried = []

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
        sent. Not carried to the next run: its caller wants the answer."""
        sent, answer = await self._attempt(what, method, inp, deadline)
        return answer if sent else None

    async def deliver(
        self,
        what: str,
        method: Method | str,
        inp: Any,
        *,
        deadline: timedelta = MESSAGE_DEADLINE,
        supersedable: bool = False,
    ) -> bool:
        """Send now and wait; whether it went out (a failure is on the timeline).
        `supersedable`: cancelling the task stops the retries, and the task ends only once an
        attempt under way has settled (a later message then never lands before it)."""
        self._made += 1
        mine = self._made
        self._on_the_way[mine] = _OnTheWay(what, method, inp)
        try:
            sent, _ = await self._attempt(what, method, inp, deadline, supersedable)
        finally:
            self._on_the_way.pop(mine, None)
        return sent

    async def _attempt(
        self,
        what: str,
        method: Method | str,
        inp: Any,
        deadline: timedelta,
        supersedable: bool = False,
    ) -> tuple[bool, Any]:
        options: dict[str, Any] = {
            "start_to_close_timeout": min(MESSAGE_ATTEMPT, deadline),
            "schedule_to_close_timeout": deadline,
            "retry_policy": MESSAGE_RETRY,
            "summary": self.summary(what[:1].upper() + what[1:]),
            "cancellation_type": (
                ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                if supersedable
                else ActivityCancellationType.TRY_CANCEL
            ),
        }
        try:
            if isinstance(method, str):
                answer = await workflow.execute_activity(method, inp, **options)
            else:
                answer = await workflow.execute_activity_method(method, inp, **options)
        except ActivityError as error:
            if supersedable and isinstance(error.cause, CancelledError):
                raise asyncio.CancelledError() from error  # superseded: not a failure
            self._record("message_failed", f"{what} could not be sent: {describe_failure(error)}")
            return False, None
        return True, answer

    def send(
        self,
        what: str,
        method: Method,
        inp: Any,
        *,
        deadline: timedelta = MESSAGE_DEADLINE,
    ) -> None:
        """Send in the background: a channel that is down never holds the rollback up.
        `ordered`: one at a time, in the order they were made (a message retried is never
        overtaken by a later one; the channel's pace is kept by the worker)."""
        if not self._ordered:
            self.spawn(self.deliver(what, method, inp, deadline=deadline))
            return
        self._made += 1
        mine = self._made
        self._on_the_way[mine] = _OnTheWay(what, method, inp)
        self._lane = self.spawn(self._in_turn(self._lane, mine, workflow.now() + deadline))

    async def caught_up(self, within: timedelta) -> bool:
        """Wait (at most `within`) until every message sent in order so far has settled:
        a step that posts to the same channels then never lands before them. False when it
        did not happen in time (the step goes ahead; Slack is slow or down)."""
        lane = self._lane
        if lane is None or lane.done():
            return True
        try:
            await workflow.wait_condition(
                lane.done, timeout=within, timeout_summary="messages before the step"
            )
        except TimeoutError:
            return False
        return True

    async def _in_turn(
        self, before: asyncio.Future[Any] | None, mine: int, deadline: datetime
    ) -> None:
        """Message `mine`, once the one before it settled, within its own deadline (counted
        from when it was made: a long outage does not add up message after message)."""
        if before is not None and not before.done():
            await workflow.wait([before])
        item = self._on_the_way[mine]
        try:
            left = deadline - workflow.now()
            if left <= timedelta(0):
                self._record(
                    "message_failed",
                    f"{item.what} could not be sent: its deadline passed while the messages "
                    "before it were retried",
                )
                return
            await self._attempt(item.what, item.target, item.arg, max(left, MESSAGE_MIN))
        finally:
            self._on_the_way.pop(mine, None)

    async def _resend(self, count: int) -> None:
        """The previous run's messages not sent yet (keys 1 to `count`), each once."""
        for key in range(1, count + 1):
            item = self._on_the_way[key]
            try:
                await self._attempt(item.what, item.target, item.arg, MESSAGE_DEADLINE)
            finally:
                self._on_the_way.pop(key, None)

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

    @property
    def idle(self) -> bool:
        """Nothing in the background: every message settled, every climb and clock ended."""
        return self.pending == 0

    @property
    def sending(self) -> bool:
        """A message is on its way (sent, or retried)."""
        return bool(self._on_the_way)

    def unsent(self) -> list[Outgoing]:
        """Every message not sent yet, in the order it was made: what the next run sends."""
        return [self._on_the_way[key].outgoing() for key in sorted(self._on_the_way)]

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
