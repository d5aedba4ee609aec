"""Where things live in a warehouse folder, run ids, and folders we create.

WAREHOUSE/collabflow.duckdb   the served snapshot: what readers open (replaced whole by each publish)
WAREHOUSE/state/              the writer's own database (state.duckdb) and publish scratch files
WAREHOUSE/ingested/           a durable Parquet copy of each ingested file's valid rows
WAREHOUSE/runs/<run_id>/      one run's snapshot, staged input, models, lists and report
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

DB_NAME = "collabflow.duckdb"
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def db_path(warehouse: str | Path) -> Path:
    """The served snapshot readers open."""
    return Path(warehouse) / DB_NAME


def state_dir(warehouse: str | Path) -> Path:
    return Path(warehouse) / "state"


def state_db(warehouse: str | Path) -> Path:
    """The writer's database: the truth the next snapshot is built from. Readers never open it."""
    return state_dir(warehouse) / "state.duckdb"


def next_db(warehouse: str | Path) -> Path:
    """Scratch copy of the state that a publish applies the night to."""
    return state_dir(warehouse) / "next.duckdb"


def served_tmp(warehouse: str | Path) -> Path:
    """The new snapshot before it replaces the served one (same folder: the rename is atomic)."""
    return Path(warehouse) / ".collabflow.duckdb.tmp"


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
    """A folder readable by its owner only (the warehouse holds user data) when we create it; an existing
    folder keeps the permissions its owner gave it (a BI group's access, say)."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path
