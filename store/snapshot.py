"""Append new ids to the indices and freeze the run's inputs as Parquet (``recmodel.snapshot.Snapshot``)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from recmodel.snapshot import Snapshot

from . import faults
from .db import connect, sql, sql_literal
from .paths import private_dir, run_dir


def update_index(con: duckdb.DuckDBPyConnection, kind: str) -> int:
    """Give ids seen for the first time the next free indices (ordered by raw id); returns how many."""
    table = f"{kind}_index"  # kind is 'user' or 'item', never input
    before = con.execute(f"select count(*) from {table}").fetchone()[0]
    con.execute(sql(f"writer/append_{kind}_index.sql"))
    return con.execute(f"select count(*) from {table}").fetchone()[0] - before


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
        has_features = con.execute("select count(*) from users_meta").fetchone()[0] > 0
        if has_features:
            con.execute(f"copy (select * from users_meta) to {sql_literal(paths['user_features'])} (format parquet)")
        n_ratings, n_users, n_items = con.execute(
            "select (select count(*) from ratings), (select count(*) from user_index), (select count(*) from item_index)"
        ).fetchone()
        hashes = [h for (h,) in con.execute("select file_hash from ingested_files order by file_hash").fetchall()]
    if n_ratings == 0:
        raise ValueError("the warehouse holds no ratings; ingest a file with --source first")
    return Snapshot(str(paths["interactions"]), str(paths["users"]), str(paths["items"]), int(n_ratings), int(n_users),
                    int(n_items), int(new_users), int(new_items), hashlib.sha256("".join(hashes).encode()).hexdigest()[:16],
                    str(paths["user_features"]) if has_features else None)
