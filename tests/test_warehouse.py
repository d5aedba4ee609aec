"""The warehouse (the ``store`` package) against real DuckDB files: staged ingest, the night's plan,
publishing served snapshots, versions, rollback, retention, recovery, migration."""

import os
import stat

import duckdb
import polars as pl
import pytest

from recmodel.io import RatingsFileError
from recmodel.lists import RunLists
from store import gate, lock, paths, runs
from store.ingest import InputRules, StagedNight, stage_file
from store.night import plan_night
from store.publish import Published, publish_night, rollback
from store.retention import remove_run_folders
from store.state import open_warehouse, served_version
from tests.store_helpers import ingest as ingest_file
from tests.store_helpers import night_kind, state


def served(warehouse, sql, params=None):
    with duckdb.connect(str(paths.db_path(warehouse)), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture
def warehouse(tmp_path):
    open_warehouse(tmp_path / "wh")
    return tmp_path / "wh"


T = 874_724_710  # timestamps below are offsets from a plausible date (the reader refuses pre-1995 ones)


def write(path, rows):
    """A u.data file; the fourth field of each row is an offset added to ``T``."""
    path.write_text("".join("\t".join(map(str, (*r[:3], T + r[3]))) + "\n" for r in rows))
    return path


def test_same_file_twice_changes_nothing(warehouse, tmp_path):
    src = write(tmp_path / "u.data", [(1, 10, 4, 100), (2, 10, 3, 100), (1, 11, 5, 100)])
    first = ingest_file(warehouse, src)
    run_id = paths.new_run_id()
    second = stage_file(warehouse, run_id, src)
    assert first.rows_loaded == 3 and second.skipped and second.staged is None
    assert state(warehouse, "select count(*) from ratings") == [(3,)]
    assert state(warehouse, "select count(*) from ingested_files") == [(1,)]


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
    assert state(warehouse, "select user_id, item_id, rating from ratings order by all") == [
        (1, 10, 1.0),
        (2, 10, 3.0),
        (3, 12, 4.0),
    ]
    for read, loaded, bad, sup in state(
        warehouse, "select rows_read, rows_loaded, rows_quarantined, rows_superseded from ingested_files"
    ):
        assert read == loaded + bad + sup
    assert state(warehouse, "select row_number, reason from quarantine") == [(5, "rating 99.0 is outside [0.5, 5.0]")]
    copy = state(warehouse, "select parquet_path from ingested_files order by ingested_at")[1][0]
    assert pl.read_parquet(warehouse / copy).height == 4  # durable copy: every valid row, in file order


def test_files_of_one_night_merge_in_name_order(warehouse, tmp_path):
    a = write(tmp_path / "a.data", [(1, 10, 2, 100), (3, 12, 4, 100)])
    b = write(tmp_path / "b.data", [(1, 10, 5, 100), (2, 11, 3, 50)])  # same timestamp: the later file wins
    run_id = paths.new_run_id()
    runs.start_run(warehouse, run_id, None, {}, "h", {})
    staged = [stage_file(warehouse, run_id, p) for p in (a, b)]
    plan, snap = plan_night(warehouse, StagedNight(run_id, staged, kind=night_kind(warehouse, staged[0])))
    assert [(f.rows_loaded, f.rows_superseded) for f in plan.files] == [(2, 0), (2, 0)]
    ha, hb = (f.file_hash for f in staged)
    assert sorted(pl.read_parquet(plan.delta).select("user_id", "item_id", "rating", "file_hash").rows()) == [
        (1, 10, 5.0, hb),  # each rating names the file it came from
        (2, 11, 3.0, hb),
        (3, 12, 4.0, ha),
    ]
    assert snap.n_ratings == 3 and state(warehouse, "select count(*) from ratings") == [(0,)]  # nothing merged yet


def test_implicit_files_of_one_night_add_up_and_name_the_last_file(warehouse, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("user_id,item_id\n1,10\n1,10\n3,12\n")
    b.write_text("user_id,item_id\n1,10\n2,11\n")
    run_id = paths.new_run_id()
    runs.start_run(warehouse, run_id, None, {}, "h", {})
    staged = [stage_file(warehouse, run_id, p) for p in (a, b)]
    plan, snap = plan_night(warehouse, StagedNight(run_id, staged, kind=night_kind(warehouse, staged[0])))
    ha, hb = (f.file_hash for f in staged)
    assert sorted(pl.read_parquet(plan.delta).select("user_id", "item_id", "rating", "file_hash").rows()) == [
        (1, 10, 3.0, hb),  # 2 events in a, 1 in b: the last file to touch the pair
        (2, 11, 1.0, hb),
        (3, 12, 1.0, ha),
    ]
    assert snap.n_ratings == 3


def test_implicit_events_add_up_across_nights(warehouse, tmp_path):
    (tmp_path / "a.csv").write_text("user_id,item_id\n1,10\n1,10\n3,12\n")
    (tmp_path / "b.csv").write_text("user_id,item_id\n1,10\n2,11\n")
    first = ingest_file(warehouse, tmp_path / "a.csv")
    second = ingest_file(warehouse, tmp_path / "b.csv")
    assert state(warehouse, "select user_id, item_id, rating, file_hash from ratings order by all") == [
        (1, 10, 3.0, second.file_hash),  # 2 events the first night, 1 the second
        (2, 11, 1.0, second.file_hash),
        (3, 12, 1.0, first.file_hash),
    ]


def test_indices_are_append_only_across_nights(warehouse, tmp_path):
    ingest_file(warehouse, write(tmp_path / "a.data", [(5, 50, 4, 1), (3, 70, 4, 1)]))
    before = state(warehouse, "select user_id, user_idx from user_index order by user_idx")
    run_id = paths.new_run_id()
    runs.start_run(warehouse, run_id, None, {}, "h", {})
    staged = stage_file(warehouse, run_id, write(tmp_path / "b.data", [(1, 60, 4, 2), (9, 50, 4, 2)]))
    plan, snap = plan_night(warehouse, StagedNight(run_id, [staged], kind=night_kind(warehouse, staged)))
    assert before == [(3, 0), (5, 1)]
    assert pl.read_parquet(plan.new_users).rows() == [(1, 2), (9, 3)]
    assert pl.read_parquet(plan.new_items).rows() == [(60, 2)]
    assert (snap.n_users, snap.n_items, snap.new_users, snap.new_items) == (4, 3, 2, 1)
    interactions = pl.read_parquet(snap.interactions_path)
    assert interactions.height == 4 and interactions["is_new"].sum() == 2


def test_a_refused_file_is_parked_until_it_changes(warehouse, tmp_path):
    ingest_file(warehouse, write(tmp_path / "a.data", [(1, 10, 4, 100)]))
    bad = tmp_path / "ratings.csv"
    bad.write_text("1;10;4;100\n2;10;3;100\n")  # semicolons read as one column
    run_id = paths.new_run_id()
    rules = InputRules(delimiter=",", columns="user=0,item=1,rating=2")
    first = stage_file(warehouse, run_id, bad, rules)
    assert first.refused and "failed validation" in first.refused
    parked = state(warehouse, "select path, reason from refused_files")
    assert len(parked) == 1 and "failed validation" in parked[0][1]
    again = stage_file(warehouse, paths.new_run_id(), bad, rules)
    assert again.skipped and again.refused is None  # skipped without being read
    bad.write_text(f"1,11,4,{T}\n")  # new bytes: read again
    assert stage_file(warehouse, paths.new_run_id(), bad, rules).staged is not None


def test_a_file_on_another_rating_scale_is_refused_with_the_options_that_read_it(warehouse, tmp_path):
    """Book-Crossing rates 0-10: most rows fail the default 0.5-5 range; the refusal names the file's span
    as the options to pass, and those options read it. A file that fails for another reason gets no hint."""
    scale = write(tmp_path / "bx.data", [(u, 10 + u % 7, u % 11, 0) for u in range(1, 60)])
    refused = stage_file(warehouse, paths.new_run_id(), scale).refused
    assert refused and refused.endswith(
        "its ratings span 0 to 10: if that is its scale, pass --rating-min 0 --rating-max 10; if 0 means "
        "'not rated', pass --rating-min 1 --rating-max 10 (the 0 rows are then quarantined, with their reason)"
    )
    scale.write_text(scale.read_text() + "\n")  # new bytes: read again, now with the scale given
    rules = InputRules(rating_min=0, rating_max=10)
    assert stage_file(warehouse, paths.new_run_id(), scale, rules).staged is not None
    bad = tmp_path / "ratings.csv"
    bad.write_text("1;10;4;100\n2;10;3;100\n")
    rules = InputRules(delimiter=",", columns="user=0,item=1,rating=2")
    refused = stage_file(warehouse, paths.new_run_id(), bad, rules).refused
    assert refused and "its ratings span" not in refused


def test_a_night_whose_every_new_file_is_refused_fails_with_the_reason(warehouse, tmp_path):
    run_id = paths.new_run_id()
    runs.start_run(warehouse, run_id, None, {}, "h", {})
    bad = tmp_path / "ratings.csv"
    bad.write_text("userId,movieId,rating\n1,2,x\n")
    staged = stage_file(warehouse, run_id, bad)
    with pytest.raises(RatingsFileError, match="failed validation"):
        plan_night(warehouse, StagedNight(run_id, [staged], kind=night_kind(warehouse, staged)))
    # the next night skips the parked file; with nothing else to train on it says so, naming the file
    run_id = paths.new_run_id()
    runs.start_run(warehouse, run_id, None, {}, "h", {})
    again = stage_file(warehouse, run_id, bad)
    assert again.skipped == "unchanged since it was parked"
    with pytest.raises(RatingsFileError, match="was skipped .unchanged since it was parked., and the warehouse holds"):
        plan_night(warehouse, StagedNight(run_id, [again], kind=night_kind(warehouse, staged)))


SUMMARY = {"n_ratings": 2, "n_users": 2, "n_items": 2, "device": "cpu", "data_hash": "x", "metrics": {}, "timings": {}}


def lists(tmp_path, rows, name="recs"):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    part = folder / "part-0000000000.parquet"
    pl.DataFrame(rows, schema=["user_id", "rank", "item_id", "score"], orient="row").with_columns(
        pl.col("rank").cast(pl.Int32), pl.lit("model").alias("source")
    ).write_parquet(part)
    similar = folder / "similar.parquet"
    pl.DataFrame(
        schema={"item_id": pl.Int64, "rank": pl.Int32, "similar_item_id": pl.Int64, "similarity": pl.Float64}
    ).write_parquet(similar)
    return RunLists([str(part)], str(similar), len(rows), 0, 2, 0, 0.0)


def night(warehouse, tmp_path, rows, run_id, keep_runs=7, ratings=((1, 5, 4, 1), (2, 7, 3, 1))) -> Published:
    """One whole night: stage a file, plan, publish the given lists."""
    runs.start_run(warehouse, run_id, None, {}, "h", {})
    src = write(tmp_path / f"{run_id}.data", ratings)
    staged = stage_file(warehouse, run_id, src)
    plan, _ = plan_night(warehouse, StagedNight(run_id, [staged], kind=night_kind(warehouse, staged)))
    return publish_night(warehouse, run_id, plan, lists(tmp_path, rows, run_id), SUMMARY, top_n=1, keep_runs=keep_runs)


GOOD = [(1, 1, 7, 4.5), (2, 1, 5, 3.0)]  # each user's one unseen item: user 1 -> item 7, user 2 -> item 5


def test_a_publish_is_a_new_version_readers_see_whole(warehouse, tmp_path):
    first = night(warehouse, tmp_path, GOOD, "r1")
    assert first.version == 1 and first.n_recommendations == 2
    assert served(warehouse, "select run_id, user_id, item_id from latest_recommendations order by user_id") == [
        ("r1", 1, 7),
        ("r1", 2, 5),
    ]
    assert served(warehouse, "select version, run_id, kind from latest_run") == [(1, "r1", "night")]
    assert served(warehouse, "select status, version from runs") == [("succeeded", 1)]
    # read-only for its owner (nobody but root can open it for writing); group-readable when the folder is
    assert stat.S_IMODE(paths.db_path(warehouse).stat().st_mode) == 0o400


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
def test_checks_reject_bad_lists_and_nothing_changes(warehouse, tmp_path, rows, check):
    night(warehouse, tmp_path, GOOD, "good")
    before = paths.db_path(warehouse).read_bytes()
    with pytest.raises(runs.RunRejected, match=check):
        night(warehouse, tmp_path, rows, "bad", ratings=((1, 5, 4, 1), (2, 7, 3, 1), (3, 7, 2, 1)))
    assert paths.db_path(warehouse).read_bytes() == before  # the served snapshot is untouched
    assert state(warehouse, "select count(*) from ratings where user_id = 3") == [(0,)]  # nor the night's data
    assert state(warehouse, "select max(version) from versions") == [(1,)]


def test_a_failed_publish_leaves_everything_and_reports_the_real_error(warehouse, tmp_path):
    night(warehouse, tmp_path, GOOD, "r1")
    before = paths.db_path(warehouse).read_bytes()
    runs.start_run(warehouse, "r2", None, {}, "h", {})
    plan, _ = plan_night(warehouse, StagedNight("r2", []))
    broken = RunLists([str(tmp_path / "missing.parquet")], str(tmp_path / "missing.parquet"), 0, 0, 0, 0, 0.0)
    with pytest.raises(duckdb.IOException, match="missing.parquet"):
        publish_night(warehouse, "r2", plan, broken, SUMMARY, top_n=1)
    assert paths.db_path(warehouse).read_bytes() == before
    assert not paths.next_db(warehouse).exists()
    runs.start_run(warehouse, "r3", None, {}, "h", {})  # a new run marks the unfinished one
    assert state(warehouse, "select status from runs where run_id = 'r2'") == [("abandoned",)]


def test_latest_is_the_highest_version_even_when_the_clock_steps_back(warehouse, tmp_path, monkeypatch):
    from datetime import timedelta

    night(warehouse, tmp_path, GOOD, "r1")
    early = paths.now() - timedelta(days=400)  # NTP, or a VM restored from a snapshot
    monkeypatch.setattr("store.publish.now", lambda: early)
    monkeypatch.setattr("store.runs.now", lambda: early)
    night(warehouse, tmp_path, [(1, 1, 7, 4.0), (2, 1, 5, 2.0)], "r0-earlier-clock", keep_runs=1)
    assert served(warehouse, "select distinct run_id from latest_recommendations") == [("r0-earlier-clock",)]
    assert served(warehouse, "select distinct run_id from recommendations") == [("r0-earlier-clock",)]  # kept: 1
    assert served(warehouse, "select run_id from run_history limit 1") == [("r0-earlier-clock",)]


def test_rollback_serves_an_earlier_version_again(warehouse, tmp_path):
    night(warehouse, tmp_path, GOOD, "r1")
    night(warehouse, tmp_path, [(1, 1, 7, 1.0), (2, 1, 5, 1.0)], "r2")
    done = rollback(warehouse)
    assert (done.version, done.run_id) == (3, "r1")
    assert served(warehouse, "select version, run_id, kind from latest_run") == [(3, "r1", "rollback")]
    assert served(warehouse, "select distinct score from latest_recommendations order by 1") == [(3.0,), (4.5,)]
    assert rollback(warehouse, "r2").version == 4
    with pytest.raises(ValueError, match="not kept"):
        rollback(warehouse, "r-unknown")


def test_retention_keeps_recent_versions_and_never_foreign_folders(warehouse, tmp_path):
    for i in range(4):
        night(warehouse, tmp_path, GOOD, f"r{i}", keep_runs=2)
    (warehouse / "runs" / "golden").mkdir()  # an operator's folder
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    (warehouse / "runs" / "r0").rename(tmp_path / "r0-moved")
    (warehouse / "runs" / "r0").symlink_to(target)  # a recorded run's name, but a symlink
    removed = remove_run_folders(warehouse, keep=2)
    assert sorted(removed) == ["r1"]
    assert sorted(p.name for p in (warehouse / "runs").iterdir()) == ["golden", "r0", "r2", "r3"]
    assert (target / "precious.txt").read_text() == "keep me"
    assert served(warehouse, "select distinct run_id from recommendations order by 1") == [("r2",), ("r3",)]
    assert served(warehouse, "select count(*) from runs") == [(4,)]  # history is kept


def test_recovery_when_a_publish_stopped_between_its_two_renames(warehouse, tmp_path):
    night(warehouse, tmp_path, GOOD, "r1")
    old_state = paths.state_db(warehouse).read_bytes()
    night(warehouse, tmp_path, GOOD, "r2")
    paths.state_db(warehouse).write_bytes(old_state)  # as if the state rename had not happened
    assert served_version(warehouse) == 2
    assert open_warehouse(warehouse) == 2  # the served snapshot (complete) becomes the state
    assert state(warehouse, "select max(version) from versions") == [(2,)]


def test_a_lost_served_snapshot_is_written_again(warehouse, tmp_path):
    night(warehouse, tmp_path, GOOD, "r1")
    paths.db_path(warehouse).unlink()
    open_warehouse(warehouse)
    assert served(warehouse, "select distinct run_id from latest_recommendations") == [("r1",)]


OLD_LAYOUT = """
create table runs (run_id varchar primary key, status varchar not null, started_at timestamptz not null,
    finished_at timestamptz, error varchar, source varchar, n_ratings bigint, n_users bigint, n_items bigint,
    n_recommendations bigint, device varchar, config json, config_hash varchar, data_hash varchar, metrics json,
    timings json, versions json);
create table recommendations (run_id varchar not null, user_id bigint not null, rank integer not null,
    item_id bigint not null, score double not null, source varchar default 'model');
create table ingested_files (file_hash varchar primary key, path varchar not null, rows_read bigint not null,
    rows_loaded bigint not null, rows_quarantined bigint not null, rows_superseded bigint not null,
    parquet_path varchar not null, ingested_at timestamptz not null);
create table quarantine (file_hash varchar not null, path varchar not null, row_number bigint not null,
    reason varchar not null, raw varchar not null, quarantined_at timestamptz not null);
insert into runs (run_id, status, started_at, finished_at) values
    ('old1', 'succeeded', '2026-11-01', '2026-11-01 01:00'), ('old2', 'failed', '2026-11-02', '2026-11-02 01:00'),
    ('old3', 'succeeded', '2026-11-03', '2026-11-03 01:00');
insert into recommendations values ('old3', 1, 1, 7, 4.0, 'model'), ('old1', 1, 1, 5, 3.0, 'model');
"""


def test_a_warehouse_from_before_versions_is_migrated(tmp_path):
    warehouse = tmp_path / "old"
    warehouse.mkdir()
    with duckdb.connect(str(paths.db_path(warehouse))) as con:
        con.execute(OLD_LAYOUT)
    assert open_warehouse(warehouse) == 2
    assert served(warehouse, "select version, run_id from versions order by version") == [(1, "old1"), (2, "old3")]
    assert served(warehouse, "select run_id, item_id from latest_recommendations") == [("old3", 7)]
    assert served(warehouse, "select run_id, seq from runs order by seq") == [("old1", 1), ("old2", 2), ("old3", 3)]
    with duckdb.connect(str(paths.state_db(warehouse))) as con, pytest.raises(duckdb.ConstraintException):
        con.execute("update runs set status = 'done' where run_id = 'old1'")


def test_quality_gate():
    prev = {"valid_rmse": 0.90, "ndcg_at_10": 0.30}
    assert gate.quality_gate(prev, {"valid_rmse": 0.93, "ndcg_at_10": 0.29}, 0.05) is None
    assert "RMSE" in gate.quality_gate(prev, {"valid_rmse": 0.99, "ndcg_at_10": 0.30}, 0.05)
    assert "NDCG" in gate.quality_gate(prev, {"valid_rmse": 0.90, "ndcg_at_10": 0.20}, 0.05)
    assert gate.quality_gate(prev, {"valid_rmse": 9.0}, None) is None and gate.quality_gate(None, prev, 0.05) is None
    unmeasured = {"valid_rmse": None}
    assert "not measured" in gate.quality_gate(prev, unmeasured, 0.05)
    assert gate.quality_gate(prev, unmeasured, 0.05, allow_unmeasured=True) is None


def test_the_last_measured_night_is_what_the_gate_compares_with(warehouse, tmp_path):
    night(warehouse, tmp_path, GOOD, "measured")
    with duckdb.connect(str(paths.state_db(warehouse))) as con:
        con.execute("update runs set metrics = '{\"valid_rmse\": 0.9}' where run_id = 'measured'")
    night(warehouse, tmp_path, GOOD, "unmeasured")
    assert runs.last_measured(warehouse, 10)["run_id"] == "measured"


def test_folders_we_create_are_private_and_existing_ones_keep_their_mode(tmp_path):
    fresh = tmp_path / "fresh"
    open_warehouse(fresh)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert stat.S_IMODE(paths.state_db(fresh).stat().st_mode) == 0o600
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o750)  # an operator gave a BI group access
    open_warehouse(shared)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o750
    assert stat.S_IMODE(paths.state_dir(shared).stat().st_mode) == 0o700


def test_the_served_snapshot_is_group_readable_when_the_folder_is(tmp_path):
    warehouse = tmp_path / "shared"
    warehouse.mkdir()
    os.chmod(warehouse, 0o750)
    open_warehouse(warehouse)
    night(warehouse, tmp_path, GOOD, "r1")
    assert stat.S_IMODE(paths.db_path(warehouse).stat().st_mode) == 0o440


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

    schema = (paths.SQL_DIR / "schema.sql").read_text()
    allowed = re.search(r"check \(status in \(([^)]*)\)\)", schema).group(1)
    assert tuple(s.strip().strip("'") for s in allowed.split(",")) == runs.STATUSES
    readme = (paths.SQL_DIR.parent / "README.md").read_text()
    assert all(f"`{s}`" in readme for s in runs.STATUSES)
    runs.start_run(warehouse, "r1", None, {}, "h", {})
    with duckdb.connect(str(paths.state_db(warehouse))) as con, pytest.raises(duckdb.ConstraintException):
        con.execute("update runs set status = 'done' where run_id = 'r1'")
