"""The ``collabflow`` command as a user runs it: a subprocess, exit codes, one-line errors."""
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

CLI = [sys.executable, "-m", "flows.cli"]
ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=False):
    proc = subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, cwd=ROOT, env=os.environ.copy(), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


@pytest.fixture(scope="module")
def ran(small_ratings, tmp_path_factory):
    warehouse = tmp_path_factory.mktemp("cli") / "wh"
    proc = cli("run", "--source", small_ratings, "--warehouse", warehouse, "--top-n", 3, "--epochs", 1,
               "--rating-min", 1, "--json", check=True)
    return warehouse, json.loads(proc.stdout.strip().splitlines()[-1])


def test_run_publishes_and_recommend_reads_it(ran):
    warehouse, summary = ran
    assert (warehouse / "collabflow.duckdb").exists()
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        user = con.execute("select min(user_id) from latest_recommendations").fetchall()[0][0]
        expected = con.execute("select item_id from latest_recommendations where user_id = ? order by rank", [user]).fetchall()
    out = cli("recommend", user, "--warehouse", warehouse, "--json", check=True)
    got = json.loads(out.stdout)
    assert got["run_id"] == summary["run_id"] and [r["item_id"] for r in got["recommendations"]] == [e[0] for e in expected]
    table = cli("recommend", user, "--warehouse", warehouse, "--n", 2, check=True).stdout
    assert f"user {user}" in table and len(table.strip().splitlines()) == 4  # title, header, 2 rows


def test_unknown_user_is_a_clear_error(ran):
    warehouse, _ = ran
    proc = cli("recommend", 987654321, "--warehouse", warehouse)
    assert proc.returncode == 1 and "no such user" in proc.stderr


def test_bad_option_is_rejected_before_running(tmp_path):
    proc = cli("run", "--warehouse", tmp_path / "wh", "--top-n", 0)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == ["collabflow run: error: top_n: Input should be greater than or equal to 1"]
    assert not (tmp_path / "wh").exists()


def test_failed_run_exits_non_zero_with_one_line_reason(tmp_path):
    bad = tmp_path / "ratings.csv"
    bad.write_text("userId,movieId,rating,timestamp\n1,2,x,3\n")
    proc = cli("run", "--source", bad, "--warehouse", tmp_path / "wh", "--epochs", 1)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("collabflow run: error: RatingsFileError:") and str(bad) in last and "failed validation" in last


def test_help_explains_every_option():
    out = cli("run", "--help", check=True).stdout
    for option in ("--source", "--warehouse", "--top-n", "--epochs", "--device", "--columns", "--seed"):
        assert option in out
    assert "Usage" in cli("--help", check=True).stdout


def test_evaluate_json_interface(small_ratings, tmp_path):
    import polars as pl

    frame = pl.read_csv(small_ratings, separator="\t", has_header=False)
    mask = pl.Series(np.random.default_rng(0).random(frame.height) < 0.8)
    train, test = tmp_path / "train.data", tmp_path / "test.data"
    frame.filter(mask).write_csv(train, separator="\t", include_header=False)
    frame.filter(~mask).write_csv(test, separator="\t", include_header=False)
    proc = cli("evaluate", "--train", train, "--test", test, "--rating-min", 1, "--warehouse", tmp_path / "wh", "--json",
               check=True)
    out = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    for key in ("rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10", "coverage_at_10"):
        assert isinstance(out["published"][key], float)
    for name in ("global_mean", "bias_only", "popularity", "dot", "neural", "ials", "ease"):
        assert name in out
    assert out["evaluation"]["n_train"] + out["evaluation"]["n_test"] == frame.height
    with duckdb.connect(str(tmp_path / "wh" / "collabflow.duckdb"), read_only=True) as con:
        stored = con.execute("select value from evaluations where model = 'published' and metric = 'ndcg_at_10'").fetchall()
    assert stored == [(out["published"]["ndcg_at_10"],)]


def test_evaluate_needs_source_or_both_files(tmp_path):
    proc = cli("evaluate", "--train", tmp_path / "x.data")
    assert proc.returncode == 2 and "either --source" in proc.stderr
