"""Printing for people (Rich) and for scripts (JSON)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


class Format(StrEnum):
    text = "text"
    json = "json"


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        text = value.model_dump_json(indent=2)
    elif isinstance(value, list) and value and isinstance(value[0], BaseModel):
        text = json.dumps([v.model_dump(mode="json") for v in value], indent=2)
    else:
        text = json.dumps(value, indent=2, default=str)
    console.print_json(text) if console.is_terminal else print(text)
