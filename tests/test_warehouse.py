"""Ingest, index and publish against a real DuckDB file (tasks.warehouse, tasks.ingest, tasks.index)."""
import duckdb
import polars as pl
import pytest

from recmodel.data import RatingsFileError
from tasks import warehouse as wh
from tasks.index import snapshot
from tasks.ingest import ingest_file


def q(warehouse, sql, params=None):
    with duckdb.connect(str(wh.db_path(warehouse)), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def warehouse(tmp_path):
    wh.ensure_schema(tmp_path / "wh")
    return tmp_path / "wh"


def write(path, rows):
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_same_file_twice_changes_nothing(warehouse, tmp_path):
    src = write(tmp_path / "u.data", [(1, 10, 4, 100), (2, 10, 3, 100), (1, 11, 5, 100)])
    first = ingest_file(warehouse, src)
    second = ingest_file(warehouse, src)
    assert first["rows_loaded"] == 3 and second["skipped"]
    assert q(warehouse, "select count(*) from ratings") == [(3,)]
    assert q(warehouse, "select count(*) from ingested_files") == [(1,)]


def test_later_ratings_supersede_and_counts_reconcile(warehouse, tmp_path):
    ingest_file(warehouse, write(tmp_path / "a.data", [(1, 10, 4, 100), (2, 10, 3, 100)]))
    night2 = ingest_file(warehouse, write(tmp_path / "b.data", [
        (1, 10, 1, 200),   # newer: replaces (1, 10)
        (2, 10, 5, 50),    # older than what we have: superseded
        (3, 12, 2, 10), (3, 12, 4, 20),  # in-file duplicate: the later one wins
        (3, 13, 99, 10),   # out of range: quarantined
    ]))
    assert (night2["rows_loaded"], night2["rows_superseded"], night2["rows_quarantined"]) == (2, 2, 1)
    assert q(warehouse, "select user_id, item_id, rating from ratings order by all") == [
        (1, 10, 1.0), (2, 10, 3.0), (3, 12, 4.0)]
    for read, loaded, bad, sup in q(warehouse, "select rows_read, rows_loaded, rows_quarantined, rows_superseded from ingested_files"):
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
    assert (snap["n_users"], snap["n_items"], snap["new_users"], snap["new_items"]) == (4, 3, 2, 1)
    assert pl.read_parquet(snap["interactions_path"]).height == 4


def test_mostly_bad_file_loads_nothing(warehouse, tmp_path):
    src = tmp_path / "ratings.csv"
    src.write_text("1;10;4;100\n2;10;3;100\n")  # semicolons, read as one column
    with pytest.raises(RatingsFileError, match="Nothing was loaded"):
        ingest_file(warehouse, src, delimiter=",", columns="user=0,item=1,rating=2")
    assert q(warehouse, "select count(*) from ratings union all select count(*) from ingested_files") == [(0,), (0,)]


def test_failed_publish_leaves_previous_results(warehouse, tmp_path):
    recs = tmp_path / "recs.parquet"
    pl.DataFrame({"user_id": [1], "rank": [1], "item_id": [7], "score": [4.5]}).write_parquet(recs)
    summary = {"n_ratings": 1, "n_users": 1, "n_items": 1, "device": "cpu", "data_hash": "x", "metrics": {}, "timings": {}}
    wh.start_run(warehouse, "r1", None, {}, "h", {})
    wh.publish_run(warehouse, "r1", recs, summary)
    wh.start_run(warehouse, "r2", None, {}, "h", {})
    with pytest.raises(duckdb.Error):
        wh.publish_run(warehouse, "r2", tmp_path / "missing.parquet", summary)
    assert q(warehouse, "select run_id, user_id, item_id from latest_recommendations") == [("r1", 1, 7)]
    assert q(warehouse, "select count(*) from recommendations") == [(1,)]
    assert q(warehouse, "select status from runs where run_id = 'r2'") == [("running",)]
    wh.start_run(warehouse, "r3", None, {}, "h", {})  # a new run marks the crashed one
    assert q(warehouse, "select status from runs where run_id = 'r2'") == [("abandoned",)]


def test_one_run_per_warehouse(warehouse):
    with wh.exclusive(warehouse):
        with pytest.raises(wh.WarehouseBusy, match="another collabflow run"):
            with wh.exclusive(warehouse):
                pass
    with wh.exclusive(warehouse):  # released afterwards
        pass


def test_run_ids_are_checked():
    with pytest.raises(ValueError, match="invalid run id"):
        wh.run_dir("w", "../escape")
