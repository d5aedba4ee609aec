"""The night's plan: what tonight's staged files change, and the snapshot the models train on.

Files are merged in name order against the published ratings without touching them: for explicit
feedback the latest rating of a pair wins (at equal timestamps the later row, the later file); for implicit
feedback a pair's events add up. The result is one delta, published with the night (``store.publish``).
New ids get the next free indices (append-only). Per-file counts reconcile:
``rows_read = rows_loaded + rows_quarantined + rows_superseded`` (implicit events are all loaded).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from recmodel.io import RatingsFileError, UserError
from recmodel.snapshot import Snapshot

from . import durable, faults
from .db import connect_state, literal_path, retype_id_tables, scalar, sql, sql_literal
from .ingest import StagedNight, WarehouseKind
from .paths import private_dir, run_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestedFile:
    """One rating file's outcome; ``rows_read = rows_loaded + rows_quarantined + rows_superseded``."""

    path: str
    file_hash: str
    skipped: bool
    refused: str | None = None
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_superseded: int = 0
    staged: str | None = None
    quarantine: str | None = None


@dataclass(frozen=True)
class NightPlan:
    """What publishing the night will write: the rating delta, new index rows, file records, metadata."""

    run_id: str
    delta: str  # Parquet: user_id, item_id, rating, timestamp, file_hash
    new_users: str  # Parquet: user_id, user_idx
    new_items: str  # Parquet: item_id, item_idx
    files: list[IngestedFile] = field(default_factory=list)
    items: str | None = None
    users: str | None = None
    metadata_quarantine: list[str] = field(default_factory=list)
    kind: WarehouseKind = field(default_factory=WarehouseKind)

    @property
    def loaded(self) -> list[IngestedFile]:
        return [f for f in self.files if f.staged is not None]


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> str:
    con.execute(f"copy ({query.strip().rstrip(';')}) to {sql_literal(path)} (format parquet)")
    return str(path)


def _merge(con: duckdb.DuckDBPyConnection, night: StagedNight, implicit: bool) -> list[IngestedFile]:
    """Tonight's files, one after the other, into the temp table ``night``; their counts."""
    con.execute(sql("night/create.sql"))
    out = []
    for number, f in enumerate(night.files):
        if f.staged is None:
            out.append(IngestedFile(f.path, f.file_hash, f.skipped is not None, f.refused))
            continue
        con.execute("insert into night_files values (?, ?)", [number, f.file_hash])
        with literal_path(f.staged) as staged:
            con.execute(sql("night/implicit_incoming.sql" if implicit else "night/incoming.sql"), [staged])
        if implicit:  # every event counts: none is superseded
            con.execute(sql("night/implicit_add.sql"), [number])
            loaded, superseded = f.rows_valid, 0
        else:
            distinct = int(scalar(con, "select count(*) from incoming"))
            stale = int(scalar(con, sql("night/stale.sql")))
            con.execute(sql("night/drop_replaced.sql"))
            con.execute(sql("night/add_winners.sql"), [number])
            loaded, superseded = distinct - stale, f.rows_valid - distinct + stale
        out.append(
            IngestedFile(
                f.path,
                f.file_hash,
                False,
                None,
                f.rows_read,
                loaded,
                f.rows_quarantined,
                superseded,
                f.staged,
                f.quarantine,
            )
        )
        log.info(
            "%s: read %d rows: %d loaded, %d quarantined, %d superseded",
            f.path,
            f.rows_read,
            loaded,
            f.rows_quarantined,
            superseded,
        )
    con.execute("drop table if exists incoming")
    return out


def plan_night(warehouse: str | Path, night: StagedNight) -> tuple[NightPlan, Snapshot]:
    """The night's delta against the published state, and the snapshot (published + delta) to train on."""
    out = private_dir(run_dir(warehouse, night.run_id) / "night")
    snap = run_dir(warehouse, night.run_id)
    kind = night.kind
    implicit = kind.feedback == "implicit"
    with connect_state(warehouse) as con:
        if retype_id_tables(con, dict(kind.id_types)):
            log.info(
                "the warehouse's ids are %s (users) and %s (items), as its first night's",
                *(("integers" if kind.id_types.get(r, "int") == "int" else "strings") for r in ("user", "item")),
            )
        files = _merge(con, night, implicit)
        con.execute(sql("night/new_users.sql"))
        con.execute(sql("night/new_items.sql"))
        if night.items is not None:
            with literal_path(night.items) as items:
                con.execute(
                    "create or replace temp table night_items as select item_id, title, genres from read_parquet(?)",
                    [items],
                )
        else:
            con.execute("create or replace temp table night_items as select item_id, title, genres from items limit 0")
        faults.point("index")
        plan = NightPlan(
            night.run_id,
            # in no particular order: it is a set of ratings (the snapshot below is the sorted, indexed form)
            _copy(
                con,
                "select user_id, item_id, rating, timestamp, file_hash from night join night_files using (file_no)",
                out / "delta.parquet",
            ),
            _copy(con, "select user_id, user_idx from new_user_index order by user_idx", out / "new_users.parquet"),
            _copy(con, "select item_id, item_idx from new_item_index order by item_idx", out / "new_items.parquet"),
            files,
            night.items,
            night.users,
            list(night.metadata_quarantine),
            kind,
        )
        interactions = "night/implicit_snapshot_interactions.sql" if implicit else "night/snapshot_interactions.sql"
        paths = {
            name: _copy(con, sql(query), snap / f"{name}.parquet")
            for name, query in (
                ("interactions", interactions),
                ("users", "night/snapshot_users.sql"),
                ("items", "night/snapshot_items.sql"),
            )
        }
        for path in (*paths.values(), plan.delta, plan.new_users, plan.new_items):
            durable.fsync_path(path)  # on disk before anything that references them is committed
        n_ratings = int(
            scalar(
                con,
                "select (select count(*) from ratings anti join night using (user_id, item_id)) "
                "+ (select count(*) from night)",
            )
        )
        n_users = sum(int(scalar(con, f"select count(*) from {t}")) for t in ("user_index", "new_user_index"))
        n_items = sum(int(scalar(con, f"select count(*) from {t}")) for t in ("item_index", "new_item_index"))
        new_users = int(scalar(con, "select count(*) from new_user_index"))
        new_items = int(scalar(con, "select count(*) from new_item_index"))
        hashes = sorted(
            {h for (h,) in con.execute("select file_hash from ingested_files").fetchall()}
            | {f.file_hash for f in plan.loaded}
        )
    refused = [f for f in files if f.refused]
    if refused and not plan.loaded:  # every new file was refused: say why (they stay parked until they change)
        first = refused[0]
        raise RatingsFileError(first.path, (first.refused or "").removeprefix(f"{first.path}: "))
    if n_ratings == 0:
        skipped = [(f.path, f.skipped) for f in night.files if f.skipped]
        if skipped:  # e.g. files parked by an earlier night: say which, and why
            raise RatingsFileError(
                skipped[0][0],
                f"was skipped ({skipped[0][1]}), and the warehouse holds no ratings yet",
                "Deliver a readable rating file to --source",
            )
        raise UserError("the warehouse holds no ratings; ingest a file with --source first")
    snapshot = Snapshot(
        paths["interactions"],
        paths["users"],
        paths["items"],
        n_ratings,
        n_users,
        n_items,
        new_users,
        new_items,
        hashlib.sha256("".join(hashes).encode()).hexdigest()[:16],
        night.users,
        kind.feedback or "explicit",
    )
    return plan, snapshot
