"""Exit codes tell the truth (issue 11): losing the Prefect API after the publish is a warning, not a failure.

A real `prefect server start` for this module alone (the test kills it), the real CLI in a subprocess.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from tests.conftest import api, free_port, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def doomed_server(tmp_path):
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for("the Prefect server", lambda: api(url, "/health"), timeout=180)
        yield url, env, proc
    finally:
        proc.kill()
        proc.wait(30)


def test_losing_the_api_after_the_publish_exits_zero_with_a_warning(doomed_server, small_ratings, tmp_path):
    url, env, server = doomed_server
    env = {
        **env,
        "PREFECT_API_URL": url,
        "COLLABFLOW_TEST_KILL_PID_AT": f"published:{server.pid}",
        "PREFECT_CLIENT_MAX_RETRIES": "1",
    }  # keep the test short: the client gives up sooner
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "run",
            "--source",
            str(small_ratings),
            "--warehouse",
            str(tmp_path / "wh"),
            "--epochs",
            "2",
            "--tune-budget",
            "0",
            "--rating-min",
            "1",
            "--top-n",
            "5",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert server.poll() is not None  # the API went away after the publish
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("collabflow run: warning: run ") and "was published as version 1" in last
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    with duckdb.connect(str(tmp_path / "wh" / "collabflow.duckdb"), read_only=True) as con:
        served = con.execute("select version, run_id from latest_run").fetchall()
        status = con.execute("select status from runs where run_id = ?", [out["run_id"]]).fetchall()
    assert served == [(1, out["run_id"])] and status == [("succeeded",)]
