"""Publish a run to DuckDB atomically, and record runs that fail."""
from __future__ import annotations

from prefect import task

from . import warehouse as wh


@task(name="publish-run")
def publish_run(warehouse: str, run_id: str, recommendations_path: str, summary: dict, top_n: int,
                keep_runs: int = 7, similar_path: str | None = None, min_item_ratings: int = 1) -> int:
    """Check the recommendations, publish them (and similar items) and mark the run succeeded in one transaction."""
    return wh.publish_run(warehouse, run_id, recommendations_path, summary, top_n, keep_runs, similar_path,
                          min_item_ratings)
