"""Connections to the warehouse's two databases, and the SQL files the product runs (``sql/``).

* the **state** (``state/state.duckdb``): the nightly writer's own database, opened read-write by the run
  that holds the warehouse lock (and read-only, briefly, by ``collabflow status``);
* the **served snapshot** (``collabflow.duckdb``): what readers open, always read-only, sandboxed
  (``connect_served``). The writer never opens it for writing: each publish replaces the file whole.

DuckDB 2.x notes: relations have no ``fetchone()``; use ``con.execute(...).fetchone()``.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from .paths import SQL_DIR, db_path, state_db

LOCK_TIMEOUT_S = float(os.environ.get("COLLABFLOW_LOCK_TIMEOUT", "30"))
VIEW_FILES = (
    "cold_users.sql",
    "latest_run.sql",
    "latest_recommendations.sql",
    "user_recommendations.sql",
    "run_history.sql",
    "latest_similar_items.sql",
)
# A reader's connection: no files outside the database, no extensions, settings locked.
SANDBOX = {
    "enable_external_access": False,
    "lock_configuration": True,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
READ_STATEMENTS = frozenset(getattr(duckdb.StatementType, name) for name in ("SELECT", "EXPLAIN", "PRAGMA", "CALL"))


class ReadOnlyError(ValueError):
    """A reader asked for something other than reading (the message says what and why)."""


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


_GLOB_CHARS = re.compile(r"[*?\[\]{}]")


@contextmanager
def literal_path(path: str | Path) -> Iterator[str]:
    """A path DuckDB reads as that one file. DuckDB's file readers expand ``*``, ``?``, ``[...]`` and ``{...}``
    in any path, with no way to escape them, so a path that contains one (a warehouse called
    ``wh[prod]``) is reached through a symbolic link in a fresh temporary folder instead."""
    path = Path(path).resolve()
    if not _GLOB_CHARS.search(str(path)):
        yield str(path)
        return
    folder = Path(tempfile.mkdtemp(prefix="collabflow-"))
    try:
        link = folder / ("file" + "".join(path.suffixes[-1:]))
        link.symlink_to(path)
        if _GLOB_CHARS.search(str(link)):
            raise ValueError(f"cannot read {path} literally: the temporary folder {folder} has glob characters too")
        yield str(link)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def sql_literal(value: str | Path) -> str:
    """A quoted SQL string literal (for COPY targets, which take no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


# DuckDB's memory_limit for the writer's connections. At 1GB the index step of an ML-25M-shaped night (25M
# ratings: the latest per pair, joined to the index) spilled to disk: 12.6 s, against 7.7 s at 2GB (2.51 GB
# RSS then, under the night's peak of 3.4 GB in training); ML-10M did not spill at either
WRITER_MEMORY = os.environ.get("COLLABFLOW_DB_MEMORY", "2GB")


@contextmanager
def connect(
    path: Path, read_only: bool = False, lock_timeout_s: float | None = None, config: dict[str, Any] | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open one database file. DuckDB lets one process write a file (or several read it); while another
    holds it, retry for ``lock_timeout_s`` (default ``$COLLABFLOW_LOCK_TIMEOUT`` or 30 s), then fail with a
    message that says who holds it and what to do."""
    timeout = LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s
    deadline, delay = time.monotonic() + timeout, 0.05
    if not read_only:  # the night's sorts and joins spill to disk beyond this instead of growing the process
        config = {"memory_limit": WRITER_MEMORY, **(config or {})}
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only, config=config or {})
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise
            if time.monotonic() >= deadline:
                holder = re.search(r"PID (\d+)", str(e))
                raise RuntimeError(
                    f"{path} is locked by another process{f' (pid {holder.group(1)})' if holder else ''} for more "
                    f"than {timeout:.0f}s; close the program that opened it for writing and retry"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def connect_state(
    warehouse: str | Path, read_only: bool = False, lock_timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The writer's state database (see ``store.state.open_warehouse``, which creates it)."""
    path = state_db(warehouse)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse state at {path}; run `collabflow run --warehouse {warehouse}` first")
    with connect(
        path, read_only=read_only, lock_timeout_s=lock_timeout_s, config=SANDBOX if read_only else None
    ) as con:
        yield con


@contextmanager
def connect_served(warehouse: str | Path, lock_timeout_s: float = 5.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A reader's connection to the served snapshot: read-only and sandboxed (no host files, no ATTACH, no
    extensions, settings locked). It keeps seeing the version it opened until it is closed."""
    path = db_path(warehouse)
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}; run `collabflow run --warehouse {warehouse}` first")
    with connect(path, read_only=True, lock_timeout_s=lock_timeout_s, config=SANDBOX) as con:
        yield con


def check_read_only(query: str) -> None:
    """Refuse anything but read statements (SELECT, EXPLAIN, PRAGMA, CALL), with a one-line reason."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as e:
        raise ReadOnlyError(" ".join(str(e).split())) from None
    for statement in statements:
        if statement.type not in READ_STATEMENTS:
            words = statement.query.split()
            kind = words[0].upper() if words else statement.type.name  # INSTALL, not DuckDB's "LOAD" type
            raise ReadOnlyError(
                f"{kind} statements are not allowed: the warehouse is read-only for queries "
                f"(only SELECT, EXPLAIN, PRAGMA and CALL); refused: {statement.query.strip()[:80]}"
            )


ID_TYPES = {"int": "bigint", "str": "varchar"}
ID_TABLES = ("ratings", "user_index", "item_index", "recommendations", "items", "similar_items", "users_meta")


def id_types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The warehouse's id types per role ("int" or "str"; "int" until a night decided otherwise)."""
    meta = dict(con.execute("select key, value from warehouse_meta").fetchall())
    return {role: meta.get(f"{role}_id_type", "int") for role in ("user", "item")}


def apply_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create tables and views if missing (idempotent); id columns take the warehouse's id types."""
    con.execute(sql("schema.sql"))
    types = id_types(con)
    con.execute(sql("id_tables.sql").format(user_id=ID_TYPES[types["user"]], item_id=ID_TYPES[types["item"]]))
    for view in VIEW_FILES:
        con.execute(sql(view))


def retype_id_tables(con: duckdb.DuckDBPyConnection, wanted: dict[str, str]) -> bool:
    """Give the id tables of a warehouse that holds no ratings yet the id types of its first night (key
    columns cannot change type, so the empty tables are made anew). True if anything changed."""
    current = {
        role: str(
            scalar(
                con,
                "select data_type from information_schema.columns where table_name = "
                f"'ratings' and column_name = '{role}_id'",
            )
        ).lower()
        for role in ("user", "item")
    }
    target = {role: ID_TYPES[wanted.get(role, "int")] for role in ("user", "item")}
    if current == target:
        return False
    if scalar(con, "select count(*) from ratings"):
        raise RuntimeError(f"the warehouse's ids are {current}, its ratings cannot take {target} ids")
    for table in ID_TABLES:
        con.execute(f"drop table if exists {table} cascade")
    con.execute(sql("id_tables.sql").format(user_id=target["user"], item_id=target["item"]))
    for view in VIEW_FILES:
        con.execute(sql(view))
    return True


def checks(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """Run every query of sql/checks.sql; ``(check name, offending rows)`` for those returning rows."""
    failures = []
    for block in sql("checks.sql").split("-- check:")[1:]:
        name, _, query = block.partition("\n")
        n = scalar(con, f"select count(*) from ({query.strip().rstrip(';')})")
        if n:
            failures.append((name.strip(), int(n)))
    return failures
