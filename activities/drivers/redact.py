"""Secrets out of what a command printed, before it is kept in a step's result (and so in the
workflow's history, the channel and the report)."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
        ),
        "[private key]",
    ),
    (
        re.compile(
            r"(?i)\b((?:[a-z0-9_-]*[_-])?(?:password|passwd|secret|token|api[_-]?key|"
            r"access[_-]?key|auth)\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;)\]}]+)"
        ),
        rf"\1{MASK}",
    ),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), rf"\1 {MASK}"),
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]+|\bxapp-[A-Za-z0-9-]+"), MASK),
    (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), rf"\1{MASK}@"),
)
"""Private keys, `password=…`/`token: …` assignments, bearer tokens, Slack tokens, passwords
in URLs."""


class Redactor:
    """`secrets`: values known to be secret (the settings' tokens), masked wherever they
    appear; the patterns catch the usual shapes of others."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        for pattern, replacement in PATTERNS:
            text = pattern.sub(replacement, text)
        return text
