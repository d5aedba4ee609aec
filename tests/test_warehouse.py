"""Ingest, index and publish against a real DuckDB file (the ``store`` package)."""

import duckdb
import polars as pl
import pytest

from recmodel.io import RatingsFileError
from store import gate, lock, paths, runs
from store.db import ensure_schema
from store.ingest import ingest_file
from store.publish import publish_run
from store.snapshot import build_snapshot as snapshot


def q(warehouse, sql, params=None):
    with duckdb.connect(str(paths.db_path(warehouse)), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def warehouse(tmp_path):
    ensure_schema(tmp_path / "wh")
    return tmp_path / "wh"


def write(path, rows):
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_same_file_twice_changes_nothing(warehouse, tmp_path):
    src = write(tmp_path / "u.data", [(1, 10, 4, 100), (2, 10, 3, 100), (1, 11, 5, 100)])
    first = ingest_file(warehouse, src)
    second = ingest_file(warehouse, src)
    assert first.rows_loaded == 3 and second.skipped
    assert q(warehouse, "select count(*) from ratings") == [(3,)]
    assert q(warehouse, "select count(*) from ingested_files") == [(1,)]


def test_later_ratings_supersede_and_counts_reconcile(warehouse, tmp_path):
    ingest_file(warehouse, write(tmp_path / "a.data", [(1, 10, 4, 100), (2, 10, 3, 100)]))
    night2 = ingest_file(
        warehouse,
        write(
            tmp_path / "b.data",
            [
                (1, 10, 1, 200),  # newer: replaces (1, 10)
                (2, 10, 5, 50),  # older than what we have: superseded
                (3, 12, 2, 10),
                (3, 12, 4, 20),  # in-file duplicate: the later one wins
                (3, 13, 99, 10),  # out of range: quarantined
            ],
        ),
    )
    assert (night2.rows_loaded, night2.rows_superseded, night2.rows_quarantined) == (2, 2, 1)
    assert q(warehouse, "select user_id, item_id, rating from ratings order by all") == [
        (1, 10, 1.0),
        (2, 10, 3.0),
        (3, 12, 4.0),
    ]
    for read, loaded, bad, sup in q(
        warehouse, "select rows_read, rows_loaded, rows_quarantined, rows_superseded from ingested_files"
    ):
        assert read == loaded + bad + sup
    assert q(warehouse, "select row_number, reason from quarantine") == [(5, "rating 99.0 is outside [0.5, 5.0]")]
    copy = q(warehouse, "select parquet_path from ingested_files order by ingested_at")[1][0]
    assert pl.read_parquet(warehouse / copy).height == 3  # durable copy: valid rows, latest per pair


def test_indices_are_append_only_across_nights(warehouse, tmp_path):
    ingest_file(warehouse, write(tmp_path / "a.data", [(5, 50, 4, 1), (3, 70, 4, 1)]))
    snapshot(warehouse, "night1")
    before = q(warehouse, "select user_id, user_idx from user_index order by user_idx")
    ingest_file(warehouse, write(tmp_path / "b.data", [(1, 60, 4, 2), (9, 50, 4, 2)]))
    snap = snapshot(warehouse, "night2")
    after = q(warehouse, "select user_id, user_idx from user_index order by user_idx")
    assert before == [(3, 0), (5, 1)] and after == before + [(1, 2), (9, 3)]
    assert q(warehouse, "select item_id, item_idx from item_index order by item_idx") == [(50, 0), (70, 1), (60, 2)]
    assert (snap.n_users, snap.n_items, snap.new_users, snap.new_items) == (4, 3, 2, 1)
    assert pl.read_parquet(snap.interactions_path).height == 4


def test_mostly_bad_file_loads_nothing(warehouse, tmp_path):
    src = tmp_path / "ratings.csv"
    src.write_text("1;10;4;100\n2;10;3;100\n")  # semicolons, read as one column
    with pytest.raises(RatingsFileError, match="Nothing was loaded"):
        ingest_file(warehouse, src, delimiter=",", columns="user=0,item=1,rating=2")
    assert q(warehouse, "select count(*) from ratings union all select count(*) from ingested_files") == [(0,), (0,)]


SUMMARY = {"n_ratings": 2, "n_users": 2, "n_items": 2, "device": "cpu", "data_hash": "x", "metrics": {}, "timings": {}}


@pytest.fixture
def indexed(warehouse, tmp_path):
    """Two users, two items; each user has one unseen item: user 1 -> item 7, user 2 -> item 5."""
    ingest_file(warehouse, write(tmp_path / "u.data", [(1, 5, 4, 1), (2, 7, 3, 1)]))
    snapshot(warehouse, "night0")
    return warehouse


def recs(tmp_path, rows, name="recs.parquet"):
    path = tmp_path / name
    pl.DataFrame(rows, schema=["user_id", "rank", "item_id", "score"], orient="row").write_parquet(path)
    return path


def test_failed_publish_leaves_previous_results(indexed, tmp_path):
    runs.start_run(indexed, "r1", None, {}, "h", {})
    publish_run(indexed, "r1", recs(tmp_path, [(1, 1, 7, 4.5), (2, 1, 5, 3.0)]), SUMMARY, top_n=1)
    runs.start_run(indexed, "r2", None, {}, "h", {})
    with pytest.raises(duckdb.Error):
        publish_run(indexed, "r2", tmp_path / "missing.parquet", SUMMARY, top_n=1)
    assert q(indexed, "select run_id, user_id, item_id from latest_recommendations order by user_id") == [
        ("r1", 1, 7),
        ("r1", 2, 5),
    ]
    assert q(indexed, "select count(*) from recommendations") == [(2,)]
    assert q(indexed, "select status from runs where run_id = 'r2'") == [("running",)]
    runs.start_run(indexed, "r3", None, {}, "h", {})  # a new run marks the crashed one
    assert q(indexed, "select status from runs where run_id = 'r2'") == [("abandoned",)]


@pytest.mark.parametrize(
    "rows,check",
    [
        ([(1, 1, 5, 4.5), (2, 1, 5, 3.0)], "seen_items_recommended"),
        ([(1, 1, 7, 4.5), (1, 1, 7, 4.0), (2, 1, 5, 3.0)], "duplicate_ranks"),
        ([(1, 1, 7, float("nan")), (2, 1, 5, 3.0)], "null_scores"),
        ([(1, 1, 7, 4.5), (2, 1, 5, 3.0), (9, 1, 5, 3.0)], "unknown_ids"),
        ([(1, 2, 7, 4.5), (2, 1, 5, 3.0)], "ranks_out_of_range"),
        ([(1, 1, 7, 4.5)], "wrong_row_counts"),
    ],
)
def test_checks_reject_bad_lists_before_publishing(indexed, tmp_path, rows, check):
    runs.start_run(indexed, "good", None, {}, "h", {})
    publish_run(indexed, "good", recs(tmp_path, [(1, 1, 7, 4.5), (2, 1, 5, 3.0)]), SUMMARY, top_n=1)
    runs.start_run(indexed, "bad", None, {}, "h", {})
    with pytest.raises(runs.RunRejected, match=check):
        publish_run(indexed, "bad", recs(tmp_path, rows, "bad.parquet"), SUMMARY, top_n=1)
    assert q(indexed, "select distinct run_id from latest_recommendations") == [("good",)]
    assert q(indexed, "select count(*) from recommendations where run_id = 'bad'") == [(0,)]


def test_retention_keeps_the_newest_runs(indexed, tmp_path):
    for i in range(4):
        run_id = f"r{i}"
        runs.start_run(indexed, run_id, None, {}, "h", {})
        paths.private_dir(paths.run_dir(indexed, run_id))
        publish_run(indexed, run_id, recs(tmp_path, [(1, 1, 7, 4.5), (2, 1, 5, 3.0)]), SUMMARY, top_n=1, keep_runs=2)
    assert q(indexed, "select distinct run_id from recommendations order by 1") == [("r2",), ("r3",)]
    assert sorted(p.name for p in (indexed / "runs").iterdir()) == ["r2", "r3"]
    assert q(indexed, "select count(*) from runs") == [(4,)]  # history is kept


def test_quality_gate():
    prev = {"valid_rmse": 0.90, "ndcg_at_10": 0.30}
    assert gate.quality_gate(prev, {"valid_rmse": 0.93, "ndcg_at_10": 0.29}, 0.05) is None
    assert "RMSE" in gate.quality_gate(prev, {"valid_rmse": 0.99, "ndcg_at_10": 0.30}, 0.05)
    assert "NDCG" in gate.quality_gate(prev, {"valid_rmse": 0.90, "ndcg_at_10": 0.20}, 0.05)
    assert gate.quality_gate(prev, {"valid_rmse": 9.0}, None) is None and gate.quality_gate(None, prev, 0.05) is None


def test_warehouse_is_private(indexed):
    import stat

    assert stat.S_IMODE((indexed).stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.db_path(indexed).stat().st_mode) == 0o600


def test_one_run_per_warehouse(warehouse):
    with lock.exclusive(warehouse):
        with pytest.raises(lock.WarehouseBusy, match="another collabflow run"):
            with lock.exclusive(warehouse):
                pass
    with lock.exclusive(warehouse):  # released afterwards
        pass


def test_run_ids_are_checked():
    with pytest.raises(ValueError, match="invalid run id"):
        paths.run_dir("w", "../escape")


def test_run_statuses_are_constrained_to_the_documented_ones(warehouse):
    import re

    import duckdb as db

    schema = (paths.SQL_DIR / "schema.sql").read_text()
    allowed = re.search(r"check \(status in \(([^)]*)\)\)", schema).group(1)
    assert tuple(s.strip().strip("'") for s in allowed.split(",")) == runs.STATUSES
    readme = (paths.SQL_DIR.parent / "README.md").read_text()
    assert all(f"`{s}`" in readme for s in runs.STATUSES)
    runs.start_run(warehouse, "r1", None, {}, "h", {})
    with db.connect(str(paths.db_path(warehouse))) as con, pytest.raises(db.ConstraintException):
        con.execute("update runs set status = 'done' where run_id = 'r1'")
