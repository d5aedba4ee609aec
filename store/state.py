"""The writer's state database, the served snapshot made from it, and recovery between the two.

The state (``state/state.duckdb``) is the truth; the served snapshot (``collabflow.duckdb``) is a byte copy
of the state as of the latest publish, replaced whole and atomically (``store.publish``). Readers only
ever open the snapshot, so the writer never waits for them and they never see half a night.

A publish builds the next state as ``state/next.duckdb``, copies it over the served file (the commit
point readers see), then renames it over the state. A crash between those two renames leaves the served
snapshot one version ahead of the state; ``open_warehouse`` notices and copies it back (it is complete).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import duckdb

from . import durable
from .db import SANDBOX, apply_schema, connect, scalar, sql
from .paths import db_path, next_db, private_dir, served_tmp, state_db, state_dir

log = logging.getLogger(__name__)
LAYOUT = "2"  # 1: the served file was the writer's database (before 0.2); 2: state + served snapshot


def version_of(con: duckdb.DuckDBPyConnection) -> int:
    """The highest published version in a database (0: none; also for a layout-1 file)."""
    has = scalar(
        con, "select count(*) from duckdb_tables() where table_name = 'versions' and database_name = current_database()"
    )
    return int(scalar(con, "select coalesce(max(version), 0) from versions")) if has else 0


def served_version(warehouse: str | Path) -> int | None:
    """The served snapshot's latest version; None when there is no served file or it cannot be read."""
    path = db_path(warehouse)
    if not path.exists():
        return None
    try:
        with connect(path, read_only=True, lock_timeout_s=2.0, config=SANDBOX) as con:
            return version_of(con)
    except (duckdb.Error, RuntimeError) as e:
        log.warning(
            "the served snapshot %s cannot be read (%s); it will be rebuilt from the state",
            path,
            " ".join(str(e).split())[:200],
        )
        return None


def served_mode(warehouse: str | Path) -> int:
    """Read-only for its owner, and for the warehouse folder's group when that folder is group-readable
    (``chmod g+rx WAREHOUSE`` is how an operator shares the snapshot with a BI group)."""
    folder_mode = Path(warehouse).stat().st_mode
    return 0o440 if folder_mode & stat.S_IRGRP and folder_mode & stat.S_IXGRP else 0o400


def materialize(warehouse: str | Path) -> None:
    """Replace the served snapshot with a copy of the (checkpointed) state, atomically and durably."""
    with connect(state_db(warehouse)) as con:
        con.execute("checkpoint")
    durable.copy(state_db(warehouse), db_path(warehouse), served_tmp(warehouse), mode=served_mode(warehouse))


def _migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a state database to the current layout (idempotent)."""
    has_meta = scalar(con, "select count(*) from duckdb_tables() where table_name = 'warehouse_meta'")
    layout = (
        scalar(con, "select coalesce(max(value), '1') from warehouse_meta where key = 'layout'")
        if has_meta
        else ("1" if scalar(con, "select count(*) from duckdb_tables() where table_name = 'runs'") else LAYOUT)
    )
    if layout == "1":
        log.info("migrating a warehouse from the single-file layout: published runs become versions 1..n")
        con.execute("begin transaction")
        con.execute(sql("migrate/v2.sql"))
        apply_schema(con)
        con.execute("insert or replace into warehouse_meta values ('layout', ?)", [LAYOUT])
        con.execute("commit")
    apply_schema(con)
    con.execute("insert or replace into warehouse_meta values ('layout', ?)", [LAYOUT])


def open_warehouse(warehouse: str | Path) -> int:
    """Make a warehouse ready for the writer (who holds ``store.lock.exclusive``): create or migrate the
    state, recover from a publish that crashed between its two renames, and make sure the served snapshot
    is the state's latest version. Returns that version (0: nothing published yet)."""
    private_dir(warehouse)
    private_dir(state_dir(warehouse))
    state, served = state_db(warehouse), db_path(warehouse)
    if not state.exists() and served.exists():  # layout 1: the served file was the writer's database
        log.info("first run of this version on %s: its database becomes the writer's state", warehouse)
        durable.copy(served, state, state.with_name(state.name + ".tmp"), mode=0o600)
    fresh = not state.exists()
    with connect(state) as con:
        if fresh:
            os.chmod(state, 0o600)
        _migrate(con)
        state_version = version_of(con)
    ahead = served_version(warehouse)
    if ahead is not None and ahead > state_version:
        log.warning(
            "the last publish stopped between its two renames: the served snapshot (version %d) is "
            "ahead of the state (version %d); taking the snapshot as the state",
            ahead,
            state_version,
        )
        durable.copy(served, state, state.with_name(state.name + ".tmp"), mode=0o600)
        with connect(state) as con:
            _migrate(con)
        state_version = ahead
    elif state_version and (ahead is None or ahead < state_version):
        log.warning(
            "the served snapshot is missing or behind the state (version %s < %d); writing it again",
            ahead,
            state_version,
        )
        materialize(warehouse)
    for leftover in (next_db(warehouse), served_tmp(warehouse), state.with_name(state.name + ".tmp")):
        for path in (leftover, leftover.with_name(leftover.name + ".wal")):
            path.unlink(missing_ok=True)
    return state_version
