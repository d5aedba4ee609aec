"""The ``collabflow`` command as a user runs it: a subprocess, exit codes, one-line errors."""

import json
import os
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pytest

from tests.conftest import CLI

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, check=False, env=None, stdin=None):
    proc = subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, **(env or {})},
        input=stdin,
    )
    if check and proc.returncode != 0:
        raise AssertionError(proc.stderr[-3000:])
    return proc


def on(server) -> dict[str, str]:
    """The environment of a command that talks to the suite's Prefect server (instead of starting a temporary
    one, ~15 s a night on 2 cores). The ``ran`` night below starts its own, as a first run does."""
    return {"PREFECT_API_URL": server[0]}


@pytest.fixture(scope="module")
def ran(small_ratings, tmp_path_factory):
    """One CLI run whose settings come from all three layers: file (top_n), environment (seed), flag (epochs)."""
    tmp = tmp_path_factory.mktemp("cli")
    warehouse = tmp / "wh[prod]"  # a path is a path, never a glob pattern
    config = tmp / "collabflow.toml"
    config.write_text("top_n = 3\nepochs = 1\nrating_min = 1\nseed = 1\ntune_budget = 0\n")
    proc = cli(
        "run",
        "--source",
        small_ratings,
        "--warehouse",
        warehouse,
        "--epochs",
        2,
        "--json",
        check=True,
        env={"COLLABFLOW_CONFIG": str(config), "COLLABFLOW_SEED": "5"},
    )
    return warehouse, json.loads(proc.stdout)


def test_settings_layer_file_then_environment_then_flags(ran):
    warehouse, summary = ran
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        cfg = json.loads(con.execute("select config from runs where run_id = ?", [summary["run_id"]]).fetchall()[0][0])
    assert (cfg["top_n"], cfg["train"]["seed"], cfg["train"]["epochs"], cfg["rating_min"]) == (3, 5, 2, 1.0)


def test_config_show_says_where_each_value_comes_from(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('top_n = 20\nranker = "ease"\n')
    out = json.loads(
        cli("config", "show", "--config", config, "--json", env={"COLLABFLOW_EPOCHS": "7"}, check=True).stdout
    )
    assert out["top_n"] == {"value": 20, "from": str(config)} and out["ranker"]["value"] == "ease"
    assert out["epochs"] == {"value": 7, "from": "COLLABFLOW_EPOCHS"} and out["wd"]["from"] == "default"
    bad = cli("config", "show", env={"COLLABFLOW_TOP_N": "many"})
    assert bad.returncode == 2 and "COLLABFLOW_TOP_N" in bad.stderr
    config.write_text("top_m = 3\n")
    assert "unknown settings ['top_m']" in cli("config", "show", "--config", config).stderr
    config.write_text("rating_min = 1\nrating_max = 10\n")  # the star defaults follow another scale
    out = json.loads(cli("config", "show", "--config", config, "--json", check=True).stdout)
    fitted = "default, fitted to rating_min..rating_max"
    assert out["y_range"] == {"value": [0.0, 11.0], "from": fitted}
    assert out["relevance_threshold"] == {"value": 8.0, "from": fitted}


def test_status_and_sql(ran):
    warehouse, summary = ran
    status = json.loads(cli("status", "--warehouse", warehouse, "--json", check=True).stdout)
    assert status["runs"][0]["run_id"] == summary["run_id"] and status["runs"][0]["status"] == "succeeded"
    assert summary["run_id"] in cli("status", "--warehouse", warehouse, check=True).stdout
    rows = json.loads(
        cli(
            "sql", "--warehouse", warehouse, "select count(*) as n from latest_recommendations", "--json", check=True
        ).stdout
    )
    assert rows == [{"n": summary["n_recommendations"]}]
    query = ROOT / "sql" / "queries" / "most_recommended_items.sql"
    assert "n_users" in cli("sql", "--warehouse", warehouse, "-f", query, check=True).stdout
    piped = cli("sql", "--warehouse", warehouse, "--json", stdin="select 1 as a;\nselect 2 as b;\n", check=True)
    assert [json.loads(line) for line in piped.stdout.splitlines()] == [[{"a": 1}], [{"b": 2}]]
    err = cli("sql", "--warehouse", warehouse, "select nope")
    assert err.returncode == 1 and err.stderr.startswith("collabflow sql: error:")


@pytest.mark.parametrize(
    "statement,reason",
    [
        ("delete from runs", "DELETE statements are not allowed"),
        ("copy (select 1) to 'out.csv'", "COPY statements are not allowed"),
        ("attach 'other.duckdb' as other (read_only false)", "ATTACH statements are not allowed"),
        ("detach collabflow", "DETACH statements are not allowed"),
        ("install httpfs", "INSTALL statements are not allowed"),
        ("set enable_external_access = true", "SET statements are not allowed"),
        ("select * from read_text('/etc/passwd')", "file system operations are disabled"),
        ("select * from read_csv('/etc/hostname')", "file system operations are disabled"),
        ("select 1; drop table runs", "DROP statements are not allowed"),
    ],
)
def test_sql_is_read_only_and_says_why(ran, statement, reason, tmp_path):
    warehouse, _ = ran
    proc = cli("sql", "--warehouse", warehouse, statement)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("collabflow sql: error:"), proc.stderr
    assert reason in lines[0]
    assert not (ROOT / "out.csv").exists() and not (ROOT / "other.duckdb").exists()
    assert cli("sql", "--warehouse", warehouse, "select count(*) from runs", check=True).stdout  # still readable


def test_rollback_and_status(ran, small_ratings, server):
    warehouse, summary = ran
    second = json.loads(
        cli(
            "run",
            "--source",
            small_ratings,
            "--warehouse",
            warehouse,
            "--epochs",
            2,
            "--json",
            "--rating-min",
            1,
            "--top-n",
            3,
            "--tune-budget",
            0,
            check=True,
            env=on(server),
        ).stdout
    )
    assert second["version"] == summary["version"] + 1
    out = json.loads(cli("rollback", "--warehouse", warehouse, "--json", check=True).stdout)
    assert out == {
        "version": second["version"] + 1,
        "run_id": summary["run_id"],
        "n_recommendations": out["n_recommendations"],
    }
    status = json.loads(cli("status", "--warehouse", warehouse, "--json", check=True).stdout)
    assert status["served"] == {"version": out["version"], "run_id": summary["run_id"], "kind": "rollback"}
    assert "(a rollback)" in cli("status", "--warehouse", warehouse, check=True).stdout
    bad = cli("rollback", "no-such-run", "--warehouse", warehouse)
    assert bad.returncode == 1 and "not kept" in bad.stderr


def test_run_publishes_and_recommend_reads_it(ran):
    warehouse, summary = ran
    assert (warehouse / "collabflow.duckdb").exists()
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        user = con.execute("select min(user_id) from latest_recommendations").fetchall()[0][0]
        expected = con.execute(
            "select item_id from latest_recommendations where user_id = ? order by rank", [user]
        ).fetchall()
    out = cli("recommend", user, "--warehouse", warehouse, "--json", check=True)
    got = json.loads(out.stdout)
    assert got["run_id"] == summary["run_id"] and [r["item_id"] for r in got["recommendations"]] == [
        e[0] for e in expected
    ]
    table = cli("recommend", user, "--warehouse", warehouse, "--n", 2, check=True).stdout
    assert f"user {user}" in table and len(table.strip().splitlines()) == 4  # title, header, 2 rows


def test_similar_items(ran):
    warehouse, _ = ran
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        item = con.execute("select min(item_id) from latest_similar_items").fetchall()[0][0]
    out = json.loads(cli("similar", item, "--warehouse", warehouse, "--json", "--n", 3, check=True).stdout)
    assert out["item_id"] == item and [s["rank"] for s in out["similar"]] == [1, 2, 3]
    assert all(s["item_id"] != item for s in out["similar"])
    missing = cli("similar", 10**12, "--warehouse", warehouse)
    assert missing.returncode == 1 and "no similar items" in missing.stderr


def test_unknown_user_is_a_clear_error(ran):
    warehouse, _ = ran
    proc = cli("recommend", 987654321, "--warehouse", warehouse)
    assert proc.returncode == 1 and "no such user" in proc.stderr


def test_bad_option_is_rejected_before_running(tmp_path):
    proc = cli("run", "--warehouse", tmp_path / "wh", "--top-n", 0)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "collabflow run: error: top_n: Input should be greater than or equal to 1"
    ]
    assert not (tmp_path / "wh").exists()


def test_failed_run_exits_non_zero_with_one_line_reason(tmp_path, server):
    bad = tmp_path / "ratings.csv"
    bad.write_text("userId,movieId,rating,timestamp\n1,2,x,3\n")
    proc = cli("run", "--source", bad, "--warehouse", tmp_path / "wh", "--epochs", 1, env=on(server))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("collabflow run: error: RatingsFileError:") and str(bad) in last and "failed validation" in last
    )
    assert "Traceback" not in proc.stderr  # a refused file is the user's to fix, not a crash


def test_help_explains_every_option():
    out = cli("run", "--help", check=True).stdout
    for option in ("--source", "--warehouse", "--top-n", "--epochs", "--device", "--columns", "--seed"):
        assert option in out
    assert "Usage" in cli("--help", check=True).stdout


def test_evaluate_json_interface(small_ratings, tmp_path, server):
    import polars as pl

    frame = pl.read_csv(small_ratings, separator="\t", has_header=False)
    mask = pl.Series(np.random.default_rng(0).random(frame.height) < 0.8)
    train, test = tmp_path / "train.data", tmp_path / "test.data"
    frame.filter(mask).write_csv(train, separator="\t", include_header=False)
    frame.filter(~mask).write_csv(test, separator="\t", include_header=False)
    proc = cli(
        "evaluate",
        "--train",
        train,
        "--test",
        test,
        "--rating-min",
        1,
        "--warehouse",
        tmp_path / "wh",
        "--tune-budget",
        0,
        "--json",
        check=True,
        env=on(server),
    )
    out = json.loads(proc.stdout)  # stdout holds exactly one JSON object
    for key in ("rmse", "mae", "precision_at_10", "recall_at_10", "ndcg_at_10", "coverage_at_10"):
        assert isinstance(out["published"][key], float)
    for name in ("global_mean", "bias_only", "popularity", "dot", "neural", "ials", "ease"):
        assert name in out
    assert out["evaluation"]["n_train"] + out["evaluation"]["n_test"] == frame.height
    with duckdb.connect(str(tmp_path / "wh" / "collabflow.duckdb"), read_only=True) as con:
        stored = con.execute(
            "select value from evaluations where model = 'published' and metric = 'ndcg_at_10'"
        ).fetchall()
    assert stored == [(out["published"]["ndcg_at_10"],)]


def test_evaluate_needs_source_or_both_files(tmp_path):
    proc = cli("evaluate", "--train", tmp_path / "x.data")
    assert proc.returncode == 2 and "either --source" in proc.stderr


def test_a_hostile_inbox_publishes_the_good_files_and_parks_the_rest(small_ratings, tmp_path, server):
    """One night over an inbox an attacker (or an unlucky export) has written to, through the real CLI; then
    a warm-start night whose last model file is damaged."""
    import gzip

    import polars as pl

    secret = tmp_path / "credentials"
    secret.write_text("AKIA-SECRET-KEY\thunter2\t5\t881250949\n")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.data").write_bytes(small_ratings.read_bytes())
    (inbox / "b.data").symlink_to(secret)
    os.mkfifo(inbox / "c.data")  # nobody ever writes to it: opening it must not hang the night
    (inbox / "d.data.gz").write_bytes(gzip.compress(b"1\t" + b"9" * (4 << 20) + b"\t4\t881250949\n"))  # 4 MB field
    (inbox / "e.data").write_text("1\t1\t5\t881250949\n2\t1\t5\t1700000000000\n")  # one millisecond timestamp
    pl.DataFrame(
        {"user_id": [9001, 9001], "item_id": [1, 2], "rating": [5.0, 4.0], "timestamp": [881250949] * 2}
    ).write_parquet(inbox / "ratings[1].parquet")
    users = tmp_path / "users.csv"
    users.write_text("user_id,age\n1,30\n2,inf\n3,41,extra\n")
    warehouse = tmp_path / "wh[prod]"
    common = ("--warehouse", warehouse, "--epochs", 1, "--rating-min", 1, "--tune-budget", 0, "--settle-seconds", 0)
    proc = cli("run", "--source", inbox, "--users", users, *common, env=on(server))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "SECRET" not in proc.stderr + proc.stdout
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        refused = dict(con.execute("select regexp_extract(path, '[^/]+$'), reason from refused_files").fetchall())
        quarantined = con.execute(
            "select regexp_extract(path, '[^/]+$'), row_number, reason from quarantine"
        ).fetchall()
        loaded = con.execute("select count(*) from ratings where user_id = 9001").fetchall()
        run_id, metrics = con.execute("select run_id, metrics from runs join latest_run using (run_id)").fetchall()[0]
        everything = " ".join(
            str(r) for t in ("runs", "refused_files", "quarantine") for r in con.sql(f"from {t}").fetchall()
        )
    assert sorted(refused) == ["b.data", "c.data", "d.data.gz"]
    assert "symbolic link" in refused["b.data"] and "not a regular file" in refused["c.data"]
    assert "longer than" in refused["d.data.gz"]
    assert any(f == "e.data" and n == 2 and "timestamp" in r for f, n, r in quarantined), quarantined
    assert any(f == "users.csv" and n == 2 and "age 'inf'" in r for f, n, r in quarantined), quarantined
    assert loaded == [(2,)]  # ratings[1].parquet is itself, not a pattern matching ratings1.parquet
    assert "SECRET" not in everything and "hunter2" not in everything
    checksums = json.loads(metrics)["model_files"]
    assert set(checksums) == {"rater.safetensors", "ranker.safetensors"}

    # the last night's ranker is damaged (same size, other bytes): warm start names it and trains from scratch
    ranker = warehouse / "runs" / run_id / "ranker.safetensors"
    data = bytearray(ranker.read_bytes())
    data[-8:] = bytes(8)
    ranker.write_bytes(bytes(data))
    again = cli("run", "--source", inbox, "--warm-start", *common, env=on(server))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "ranker.safetensors" in again.stderr and "training from scratch" in again.stderr
