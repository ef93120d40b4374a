"""Continue-as-new, one way for the rollback, the follow-ups and the canary watch: a run hands
over when its history grows long (well before Temporal's limits), and it hands over everything
it knows (one state structure per workflow), with nothing left waiting on it: every update is
answered first, and the messages not sent yet go along (`Messenger.unsent`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.messenger import Messenger

SETTLE_WITHIN = timedelta(seconds=30)
"""How long a hand-over waits for messages on their way to settle (each settled one is not sent
again by the next run); what is still retrying then goes along, unsent."""


def history_long(limit: int) -> bool:
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > limit


async def settle(messenger: Messenger, *, unless: Callable[[], bool] = lambda: False) -> bool:
    """Wait for the background work (messages, climbs, clocks) and every handler; True when
    `unless` came true first (a trigger arrived as the run was ending: no more waiting)."""
    while True:
        await workflow.wait_condition(
            lambda: unless() or (messenger.idle and workflow.all_handlers_finished())
        )
        messenger.check()
        if unless():
            return True
        if messenger.idle and workflow.all_handlers_finished():
            return False


async def quiesce(messenger: Messenger, *, within: timedelta = SETTLE_WITHIN) -> None:
    """Before a hand-over: messages under way settle (bounded), every handler finishes."""
    if messenger.sending:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: not messenger.sending,
                timeout=within,
                timeout_summary="messages settle before the hand-over",
            )
    messenger.check()
    await workflow.wait_condition(workflow.all_handlers_finished)
