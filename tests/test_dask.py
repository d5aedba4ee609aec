"""Scale-out: the scoring shards on a Dask LocalCluster of 2 worker processes (loopback only), against a
real `prefect server start`; the published tables must equal a local, single-shard run's.

Slow (a server, a cluster start, two runs): about a minute on 2 cores. Skipped without prefect-dask.
"""

import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CLI

pytest.importorskip("prefect_dask", reason="prefect-dask not installed (pip install 'collabflow[dask]')")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def run(env, warehouse, source, *extra):
    proc = subprocess.run(
        [
            *CLI,
            "run",
            "--source",
            str(source),
            "--warehouse",
            str(warehouse),
            "--rating-min",
            "1",
            "--top-n",
            "5",
            "--epochs",
            "2",
            "--tune-budget",  # tuning has its own tests; both runs here must train the same configured models
            "0",
            *extra,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def published(warehouse):
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        recs = con.execute(
            "select user_id, rank, item_id, score, source from latest_recommendations order by user_id, rank"
        ).fetchall()
        similar = con.execute(
            "select item_id, rank, similar_item_id, similarity from latest_similar_items order by item_id, rank"
        ).fetchall()
    return recs, similar


def test_dask_shards_publish_the_same_table_as_a_local_run(server, small_ratings, tmp_path):
    url, env = server
    env = {**env, "PREFECT_API_URL": url}
    run(env, tmp_path / "local", small_ratings)
    run(env, tmp_path / "dask", small_ratings, "--dask-workers", "2", "--score-shards", "4")
    local, dask = published(tmp_path / "local"), published(tmp_path / "dask")
    assert len(local[0]) == 200 * 5 and local == dask
    parts = sorted(p.name for p in (tmp_path / "dask" / "runs").glob("*/recommendations/part-*.parquet"))
    assert len(parts) == 4  # one Parquet part per shard, read back as one table


def test_dask_without_a_prefect_server_is_refused(small_ratings, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    proc = subprocess.run(
        [
            *CLI,
            "run",
            "--source",
            str(small_ratings),
            "--warehouse",
            str(tmp_path / "wh"),
            "--rating-min",
            "1",
            "--dask-workers",
            "2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2
    assert "needs a running Prefect server" in proc.stderr.strip().splitlines()[-1]
