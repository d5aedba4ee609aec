"""Publish a run's lists atomically, and retention of old runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from . import faults
from .db import checks, connect, scalar
from .paths import RUN_ID, check_run_id, now
from .runs import RunRejected


def publish_run(
    warehouse: str | Path,
    run_id: str,
    recommendations_path: str | Path,
    summary: dict[str, Any],
    top_n: int,
    keep_runs: int = 7,
    similar_path: str | Path | None = None,
    min_item_ratings: int = 1,
) -> int:
    """Insert the run's recommendations, check them (sql/checks.sql), mark the run succeeded and apply
    retention, all in ONE transaction.

    Until the commit, readers of ``latest_recommendations`` see the previous run; a failed check, an
    error or a crash rolls everything back, so a half-published run is never visible. Retention keeps
    the recommendations of the ``keep_runs`` newest succeeded runs; ``runs`` rows are kept forever.
    """
    check_run_id(run_id)
    with connect(warehouse) as con:
        con.execute("begin transaction")
        try:
            columns = {
                row[0]
                for row in con.execute("describe select * from read_parquet(?)", [str(recommendations_path)]).fetchall()
            }
            source = "source" if "source" in columns else "'model'"  # files written before cold start
            con.execute(
                "insert into recommendations (run_id, user_id, rank, item_id, score, source) "
                f"select ?, user_id, rank, item_id, score, {source} from read_parquet(?)",
                [run_id, str(recommendations_path)],
            )
            if similar_path is not None:
                con.execute(
                    "insert into similar_items select ?, item_id, rank, similar_item_id, similarity "
                    "from read_parquet(?)",
                    [run_id, str(similar_path)],
                )
            con.execute(
                f"create or replace temp view candidate_recommendations as "
                f"select * from recommendations where run_id = '{run_id}'"
            )  # run_id matched RUN_ID
            con.execute(f"set variable top_n = {int(top_n)}")
            con.execute(f"set variable min_item_ratings = {int(min_item_ratings)}")
            failures = checks(con)
            if failures:
                raise RunRejected("checks failed: " + ", ".join(f"{name} ({n} rows)" for name, n in failures))
            n = scalar(con, "select count(*) from candidate_recommendations")
            con.execute(
                "update runs set status = 'succeeded', finished_at = ?, n_ratings = ?, n_users = ?, n_items = ?, "
                "n_recommendations = ?, device = ?, data_hash = ?, metrics = ?, timings = ? where run_id = ?",
                [
                    now(),
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
            expired = [
                r
                for (r,) in con.execute(
                    "select run_id from runs where status = 'succeeded' "
                    "order by finished_at desc, run_id desc offset ?",
                    [keep_runs],
                ).fetchall()
            ]
            con.execute("delete from recommendations where run_id in (select unnest(?::varchar[]))", [expired])
            con.execute("delete from similar_items where run_id in (select unnest(?::varchar[]))", [expired])
            faults.point("publish")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    remove_run_folders(warehouse, keep=keep_runs)
    return int(n)


def remove_run_folders(warehouse: str | Path, keep: int) -> list[str]:
    """Delete run folders (models, snapshots) except the ``keep`` newest succeeded runs and any run still
    'running'. Called after the commit: a crash here leaves extra folders, never missing ones."""
    root = Path(warehouse) / "runs"
    if not root.is_dir():
        return []
    with connect(warehouse) as con:
        keep_ids = {
            r
            for (r,) in con.execute(
                "select run_id from runs where status = 'succeeded' order by finished_at desc, run_id desc limit ?",
                [keep],
            ).fetchall()
        }
        keep_ids |= {r for (r,) in con.execute("select run_id from runs where status = 'running'").fetchall()}
    removed = []
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in keep_ids and RUN_ID.match(folder.name):
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed
