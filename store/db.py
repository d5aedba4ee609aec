"""Connections to the warehouse database and the SQL files the product runs (``sql/``).

DuckDB 2.x notes: relations have no ``fetchone()``; use ``con.execute(...).fetchone()``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from .paths import SQL_DIR, db_path, private_dir

LOCK_TIMEOUT_S = float(os.environ.get("COLLABFLOW_LOCK_TIMEOUT", "60"))
VIEW_FILES = (
    "cold_users.sql",
    "latest_run.sql",
    "latest_recommendations.sql",
    "user_recommendations.sql",
    "run_history.sql",
    "latest_similar_items.sql",
)


@cache
def sql(name: str) -> str:
    """The text of ``sql/<name>`` (parameters are bound with ``?``, never formatted in)."""
    return (SQL_DIR / name).read_text()


def scalar(con: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None) -> Any:
    """The first column of the first row of a query that always returns one row (``count(*)``, ...)."""
    row = con.execute(query, params or []).fetchone()
    if row is None:
        raise RuntimeError(f"expected one row from: {query}")
    return row[0]


def sql_literal(value: str | Path) -> str:
    """A quoted SQL string literal (for COPY targets, which take no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


@contextmanager
def connect(
    warehouse: str | Path, read_only: bool = False, lock_timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse. DuckDB lets one process hold the file; while another does (a reader, or the
    nightly writer), retry for ``lock_timeout_s`` (default ``$COLLABFLOW_LOCK_TIMEOUT`` or 60 s), then
    fail with a message that says who holds it and what to do."""
    path = db_path(warehouse)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}; run `collabflow run --warehouse {warehouse}` first")
    if not read_only:
        private_dir(path.parent)
    created = not path.exists()
    timeout = LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s
    deadline, delay = time.monotonic() + timeout, 0.1
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise
            if time.monotonic() >= deadline:
                holder = re.search(r"PID (\d+)", str(e))
                raise RuntimeError(
                    f"{path} is locked by another process{f' (pid {holder.group(1)})' if holder else ''} for more "
                    f"than {timeout:.0f}s. DuckDB allows one process at a time: close read connections to the "
                    f"warehouse (or wait for the nightly run) and retry"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    if created and not read_only:
        os.chmod(path, 0o600)
    try:
        yield con
    finally:
        con.close()


def ensure_schema(warehouse: str | Path) -> None:
    """Create tables and views if missing (idempotent)."""
    with connect(warehouse) as con:
        con.execute(sql("schema.sql"))
        for view in VIEW_FILES:
            con.execute(sql(view))


def checks(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """Run every query of sql/checks.sql; ``(check name, offending rows)`` for those returning rows."""
    failures = []
    for block in sql("checks.sql").split("-- check:")[1:]:
        name, _, query = block.partition("\n")
        n = scalar(con, f"select count(*) from ({query.strip().rstrip(';')})")
        if n:
            failures.append((name.strip(), int(n)))
    return failures
