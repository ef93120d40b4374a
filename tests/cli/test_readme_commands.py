"""The README's command reference is the CLI: every command it lists exists with every option it
shows, and every command exists in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from cli.main import app

README = Path(__file__).parents[2] / "README.md"


def reference() -> list[str]:
    text = README.read_text()
    section = text.split("## The `rollback` command", 1)[1].split("\n## ", 1)[0]
    cells = [
        line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `rollback")
    ]
    return [usage for cell in cells for usage in re.findall(r"`(rollback [^`]+)`", cell)]


def command(root: Any, words: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command the words name, and the words left (its arguments and options)."""
    found = root
    while words and words[0] in getattr(found, "commands", {}):
        found = found.commands[words.pop(0)]
    return found, words


def test_every_listed_command_and_option_exists_and_every_command_is_listed() -> None:
    root: Any = typer.main.get_command(app)
    listed: set[str] = set()
    for usage in reference():
        words = usage.replace("\\|", "|").split()[1:]
        found, rest = command(root, words)
        assert found is not root, usage
        listed.add(usage.split()[1])  # the top-level command
        options = {o for p in found.params for o in [*p.opts, *p.secondary_opts]}
        for word in rest:
            for option in re.findall(r"--[a-z][a-z-]*", word):
                assert option in options, f"{usage}: {option} is not an option of it"
    missing = set(root.commands) - listed
    assert not missing, f"commands the README does not list: {sorted(missing)}"
