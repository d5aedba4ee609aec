"""Publishing a night: one atomic step from the last served version to the next.

1. copy the state to ``state/next.duckdb``;
2. in one transaction on the copy: merge the night's ratings, files, quarantine, index rows, metadata and
   lists, mark the run published as version ``last + 1``, apply retention, run ``sql/checks.sql``; any
   failing check (or error) rolls it all back and nothing else happens;
3. copy the result over ``collabflow.duckdb`` (temp file, fsync, rename): **the commit point** readers see;
4. rename the copy over the state (``store.state`` recovers if a crash falls between 3 and 4).

Readers never wait: they keep the snapshot they opened; new connections get the new one.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from recmodel.lists import RunLists

from . import durable, faults
from .db import checks, connect, literal_path, scalar, sql, sql_literal
from .night import NightPlan
from .paths import check_run_id, db_path, next_db, now, private_dir, served_tmp, state_db
from .runs import RunRejected
from .state import served_mode

log = logging.getLogger(__name__)


class _Clock:
    """Seconds per step, for the log line an operator reads when a publish is slow."""

    def __init__(self) -> None:
        self.t = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now_ = time.perf_counter()
        self.laps.append((name, now_ - self.t))
        self.t = now_

    def __str__(self) -> str:
        return ", ".join(f"{name} {seconds:.2f}s" for name, seconds in self.laps)


@dataclass(frozen=True)
class Published:
    version: int
    run_id: str
    n_recommendations: int


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back, never hiding the error that made us (a failed commit leaves no transaction to end)."""
    try:
        con.execute("rollback")
    except duckdb.Error:
        pass


def _insert_from(con: duckdb.DuckDBPyConnection, statement: str, params: list[Any], path: str) -> None:
    with literal_path(path) as literal:
        con.execute(sql(statement), [*params, literal])


def _merge_night(con: duckdb.DuckDBPyConnection, warehouse: Path, plan: NightPlan) -> None:
    """Tonight's ratings, index rows, file records, quarantine and metadata (see ``store.night``)."""
    when = now()
    with literal_path(plan.delta) as delta:
        # a view of the Parquet file, read twice, not a copy: a temp table of 10M ratings (with their file
        # hashes) outgrew the writer's memory limit and spilled, 3.5 s against 1.7 s
        con.execute(f"create or replace temp view delta as select * from read_parquet({sql_literal(delta)})")
        if plan.kind.feedback == "implicit":  # events add up
            con.execute(sql("publish/implicit_merge.sql"))
            con.execute(sql("publish/implicit_insert.sql"))
        else:  # the latest rating wins
            con.execute(sql("publish/delete_replaced.sql"))
            con.execute(sql("publish/insert_delta.sql"))
        con.execute("drop view delta")
    for role, path in (("user", plan.new_users), ("item", plan.new_items)):
        with literal_path(path) as rows:
            con.execute(f"insert into {role}_index select {role}_id, {role}_idx from read_parquet(?)", [rows])
    ingested = private_dir(warehouse / "ingested")
    for f in plan.loaded:
        assert f.staged is not None  # plan.loaded holds staged files only
        copy = ingested / f"{f.file_hash[:32]}.parquet"  # the durable copy of the file's valid rows
        if not copy.exists():
            durable.copy(f.staged, copy, copy.with_name(copy.name + ".tmp"))
        con.execute(
            "insert into ingested_files values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                f.file_hash,
                str(Path(f.path).absolute()),
                f.rows_read,
                f.rows_loaded,
                f.rows_quarantined,
                f.rows_superseded,
                str(copy.relative_to(warehouse)),
                when,
                plan.run_id,
            ],
        )
        if f.quarantine is not None:
            with literal_path(f.quarantine) as rows:
                con.execute(
                    "insert into quarantine select ?, ?, row_number, reason, raw, ?, ? from read_parquet(?)",
                    [f.file_hash, str(Path(f.path).absolute()), when, plan.run_id, rows],
                )
    for path in plan.metadata_quarantine:
        _insert_from(con, "publish/quarantine.sql", [when, plan.run_id], path)
    if plan.items is not None:
        with literal_path(plan.items) as items:
            con.execute("insert or replace into items select item_id, title, genres from read_parquet(?)", [items])
    if plan.users is not None:  # metadata belongs to the night that read it: tonight's file, or none
        with literal_path(plan.users) as users:
            con.execute("create or replace table users_meta as select * from read_parquet(?)", [users])
    else:
        con.execute("delete from users_meta")
    kind = plan.kind  # the warehouse keeps the kind of its first published night
    facts = {"feedback": kind.feedback, **{f"{r}_id_type": t for r, t in kind.id_types.items()}}
    for key, value in facts.items():
        if value is not None:
            con.execute(
                "insert into warehouse_meta select ?, ? where not exists (select 1 from warehouse_meta where key = ?)",
                [key, value, key],
            )


def _add_lists(con: duckdb.DuckDBPyConnection, run_id: str, lists: RunLists) -> int:
    for part in lists.parts:
        _insert_from(con, "publish/recommendations.sql", [run_id], part)
    _insert_from(con, "publish/similar_items.sql", [run_id], lists.similar_path)
    return int(scalar(con, "select count(*) from recommendations where run_id = ?", [run_id]))


def _retain(con: duckdb.DuckDBPyConnection, keep_runs: int) -> None:
    """Only the lists of the last ``keep_runs`` versions stay (``runs`` and ``versions`` rows stay forever)."""
    kept = [r for (r,) in con.execute(sql("publish/retention.sql"), [keep_runs]).fetchall()]
    for table in ("recommendations", "similar_items"):
        con.execute(f"delete from {table} where run_id not in (select unnest(?::varchar[]))", [kept])


def _check(con: duckdb.DuckDBPyConnection, run_id: str, top_n: int, min_item_ratings: int) -> None:
    con.execute(
        f"create or replace temp view candidate_recommendations as "
        f"select * from recommendations where run_id = '{check_run_id(run_id)}'"
    )
    con.execute(f"set variable top_n = {int(top_n)}")
    con.execute(f"set variable min_item_ratings = {int(min_item_ratings)}")
    failures = checks(con)
    if failures:
        raise RunRejected("checks failed: " + ", ".join(f"{name} ({n} rows)" for name, n in failures))


def _commit(warehouse: Path, change: Callable[[duckdb.DuckDBPyConnection], Published], serve: bool = True) -> Published:
    """Apply ``change`` to a copy of the state in one transaction, then serve it (unless ``serve`` is off) and
    make it the state."""
    state, nxt = state_db(warehouse), next_db(warehouse)
    clock = _Clock()
    with connect(state) as con:
        con.execute("checkpoint")
    try:
        shutil.copyfile(state, nxt)
        clock.lap("copy")
        with connect(nxt) as con:
            con.execute("begin transaction")
            try:
                published = change(con)
                faults.point("publish")
                con.execute("commit")
            except BaseException:
                _rollback(con)
                raise
            clock.lap("apply")
            con.execute("checkpoint")
            clock.lap("checkpoint")
        if serve:
            durable.copy(nxt, db_path(warehouse), served_tmp(warehouse), mode=served_mode(warehouse))  # readers see it
            clock.lap("serve")
            faults.point("promote")
        durable.replace(nxt, state)
        clock.lap("promote")
    finally:
        nxt.unlink(missing_ok=True)
        nxt.with_name(nxt.name + ".wal").unlink(missing_ok=True)
    log.info("publish steps: %s (state %.0f MB)", clock, state.stat().st_size / 2**20)
    return published


def publish_night(
    warehouse: str | Path,
    run_id: str,
    plan: NightPlan,
    lists: RunLists,
    summary: dict[str, Any],
    top_n: int,
    keep_runs: int = 7,
    min_item_ratings: int = 1,
) -> Published:
    """Publish the night: its data and lists become version ``last + 1`` for every new reader, at once."""
    check_run_id(run_id)
    warehouse = Path(warehouse)

    def change(con: duckdb.DuckDBPyConnection) -> Published:
        _merge_night(con, warehouse, plan)
        n = _add_lists(con, run_id, lists)
        version = int(scalar(con, "select coalesce(max(version), 0) + 1 from versions"))
        when = now()
        con.execute(
            sql("publish/mark_published.sql"),
            [
                version,
                when,
                summary["n_ratings"],
                summary["n_users"],
                summary["n_items"],
                n,
                summary["device"],
                summary["data_hash"],
                json.dumps(summary["metrics"]),
                json.dumps(summary["timings"]),
                run_id,
            ],
        )
        con.execute("insert into versions values (?, ?, 'night', ?)", [version, run_id, when])
        _retain(con, keep_runs)
        _check(con, run_id, top_n, min_item_ratings)
        return Published(version, run_id, n)

    published = _commit(warehouse, change)
    log.info(
        "published version %d (run %s): %d recommendations", published.version, run_id, published.n_recommendations
    )
    return published


def rollback(warehouse: str | Path, run_id: str | None = None) -> Published:
    """Serve an earlier night's lists again, as a new version recorded as a rollback. ``run_id``: a run whose
    lists are still kept (default: the one the previous version served). Ratings stay as they are."""
    warehouse = Path(warehouse)

    def change(con: duckdb.DuckDBPyConnection) -> Published:
        rows = con.execute("select version, run_id from versions order by version desc").fetchall()
        if not rows:
            raise ValueError("nothing has been published yet; there is no version to roll back to")
        kept = {r for (r,) in con.execute("select distinct run_id from recommendations").fetchall()}
        target = run_id
        if target is None:
            current = rows[0][1]
            target = next((r for _, r in rows[1:] if r != current), None)
            if target is None:
                raise ValueError("there is no earlier version to roll back to")
        if target not in kept:
            choices = ", ".join(f"{r} (version {v})" for v, r in rows if r in kept) or "none"
            raise ValueError(f"the lists of run {target} are not kept any more (keep_runs); kept: {choices}")
        version = rows[0][0] + 1
        con.execute("insert into versions values (?, ?, 'rollback', ?)", [version, target, now()])
        n = int(scalar(con, "select count(*) from recommendations where run_id = ?", [target]))
        return Published(version, target, n)

    published = _commit(warehouse, change)
    log.info("version %d serves the lists of run %s again (rollback)", published.version, published.run_id)
    return published


def load_night_data(warehouse: str | Path, plan: NightPlan) -> None:
    """Merge a staged night's data (ratings, files, quarantine, indices, metadata) into the state without
    publishing anything: readers see it with the next publish. For checking ingestion on its own."""
    warehouse = Path(warehouse)

    def change(con: duckdb.DuckDBPyConnection) -> Published:
        _merge_night(con, warehouse, plan)
        return Published(0, plan.run_id, 0)

    _commit(warehouse, change, serve=False)
