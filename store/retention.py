"""Retention of run folders: after a publish, the folders of runs nothing serves any more are deleted.

Only folders of runs this warehouse recorded are candidates (an operator's ``runs/golden`` is never
touched), a symbolic link is never followed or deleted, and a folder that cannot be removed is a
warning: the night is already published, nothing here can unpublish it.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .db import connect_state, sql

log = logging.getLogger(__name__)


def remove_run_folders(warehouse: str | Path, keep: int) -> list[str]:
    """Delete the folders of recorded runs that are neither served by the last ``keep`` versions nor running."""
    root = Path(warehouse) / "runs"
    if not root.is_dir() or root.is_symlink():
        return []
    with connect_state(warehouse, read_only=True) as con:
        recorded = {r for (r,) in con.execute("select run_id from runs").fetchall()}
        kept = {r for (r,) in con.execute(sql("publish/retention.sql"), [keep]).fetchall()}
        kept |= {r for (r,) in con.execute("select run_id from runs where status = 'running'").fetchall()}
    removed = []
    for folder in root.iterdir():
        if folder.name not in recorded or folder.name in kept:
            continue
        if folder.is_symlink() or not folder.is_dir():
            log.warning("retention: %s is not a plain folder; left alone", folder)
            continue
        try:
            shutil.rmtree(folder)
            removed.append(folder.name)
        except OSError as e:
            log.warning("retention: could not delete %s (%s); left in place", folder, e.strerror)
    if removed:
        log.info("retention: deleted the folders of %d old runs", len(removed))
    return removed
