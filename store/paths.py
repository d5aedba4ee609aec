"""Where things live in a warehouse folder, run ids, and owner-only folders."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

DB_NAME = "collabflow.duckdb"
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def db_path(warehouse: str | Path) -> Path:
    return Path(warehouse) / DB_NAME


def check_run_id(run_id: str) -> str:
    if not RUN_ID.match(run_id):
        raise ValueError(f"invalid run id {run_id!r}")
    return run_id


def run_dir(warehouse: str | Path, run_id: str) -> Path:
    return Path(warehouse) / "runs" / check_run_id(run_id)


def now() -> datetime:
    return datetime.now(UTC)


def new_run_id() -> str:
    """Sortable and unique: UTC time to the microsecond plus the pid."""
    return now().strftime("%Y%m%dT%H%M%S%fZ") + f"-{os.getpid()}"


def private_dir(path: str | Path) -> Path:
    """Create a folder readable by its owner only (the warehouse holds user data)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path
