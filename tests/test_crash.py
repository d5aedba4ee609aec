"""Break a night on purpose (issues 5 and 11): SIGKILL at every stage, readers holding the served
snapshot, a worse model. Each time readers see exactly one whole night, the writer never waits for
them, and the next run recovers and publishes.

Runs go through the real CLI in subprocesses against a real Prefect server (one per module).
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from recmodel import synth
from tests.conftest import CLI
from tests.store_helpers import state

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "3", "--rating-min", "1", "--top-n", "5", "--rank-iterations", "3", "--tune-budget", "0"]
FAST += ["--settle-seconds", "0"]  # files are placed in the inbox just before each run
NO_GATE = ["--gate-tolerance", "10"]  # these nights must reach every stage; the gate has its own test below


def run(warehouse, source, env, *extra, kill_at=None, timeout=300):
    env = {**env, **({"COLLABFLOW_TEST_KILL_AT": kill_at} if kill_at else {})}
    return subprocess.run(
        [
            *CLI,
            "run",
            "--source",
            str(source),
            "--warehouse",
            str(warehouse),
            *FAST,
            *map(str, extra),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def q(warehouse, sql):
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def published(warehouse):
    return q(warehouse, "select * from latest_recommendations order by all")


@pytest.fixture(scope="module")
def night(server, tmp_path_factory):
    """A warehouse with one published night, an inbox, and the environment of a served deployment."""
    url, env = server
    env = {**env, "PREFECT_API_URL": url}
    tmp = tmp_path_factory.mktemp("crash")
    inbox = tmp / "inbox"
    frame = synth.taste_groups(150, 120, 30, seed=11)
    synth.write(frame.filter(frame["timestamp"] < frame["timestamp"].quantile(0.8)), inbox / "a", "udata")
    (inbox / "a" / "u.data").rename(inbox / "night1.data")
    first = run(tmp / "wh", inbox, env)
    assert first.returncode == 0, first.stderr[-2000:]
    later = frame.filter(frame["timestamp"] >= frame["timestamp"].quantile(0.8))
    return tmp / "wh", inbox, later, env


@pytest.mark.parametrize("stage", ["ingest", "index", "train", "score", "publish"])
def test_sigkill_at_each_stage_leaves_the_served_snapshot(night, stage, tmp_path):
    warehouse, inbox, later, env = night
    before = (warehouse / "collabflow.duckdb").read_bytes()
    if not (inbox / "night2.data").exists():  # the new night's file waits in the inbox until a run publishes
        synth.write(later, tmp_path, "udata").rename(inbox / "night2.data")
    proc = run(warehouse, inbox, env, *NO_GATE, kill_at=stage)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert (warehouse / "collabflow.duckdb").read_bytes() == before  # byte for byte
    assert state(warehouse, "select count(*) from ingested_files") == [(1,)]  # night 2 is not in the state


def test_next_run_after_the_crashes_publishes_once(night):
    warehouse, inbox, later, env = night
    proc = run(warehouse, inbox, env, *NO_GATE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    statuses = dict(q(warehouse, "select status, count(*) from runs group by 1"))
    assert statuses == {"succeeded": 2, "abandoned": 5}  # each killed run is marked by the next one
    assert q(warehouse, "select count(*) from ingested_files") == [(2,)]  # night2 ingested exactly once
    n_ratings = q(warehouse, "select count(*) from ratings")[0][0]
    assert n_ratings == q(warehouse, "select count(distinct (user_id, item_id)) from ratings")[0][0]
    for read, loaded, bad, sup in q(
        warehouse, "select rows_read, rows_loaded, rows_quarantined, rows_superseded from ingested_files"
    ):
        assert read == loaded + bad + sup
    assert q(warehouse, "select max(version) from versions") == [(2,)]


def test_a_crash_between_the_two_renames_is_recovered(night, tmp_path):
    """Killed after readers got the new snapshot, before the state caught up: the next run takes the
    snapshot (it is complete) as the state, and the version numbers go on from there."""
    warehouse, inbox, _, env = night
    proc = run(warehouse, inbox, env, *NO_GATE, kill_at="promote")
    assert proc.returncode == -signal.SIGKILL
    served_version = q(warehouse, "select max(version) from versions")[0][0]
    assert served_version == 3 and state(warehouse, "select max(version) from versions") == [(2,)]
    proc = run(warehouse, inbox, env, *NO_GATE)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert q(warehouse, "select max(version) from versions") == [(4,)]
    assert q(warehouse, "select count(*) from versions") == [(4,)]


READER = """
import duckdb, json, os, sys, time
path, seconds, stop = sys.argv[1], float(sys.argv[2]), sys.argv[3]
con = duckdb.connect(path, read_only=True)
deadline = time.time() + seconds
while True:
    run_ids = con.execute("select distinct run_id from latest_recommendations").fetchall()
    n = con.execute("select count(*) from latest_recommendations").fetchall()[0][0]
    expected = con.execute("select n_recommendations from runs join latest_run using (run_id)").fetchall()[0][0]
    seen = con.execute("select count(*) from latest_recommendations join ratings using (user_id, item_id)")
    seen = seen.fetchall()[0][0]
    print(json.dumps({"run_ids": [r for (r,) in run_ids], "n": n, "expected": expected, "seen": seen}), flush=True)
    if time.time() > deadline or os.path.exists(stop):
        break
    time.sleep(0.5)
con.close()
"""


def reader(warehouse, seconds, stop="/nonexistent"):
    """A process that queries the served snapshot every half second for ``seconds`` (or until ``stop`` exists)
    on one connection, printing what each query saw."""
    return subprocess.Popen(
        [sys.executable, "-c", READER, str(warehouse / "collabflow.duckdb"), str(seconds), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def whole_nights(lines):
    """Every query saw one night, whole: one run's lists, as many rows as that run published, none seen."""
    seen = [json.loads(line) for line in lines if line.strip()]
    assert seen
    for s in seen:
        assert len(s["run_ids"]) == 1 and s["n"] == s["expected"] and s["seen"] == 0, s
    return {s["run_ids"][0] for s in seen}


def test_a_reader_holding_the_snapshot_never_blocks_the_night(night, tmp_path):
    warehouse, inbox, later, env = night
    synth.write(later.with_columns(later["rating"].clip(1, 4)), tmp_path, "udata").rename(inbox / "night3.data")
    before = q(warehouse, "select run_id from latest_run")[0][0]
    stop = tmp_path / "stop"
    hold = reader(warehouse, 40, stop)  # open before the night, queries every half second, closes after it
    assert hold.stdout.readline()  # connected and answering
    started = time.time()
    proc = run(warehouse, inbox, env, *NO_GATE)
    took = time.time() - started
    stop.touch()
    out, err = hold.communicate(timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert whole_nights(out.splitlines()) == {before}  # the open connection kept its snapshot throughout
    after = q(warehouse, "select run_id from latest_run")[0][0]  # a new connection sees the new night
    assert after != before and q(warehouse, "select count(*) from ingested_files") == [(3,)]
    assert took < 40, took  # the night did not wait for the reader


def test_a_reader_arriving_mid_run_sees_one_whole_night(night, tmp_path):
    warehouse, inbox, _, env = night
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--source",
            str(inbox),
            "--warehouse",
            str(warehouse),
            *FAST,
            *NO_GATE,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # the night is under way
    readers = [reader(warehouse, 2) for _ in range(3)]
    outputs = [r.communicate(timeout=120)[0] for r in readers]
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    for out in outputs:
        whole_nights(out.splitlines())


def test_a_worse_model_is_rejected_and_the_lists_stay(night):
    warehouse, inbox, _, env = night
    before = (warehouse / "collabflow.duckdb").read_bytes()
    proc = run(warehouse, inbox, env, "--lr-max", "1e-6", "--rank-iterations", "1", "--rank-factors", "2")
    assert proc.returncode == 1
    assert "quality gate" in proc.stderr.strip().splitlines()[-1]
    assert (warehouse / "collabflow.duckdb").read_bytes() == before
    status, error = state(warehouse, "select status, error from runs order by seq desc limit 1")[0]
    assert status == "rejected" and "worse than the published" in error


def test_a_write_failure_in_the_publish_is_recorded_as_itself(night, tmp_path):
    """A full disk, as a file-size limit: the publish's writes fail; the served snapshot stays, the run is
    recorded with the real error (not a rollback message), and the command exits 1."""
    import resource

    warehouse, inbox, later, env = night
    synth.write(later.with_columns(later["rating"].clip(2, 5)), tmp_path, "udata").rename(inbox / "night4.data")
    before = (warehouse / "collabflow.duckdb").read_bytes()
    limit = (warehouse / "state" / "state.duckdb").stat().st_size + 64 * 1024  # the copy fits, its growth does not

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run(
        [
            *CLI,
            "run",
            "--source",
            str(inbox),
            "--warehouse",
            str(warehouse),
            *FAST,
            *NO_GATE,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limited,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "File too large" in last and "rollback" not in last, last
    assert (warehouse / "collabflow.duckdb").read_bytes() == before
    status, error = state(warehouse, "select status, error from runs order by seq desc limit 1")[0]
    assert status == "failed" and "File too large" in error and "rollback" not in error, error
    proc = run(warehouse, inbox, env, *NO_GATE)  # with room again, the same files are picked up and published
    assert proc.returncode == 0, proc.stderr[-2000:]
