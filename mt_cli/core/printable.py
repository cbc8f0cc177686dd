"""The one escaping of user text shown on a terminal or written to a log.

Text read from files, pipes or clients (a hypothesis, a reference, a file name, a request's
path) may hold control characters: ESC sequences that clear or redraw a terminal, carriage
returns and line breaks that forge log lines. Wherever such text is shown, it goes through
`printable` (evaluate's worst lines, every message on stderr, the server's log lines).
"""

from __future__ import annotations

__all__ = ["printable"]


def printable(text: str) -> str:
    """`text` with control and other unprintable characters escaped (\\n, \\x1b, \\u2028):
    what a user or client sends cannot start a forged log line or drive a terminal."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in text)
