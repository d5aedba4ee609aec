"""Every shipped view and query runs against a real warehouse after real nightly runs."""

from pathlib import Path

import duckdb
import pytest

from tests.test_flow import two_runs  # noqa: F401  (module fixture: two nightly runs on small data)

QUERIES = sorted((Path(__file__).resolve().parents[1] / "sql" / "queries").glob("*.sql"))


@pytest.mark.parametrize("path", QUERIES, ids=[p.stem for p in QUERIES])
def test_shipped_query_runs(two_runs, path):  # noqa: F811
    warehouse, _, _ = two_runs
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        cur = con.execute(path.read_text())
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    assert columns and (rows or path.stem == "quarantine_by_reason")


def test_views(two_runs):  # noqa: F811
    warehouse, first, second = two_runs
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        lists = con.execute("select user_id, item_ids, scores from user_recommendations order by user_id").fetchall()
        flat = con.execute(
            "select user_id, list(item_id order by rank) from latest_recommendations group by user_id order by user_id"
        ).fetchall()
        history = con.execute("select run_id, status from run_history").fetchall()
        changes = con.execute((QUERIES[0].parent / "changes_since_previous_run.sql").read_text()).fetchall()
    assert [(u, ids) for u, ids, _ in lists] == flat
    assert all(len(ids) == 5 for _, ids, _ in lists)
    assert history[:2] == [(second["run_id"], "succeeded"), (first["run_id"], "succeeded")]
    assert all(added == 0 and dropped == 0 for _, _, added, dropped in changes)  # same seed: same lists
