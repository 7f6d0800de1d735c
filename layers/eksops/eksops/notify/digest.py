"""One Slack message for several reports that arrived together: grouped by kind and cluster, with counts, each
report's title and its first lines. A single report keeps its own layout."""

from __future__ import annotations

from collections.abc import Sequence

from eksops.notify.blocks import context, escape, header, lines_section, section
from eksops.notify.formats import EMOJI, SlackMessage, plain_emoji
from eksops.notify.severity import rank

DIGEST_KIND = "eksops:digest"
REPORTS_PER_GROUP = 5  # reports shown in full per group; the rest are counted
LINES_PER_REPORT = 3
LINE_CHARS = 300


def digest(messages: Sequence[SlackMessage]) -> SlackMessage:
    """The message to post for ``messages`` (at least one): the message itself when it is alone, else a digest.

    The digest takes the highest severity of its reports (its colour), and their cluster when they share one.
    """
    if not messages:
        raise ValueError("a digest needs at least one message")
    if len(messages) == 1:
        return messages[0]
    severity = max((m.severity for m in messages), key=rank)
    groups: dict[tuple[str, str | None], list[SlackMessage]] = {}
    for message in messages:
        groups.setdefault((message.kind, message.cluster), []).append(message)
    ordered = sorted(
        groups.items(), key=lambda item: (-max(rank(m.severity) for m in item[1]), item[0][0], item[0][1] or "")
    )
    clusters = {m.cluster for m in messages}
    cluster = next(iter(clusters)) if len(clusters) == 1 else None
    where = f" on {cluster}" if cluster else ""
    title = f"eksops: {len(messages)} reports{where}"
    overview = ", ".join(
        f"{len(group)} {_label(kind)}" + (f" ({name})" if name and not cluster else "")
        for (kind, name), group in ordered
    )
    blocks = [header(f"{plain_emoji(severity)} {title}"), section(escape(overview))]
    for (kind, name), group in ordered:
        heading = f"{escape(_label(kind))} · {escape(name) if name else 'no cluster'} · {len(group)} report(s)"
        entries = [_entry(m) for m in group[:REPORTS_PER_GROUP]]
        if len(group) > REPORTS_PER_GROUP:
            entries.append(f"… and {len(group) - REPORTS_PER_GROUP} more {escape(_label(kind))} reports")
        blocks.append(lines_section(entries, title=heading))
    blocks.append(
        context(
            f"eksops · {len(messages)} reports delivered together (reports queue batching window); each one is also "
            "on the reports topic and in the email"
        )
    )
    return SlackMessage(
        DIGEST_KIND,
        severity,
        f"{EMOJI[severity]} {escape(title)}: {escape(overview)}",
        blocks,
        cluster,
        title=title,
        summary=overview,
    )


def _label(kind: str) -> str:
    return kind.removeprefix("eksops:")


def _entry(message: SlackMessage) -> str:
    """A report in a digest: its severity, title and first lines (its summary when it has no lines)."""
    details = list(message.lines[:LINES_PER_REPORT]) or ([message.summary] if message.summary else [])
    text = f"{EMOJI.get(message.severity, EMOJI['unknown'])} *{escape(_clip(message.title))}*"
    text += "".join(f"\n      {escape(_clip(line))}" for line in details)
    if len(message.lines) > LINES_PER_REPORT:
        text += "\n      … more in the report"
    return text


def _clip(text: str) -> str:
    text = " ".join(text.split())  # a line of a digest is one line
    return text if len(text) <= LINE_CHARS else text[: LINE_CHARS - 1] + "…"
