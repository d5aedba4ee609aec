"""Writing files so that a crash at any instant leaves either the old file or the whole new one.

The pattern: write a temporary file in the target's folder, ``fsync`` it, ``rename`` it over the target
(atomic on POSIX), then ``fsync`` the folder so the rename itself survives a power cut.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import polars as pl


def fsync_path(path: str | Path) -> None:
    """Flush a file's (or a folder's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(tmp: str | Path, target: str | Path) -> None:
    """Atomically put ``tmp`` (already complete) in place of ``target``, durably."""
    fsync_path(tmp)
    os.replace(tmp, target)
    fsync_path(Path(target).parent)


def copy(src: str | Path, target: str | Path, tmp: str | Path, mode: int | None = None) -> None:
    """``target`` becomes a byte copy of ``src``, all at once: copied to ``tmp`` first (same folder as
    ``target``), fsynced, given ``mode``, renamed into place."""
    shutil.copyfile(src, tmp)
    if mode is not None:
        os.chmod(tmp, mode)
    replace(tmp, target)


def write_parquet(frame: pl.DataFrame, path: str | Path) -> Path:
    """A Parquet file written whole or not at all, and on disk before anything references it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.write_parquet(tmp)
    replace(tmp, path)
    return path
