"""Publish a run to DuckDB atomically, and record runs that fail."""
from __future__ import annotations

from prefect import task

from . import warehouse as wh


@task(name="publish-run", retries=2, retry_delay_seconds=5)
def publish_run(warehouse: str, run_id: str, recommendations_path: str, summary: dict) -> int:
    """Insert the recommendations and mark the run succeeded in one DuckDB transaction."""
    return wh.publish_run(warehouse, run_id, recommendations_path, summary)
