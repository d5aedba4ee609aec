"""Append new ids to the indices and freeze the run's inputs as Parquet (``recmodel.snapshot.Snapshot``)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from recmodel.snapshot import Snapshot

from . import faults
from .db import connect, scalar, sql, sql_literal
from .paths import private_dir, run_dir


def update_index(con: duckdb.DuckDBPyConnection, kind: str) -> int:
    """Give ids seen for the first time the next free indices (ordered by raw id); returns how many."""
    table = f"{kind}_index"  # kind is 'user' or 'item', never input
    before = scalar(con, f"select count(*) from {table}")
    con.execute(sql(f"writer/append_{kind}_index.sql"))
    return int(scalar(con, f"select count(*) from {table}")) - int(before)


def build_snapshot(warehouse: str | Path, run_id: str) -> Snapshot:
    """Update the id indices and write this run's inputs as Parquet: interactions, users, items, user features."""
    out = private_dir(run_dir(warehouse, run_id))
    paths = {name: out / f"{name}.parquet" for name in ("interactions", "users", "items", "user_features")}
    with connect(warehouse) as con:
        con.execute("begin transaction")
        new_users, new_items = update_index(con, "user"), update_index(con, "item")
        con.execute("commit")
        faults.point("index")
        for name in ("interactions", "users", "items"):
            query = sql(f"writer/snapshot_{name}.sql").strip().rstrip(";")
            con.execute(f"copy ({query}) to {sql_literal(paths[name])} (format parquet)")
        has_features = scalar(con, "select count(*) from users_meta") > 0
        if has_features:
            con.execute(f"copy (select * from users_meta) to {sql_literal(paths['user_features'])} (format parquet)")
        n_ratings, n_users, n_items = (
            scalar(con, f"select count(*) from {t}") for t in ("ratings", "user_index", "item_index")
        )
        hashes = [h for (h,) in con.execute("select file_hash from ingested_files order by file_hash").fetchall()]
    if n_ratings == 0:
        raise ValueError("the warehouse holds no ratings; ingest a file with --source first")
    return Snapshot(
        str(paths["interactions"]),
        str(paths["users"]),
        str(paths["items"]),
        int(n_ratings),
        int(n_users),
        int(n_items),
        int(new_users),
        int(new_items),
        hashlib.sha256("".join(hashes).encode()).hexdigest()[:16],
        str(paths["user_features"]) if has_features else None,
    )
