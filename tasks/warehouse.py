"""The warehouse: one folder with ``collabflow.duckdb``, durable Parquet copies and per-run files.

Plain functions (no Prefect) so they can be tested and reused; the Prefect tasks call them.
DuckDB 2.x notes: relations have no ``fetchone()``; use ``con.execute(...).fetchone()``.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb

DB_NAME = "collabflow.duckdb"
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
VIEW_FILES = ("latest_recommendations.sql", "user_recommendations.sql", "run_history.sql")
_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def db_path(warehouse: str | Path) -> Path:
    return Path(warehouse) / DB_NAME


def run_dir(warehouse: str | Path, run_id: str) -> Path:
    if not _RUN_ID.match(run_id):
        raise ValueError(f"invalid run id {run_id!r}")
    return Path(warehouse) / "runs" / run_id


def sql_literal(value: str | Path) -> str:
    """A quoted SQL string literal (for COPY targets, which take no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id() -> str:
    """Sortable and unique: UTC time to the microsecond plus the pid."""
    return now().strftime("%Y%m%dT%H%M%S%fZ") + f"-{os.getpid()}"


@contextmanager
def connect(warehouse: str | Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    path = db_path(warehouse)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}; run `collabflow run --warehouse {warehouse}` first")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as e:
        if "lock" in str(e).lower():
            raise RuntimeError(
                f"{path} is held by another process ({str(e).splitlines()[0]}); close that connection and retry"
            ) from None
        raise
    try:
        yield con
    finally:
        con.close()


def apply_sql_file(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute((SQL_DIR / name).read_text())


def ensure_schema(warehouse: str | Path) -> None:
    """Create tables and views if missing (idempotent)."""
    with connect(warehouse) as con:
        apply_sql_file(con, "schema.sql")
        for view in VIEW_FILES:
            apply_sql_file(con, view)


class WarehouseBusy(RuntimeError):
    pass


@contextmanager
def exclusive(warehouse: str | Path) -> Iterator[None]:
    """One run per warehouse at a time. The OS drops the lock when the process dies, even on kill -9."""
    Path(warehouse).mkdir(parents=True, exist_ok=True)
    lock_path = Path(warehouse) / ".collabflow.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise WarehouseBusy(
                f"another collabflow run (pid {holder}) is using {warehouse}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def start_run(warehouse: str | Path, run_id: str, source: str | None, config: dict, config_hash: str,
              versions: dict) -> None:
    """Record the run as 'running'; runs left 'running' by a crashed process become 'abandoned'."""
    with connect(warehouse) as con:
        con.execute("update runs set status = 'abandoned', error = 'process ended before the run finished' "
                    "where status = 'running'")
        con.execute(
            "insert into runs (run_id, status, started_at, source, config, config_hash, versions) "
            "values (?, 'running', ?, ?, ?, ?, ?)",
            [run_id, now(), source, json.dumps(config), config_hash, json.dumps(versions)],
        )


def succeeded_since(warehouse: str | Path, when: datetime) -> str | None:
    """The id of a run that started at or after ``when`` and succeeded, if any."""
    with connect(warehouse) as con:
        row = con.execute("select run_id from runs where status = 'succeeded' and started_at >= ? "
                          "order by started_at limit 1", [when]).fetchone()
    return row[0] if row else None


def fail_run(warehouse: str | Path, run_id: str, error: str) -> None:
    with connect(warehouse) as con:
        con.execute("update runs set status = 'failed', finished_at = ?, error = ? where run_id = ?",
                    [now(), error[:2000], run_id])


def publish_run(warehouse: str | Path, run_id: str, recommendations_path: str | Path, summary: dict) -> int:
    """Insert the run's recommendations and mark it succeeded in ONE transaction.

    Until the commit, readers of ``latest_recommendations`` see the previous run; a crash or an error
    rolls everything back, so a half-published run is never visible.
    """
    with connect(warehouse) as con:
        con.execute("begin transaction")
        try:
            con.execute(
                "insert into recommendations select ?, user_id, rank, item_id, score from read_parquet(?)",
                [run_id, str(recommendations_path)],
            )
            n = con.execute("select count(*) from recommendations where run_id = ?", [run_id]).fetchone()[0]
            con.execute(
                "update runs set status = 'succeeded', finished_at = ?, n_ratings = ?, n_users = ?, n_items = ?, "
                "n_recommendations = ?, device = ?, data_hash = ?, metrics = ?, timings = ? where run_id = ?",
                [now(), summary["n_ratings"], summary["n_users"], summary["n_items"], n, summary["device"],
                 summary["data_hash"], json.dumps(summary["metrics"]), json.dumps(summary["timings"]), run_id],
            )
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    return int(n)
