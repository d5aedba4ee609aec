"""Break a night on purpose (issue 5): SIGKILL at every stage, a reader holding the database, a worse
model. Each time the published lists must stay exactly as they were, and the next run must succeed.

Runs go through the real CLI in subprocesses against a real Prefect server (one per module).
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from recmodel import synth

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
FAST = ["--epochs", "3", "--rating-min", "1", "--top-n", "5", "--rank-iterations", "3"]
NO_GATE = ["--gate-tolerance", "10"]  # these nights must reach every stage; the gate has its own test below


def run(warehouse, source, env, *extra, kill_at=None, timeout=300):
    env = {**env, **({"COLLABFLOW_TEST_KILL_AT": kill_at} if kill_at else {})}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
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
    frame = synth.generate(synth.custom_shape(150, 120, 4000), seed=11)
    synth.write(frame.filter(frame["timestamp"] < frame["timestamp"].quantile(0.8)), inbox / "a", "udata")
    (inbox / "a" / "u.data").rename(inbox / "night1.data")
    first = run(tmp / "wh", inbox, env)
    assert first.returncode == 0, first.stderr[-2000:]
    later = frame.filter(frame["timestamp"] >= frame["timestamp"].quantile(0.8))
    return tmp / "wh", inbox, later, env


@pytest.mark.parametrize("stage", ["ingest", "index", "train", "score", "publish"])
def test_sigkill_at_each_stage_leaves_published_results(night, stage, tmp_path):
    warehouse, inbox, later, env = night
    before = published(warehouse)
    if not (inbox / "night2.data").exists():  # the new night's file waits in the inbox until a run publishes
        synth.write(later, tmp_path, "udata").rename(inbox / "night2.data")
    proc = run(warehouse, inbox, env, *NO_GATE, kill_at=stage)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert published(warehouse) == before
    assert q(warehouse, "select count(*) from ratings") == q(
        warehouse, "select count(distinct (user_id, item_id)) from ratings"
    )


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


def test_a_reader_delays_the_run_but_never_sees_a_partial_one(night, tmp_path):
    warehouse, inbox, _, env = night
    before = published(warehouse)
    hold = (
        "import duckdb, sys, time; con = duckdb.connect(sys.argv[1], read_only=True); "
        "print(con.execute('select count(*) from latest_recommendations').fetchall()[0][0], flush=True); "
        "time.sleep(float(sys.argv[2]))"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", hold, str(warehouse / "collabflow.duckdb"), "8"], stdout=subprocess.PIPE, text=True
    )
    assert int(reader.stdout.readline()) == len(before)  # the reader saw the whole previous run
    started = time.time()
    proc = run(warehouse, inbox, env, *NO_GATE)
    reader.wait(30)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.time() - started > 5  # it waited for the reader, then ran

    reader = subprocess.Popen(
        [sys.executable, "-c", hold, str(warehouse / "collabflow.duckdb"), "120"], stdout=subprocess.PIPE, text=True
    )
    reader.stdout.readline()
    try:
        proc = run(warehouse, inbox, {**env, "COLLABFLOW_LOCK_TIMEOUT": "3"}, *NO_GATE)
    finally:
        reader.kill()
        reader.wait()
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "is locked by another process" in last and "close read connections" in last


def test_a_worse_model_is_rejected_and_the_lists_stay(night):
    warehouse, inbox, _, env = night
    before = published(warehouse)
    proc = run(warehouse, inbox, env, "--lr-max", "1e-6", "--rank-iterations", "1", "--rank-factors", "2")
    assert proc.returncode == 1
    assert "quality gate" in proc.stderr.strip().splitlines()[-1]
    assert published(warehouse) == before
    status, error = q(warehouse, "select status, error from runs order by started_at desc limit 1")[0]
    assert status == "rejected" and "worse than the published" in error
