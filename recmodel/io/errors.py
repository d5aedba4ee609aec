"""The one error an input file raises when it cannot be read as a whole."""

from __future__ import annotations

from pathlib import Path


class RatingsFileError(ValueError):
    """A rating file that cannot be read at all. The message names the file, the problem and the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str = ""):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{path}: {problem}. {fix}" if fix else f"{path}: {problem}")
