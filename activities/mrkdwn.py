"""Slack's mrkdwn from GitHub Markdown, and a long text as Block Kit sections within Slack's
limits (a section's text ≤ 3,000 characters, a message ≤ 50 blocks, a header ≤ 150).

Slack shows `# Title`, `**bold**` and `- [ ]` as literal characters: headings become bold
lines, `**x**` becomes `*x*`, task boxes become ☐/☑, bullets become •, `[text](url)` becomes
`<url|text>`; `&`, `<` and `>` are escaped as Slack asks, except in links and mentions.
"""

from __future__ import annotations

import re
from typing import Any

SECTION_LIMIT = 3000
BLOCK_LIMIT = 50
HEADER_LIMIT = 150
FALLBACK_LIMIT = 3000
"""The `text` fallback (notifications, screen readers): the start of the document."""

HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
TASK = re.compile(r"^(\s*)[-*+]\s+\[([ xX])\]\s+(.*)$")
BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
BOLD = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
LINK = re.compile(r"\[([^\]]+)\]\((https?://[^)\s]+)\)")
SLACK_TOKEN = re.compile(r"<(?:[@#!][^>]*|https?://[^>]*)>")


def escape(text: str) -> str:
    """`&`, `<`, `>` escaped, Slack's own `<@U…>`, `<#C…>`, `<!here>` and `<url|text>` kept."""
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return f"\x00{len(kept) - 1}\x00"

    text = SLACK_TOKEN.sub(keep, text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"\x00(\d+)\x00", lambda m: kept[int(m.group(1))], text)


REASON_LIMIT = 2500
"""An escalation's reason in a section (≤ 3,000 with the heading and the stage line)."""


def verbatim(text: str, limit: int = REASON_LIMIT) -> str:
    """Text that came from outside (an alert's summary, a person's words) shown as it is: every
    `&`, `<`, `>` escaped (no `<!channel>` from an alert), clipped to `limit`."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inline(text: str) -> str:
    text = LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1)}>", text)
    text = escape(text)
    return BOLD.sub(lambda m: f"*{m.group(1) or m.group(2)}*", text)


def from_markdown(markdown: str) -> str:
    """GitHub Markdown as mrkdwn, line by line."""
    out = []
    for line in markdown.splitlines():
        if heading := HEADING.match(line):
            out.append(f"*{inline(heading.group(1)).strip('*')}*")
        elif task := TASK.match(line):
            box = "☐" if task.group(2) == " " else "☑"
            out.append(f"{task.group(1)}{box} {inline(task.group(3))}")
        elif bullet := BULLET.match(line):
            out.append(f"{bullet.group(1)}• {inline(bullet.group(2))}")
        else:
            out.append(inline(line))
    return "\n".join(out)


def sections(title: str, text: str, more: str = "") -> tuple[str, list[dict[str, Any]]]:
    """(fallback text, blocks): a header, then the text's paragraphs packed into sections of at
    most 3,000 characters; past 50 blocks the rest is left out and `more` says where it is."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, HEADER_LIMIT)}}
    ]
    for chunk in _chunks(text):
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    if len(blocks) > BLOCK_LIMIT:
        left_out = len(blocks) - (BLOCK_LIMIT - 1)
        blocks = blocks[: BLOCK_LIMIT - 1]
        note = f"… {left_out} more section(s) left out" + (f": {more}" if more else "")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    fallback = _clip(f"{title}\n{text}", FALLBACK_LIMIT)
    return fallback, blocks


def _chunks(text: str) -> list[str]:
    """Paragraphs (split at blank lines and before bold headings) packed up to the limit; a
    longer paragraph is cut at line ends, a longer line at the limit."""
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n|\n(?=\*[^*\n]+\*\n)", text)]
    chunks: list[str] = []
    current = ""
    for paragraph in filter(None, paragraphs):
        for piece in _pieces(paragraph):
            joined = f"{current}\n\n{piece}" if current else piece
            if len(joined) <= SECTION_LIMIT:
                current = joined
            else:
                chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return chunks


def _pieces(paragraph: str) -> list[str]:
    if len(paragraph) <= SECTION_LIMIT:
        return [paragraph]
    pieces: list[str] = []
    current = ""
    for line in paragraph.split("\n"):
        while len(line) > SECTION_LIMIT:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:SECTION_LIMIT])
            line = line[SECTION_LIMIT:]
        joined = f"{current}\n{line}" if current else line
        if len(joined) <= SECTION_LIMIT:
            current = joined
        else:
            pieces.append(current)
            current = line
    if current:
        pieces.append(current)
    return pieces


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
