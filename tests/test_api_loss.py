"""Exit codes tell the truth (issue 11): losing the Prefect API after the publish is a warning, not a failure.

A real `prefect server start` for this module alone (the test kills it), the real CLI in a subprocess.
"""

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CLI, prefect_server

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def doomed_server(tmp_path):
    with prefect_server(tmp_path / "prefect") as started:  # this module's own: the test kills it
        yield started


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
            *CLI,
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
    # the report is a file: written without the API (only its task wrapper and the artifacts need one)
    assert (
        (tmp_path / "wh" / "runs" / out["run_id"] / "report" / "report.md").read_text().startswith("# collabflow run")
    )
    assert "no artifacts tonight" in proc.stderr
