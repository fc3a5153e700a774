"""The panels' shared look: colours by meaning, and the one-line message every panel shows above its content."""
from __future__ import annotations

import html

COLORS = {"error": "#b00020", "warning": "#a15c00", "success": "#2e7d32", "info": "#555"}


def color(level: str) -> str:
    """The colour of a level (error, warning, success, info); grey for anything else."""
    return COLORS.get(level, COLORS["info"])


def message_html(text: str, level: str = "info", title: str = "") -> str:
    """A panel's message line (`text` is HTML already; `title`, plain text, is put in bold before it)."""
    prefix = f"<b>{html.escape(title)}:</b> " if title else ""
    return f"<div class='asr-msg asr-msg-{level}' style='color:{color(level)}'>{prefix}{text}</div>"


def error_span(text: str) -> str:
    """`text` (HTML already) in the error colour, inline."""
    return f"<span style='color:{COLORS['error']}'>{text}</span>"
