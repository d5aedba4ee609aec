"""Raw ids <-> contiguous indices, append-only, and the snapshot of ratings one run trains on."""
from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import task

from . import warehouse as wh


def update_index(con, kind: str) -> int:
    """Give ids seen for the first time the next free indices (ordered by raw id); returns how many."""
    id_col, idx_col, table = f"{kind}_id", f"{kind}_idx", f"{kind}_index"  # kind is 'user' or 'item', never input
    before = con.execute(f"select count(*) from {table}").fetchone()[0]
    con.execute(
        f"insert into {table} "
        f"select {id_col}, (select coalesce(max({idx_col}), -1) from {table}) + row_number() over (order by {id_col}) "
        f"from (select distinct r.{id_col} from ratings r anti join {table} t using ({id_col}))"
    )
    return con.execute(f"select count(*) from {table}").fetchone()[0] - before


def snapshot(warehouse: str | Path, run_id: str) -> dict:
    """Update the id indices and write this run's inputs as Parquet: interactions, users, items."""
    out = wh.private_dir(wh.run_dir(warehouse, run_id))
    paths = {name: out / f"{name}.parquet" for name in ("interactions", "users", "items")}
    with wh.connect(warehouse) as con:
        con.execute("begin transaction")
        new_users, new_items = update_index(con, "user"), update_index(con, "item")
        con.execute("commit")
        wh.fault_point("index")
        con.execute(
            f"copy (select u.user_idx, i.item_idx, r.rating, r.timestamp, epoch(f.ingested_at) as ingested_at "
            f"from ratings r join user_index u using (user_id) join item_index i using (item_id) "
            f"join ingested_files f using (file_hash) "
            f"order by u.user_idx, i.item_idx) to {wh.sql_literal(paths['interactions'])} (format parquet)"
        )
        con.execute(f"copy (select user_idx, user_id from user_index order by user_idx) to {wh.sql_literal(paths['users'])} (format parquet)")
        con.execute(f"copy (select item_idx, item_id from item_index order by item_idx) to {wh.sql_literal(paths['items'])} (format parquet)")
        n_ratings, n_users, n_items = con.execute(
            "select (select count(*) from ratings), (select count(*) from user_index), (select count(*) from item_index)"
        ).fetchone()
        hashes = [h for (h,) in con.execute("select file_hash from ingested_files order by file_hash").fetchall()]
    if n_ratings == 0:
        raise ValueError("the warehouse holds no ratings; ingest a file with --source first")
    return {
        **{f"{k}_path": str(v) for k, v in paths.items()},
        "n_ratings": int(n_ratings), "n_users": int(n_users), "n_items": int(n_items),
        "new_users": int(new_users), "new_items": int(new_items),
        "data_hash": hashlib.sha256("".join(hashes).encode()).hexdigest()[:16],
    }


@task(name="build-index")
def build_index(warehouse: str, run_id: str) -> dict:
    """Append new ids to the index tables and snapshot the ratings for this run."""
    return snapshot(warehouse, run_id)
