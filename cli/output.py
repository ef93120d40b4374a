"""Printing for people (Rich) and for scripts (JSON)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Any

import typer
from pydantic import BaseModel
from rich.console import Console

from contract.rollback import DecisionReply

# Piped output is not cut to 80 columns: names and ids must survive a grep.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
errors = Console(stderr=True, highlight=False)


class Format(StrEnum):
    text = "text"
    json = "json"


def reply_line(reply: DecisionReply) -> str:
    """How a decision, an approval or an acknowledgement was answered, in one line."""
    return ("accepted: " if reply.accepted else "rejected: ") + reply.message


def show_reply(reply: DecisionReply, format: Format) -> None:
    """Print the answer; a refusal exits 1."""
    if format is Format.json:
        print_json(reply)
    else:
        console.print(reply_line(reply))
    if not reply.accepted:
        raise typer.Exit(1)


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
        text = json.dumps([v.model_dump(mode="json") for v in value], indent=2)
    else:
        text = json.dumps(value, indent=2, default=str)
    console.print_json(text) if console.is_terminal else print(text)
