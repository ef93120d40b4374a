"""Parsing ``NAME=TREATMENT_PERCENT`` deployment arguments."""

from __future__ import annotations

from simulator.state import check_name


def parse_deployment_arg(text: str) -> tuple[str, int]:
    """``"search-a=25"`` -> ``("search-a", 25)``; ``ValueError`` with a readable message."""
    name, sep, percent = text.partition("=")
    name, percent = name.strip(), percent.strip()
    if not sep or not name or not percent:
        raise ValueError(f"expected NAME=TREATMENT_PERCENT, got {text!r}")
    check_name(name)
    if not percent.isdigit() or not 0 <= int(percent) <= 100:
        raise ValueError(
            f"treatment percent must be an integer from 0 to 100, got {percent!r} in {text!r}"
        )
    return name, int(percent)
