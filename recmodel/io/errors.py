"""Errors that are the input's fault, not a bug: they end a command with one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

TEXT_MAX = 2000  # characters of any message we store or show


class UserError(Exception):
    """A problem the user fixes (a bad file, a bad flag, a busy warehouse): the message says what and how.
    Logged without a traceback (``flows`` installs the filter); any other exception is a bug and keeps one."""


class RatingsFileError(ValueError, UserError):
    """A rating file that cannot be read at all. The message names the file, the problem and the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str = ""):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__((f"{path}: {problem}. {fix}" if fix else f"{path}: {problem}")[:TEXT_MAX])


def sample(value: bytes | str, limit: int = 40) -> str:
    """A short, escaped sample of input for a message: printable ASCII kept, everything else escaped, at most
    ``limit`` characters (input never reaches a message whole: it may be huge, or secret)."""
    text = value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    escaped = "".join(c if " " <= c <= "~" else f"\\x{ord(c):02x}" for c in escaped)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."
