"""Every failure a person can cause or meet, as one readable line and an exit code."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: exit code 2 and one line naming what is wrong."""

    exit_code = 2


class Failure(Exception):
    """The command ran but could not do its job (Temporal down, a decision refused): exit 1."""

    exit_code = 1
