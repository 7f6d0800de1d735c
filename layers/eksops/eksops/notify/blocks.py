"""Block Kit building blocks that respect Slack's limits, truncating with a visible marker."""

from __future__ import annotations

import re
from typing import Any

SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
FIELD_TEXT_LIMIT = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
CONTEXT_ELEMENTS = 10
FALLBACK_TEXT_LIMIT = 3000
TRUNCATED = "… (truncated)"


def clip(text: str, limit: int, marker: str = TRUNCATED) -> str:
    """``text`` cut to ``limit`` characters, ending with the marker when it was cut."""
    return text if len(text) <= limit else text[: limit - len(marker)] + marker


_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


def well_formed(value: Any) -> Any:
    """``value`` (text, or lists and dicts of it) with every lone surrogate replaced by U+FFFD.

    JSON may carry ``"\\ud800"``, which Python decodes to a code point no UTF-8 text can hold: a payload with
    one cannot be encoded for Slack or a log line.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [well_formed(item) for item in value]
    if isinstance(value, dict):
        return {well_formed(key): well_formed(item) for key, item in value.items()}
    return value


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters.

    Every value taken from a payload goes through this before it reaches mrkdwn text, so ``<!channel>`` or
    ``<https://evil|innocent>`` in an event arrives as text, not as a mention or a link.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def safe_url(url: str) -> str:
    """``url`` fit for ``<url|label>``: the characters that would end or split the link are percent-encoded."""
    return "".join(_URL_ESCAPES.get(ch, ch) if ch.isprintable() and ch != " " else "%20" for ch in url)


_URL_ESCAPES = {"<": "%3C", ">": "%3E", "|": "%7C"}


def header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text or "-", HEADER_TEXT_LIMIT, "…"), "emoji": True},
    }


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text or "-", SECTION_TEXT_LIMIT)}}


def fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A section of up to ten label/value fields (extra pairs are dropped with a marker). Labels and values are
    escaped here: pass them as plain text."""
    shown = pairs[:MAX_FIELDS]
    items = [
        {"type": "mrkdwn", "text": clip(f"*{escape(label)}*\n{escape(value)}", FIELD_TEXT_LIMIT)}
        for label, value in shown
    ]
    if len(pairs) > MAX_FIELDS:
        items[-1] = {"type": "mrkdwn", "text": f"… and {len(pairs) - MAX_FIELDS + 1} more fields"}
    return {"type": "section", "fields": items}


def context(*texts: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": clip(t, SECTION_TEXT_LIMIT)} for t in texts[:CONTEXT_ELEMENTS] if t],
    }


def code(text: str) -> dict[str, Any]:
    """A preformatted block of plain ``text`` (escaped here: Slack parses mentions even inside code)."""
    fence = "```"
    body = clip(escape(text), SECTION_TEXT_LIMIT - 2 * len(fence) - 2)
    return section(f"{fence}\n{body}\n{fence}" if body else "-")


def link(url: str, label: str) -> str:
    """A mrkdwn link to one of eksops' own URLs (console, runbook) with a plain-text label."""
    return f"<{safe_url(url)}|{escape(label)}>"


def limit_blocks(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """At most 50 blocks; the last one says how many were left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    kept.append(context(f"… {len(blocks) - len(kept)} more blocks truncated (Slack allows {MAX_BLOCKS})"))
    return kept


def lines_section(lines: list[str], *, title: str = "") -> dict[str, Any]:
    """Bullet lines in one section, cut at the section limit with a count of what was left out."""
    prefix = f"*{title}*\n" if title else ""
    out: list[str] = []
    used = len(prefix)
    for index, line in enumerate(lines):
        entry = f"• {line}"
        remaining = len(lines) - index
        if used + len(entry) + 1 > SECTION_TEXT_LIMIT - 40:
            out.append(f"… and {remaining} more (truncated)")
            break
        out.append(entry)
        used += len(entry) + 1
    return section(prefix + "\n".join(out))
