"""A message a workflow has not sent yet, in a form that survives continue-as-new."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Outgoing(BaseModel):
    """One message on its way (a Slack post, a page's resolve): the activity that sends it, by
    name, and its input as JSON. A run that continues as new hands the ones not sent yet to
    the next run, which sends them in the order they were made."""

    what: str
    """For the timeline: "rollback report", "page resolve"."""
    activity: str
    arg: dict[str, Any]
