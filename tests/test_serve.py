"""`collabflow serve` against a real `prefect server start`: schedule, a run through the API, shutdown.

Slow (a server start, a served run): about a minute on 2 cores.
"""

import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from tests.conftest import CLI, api, wait_for

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def test_serve_schedules_runs_and_keeps_schedule_on_stop(server, small_ratings, tmp_path):
    url, env = server
    warehouse = tmp_path / "wh"
    env = {**env, "PREFECT_API_URL": url, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    serve = subprocess.Popen(
        [
            *CLI,
            "serve",
            "--source",
            str(small_ratings),
            "--warehouse",
            str(warehouse),
            "--rating-min",
            "1",
            "--top-n",
            "4",
            "--tune-budget",
            "0",
            "--timezone",
            "Europe/Berlin",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deployments = wait_for("the deployment", lambda: api(url, "/deployments/filter", {}), timeout=120)
        dep = deployments[0]
        assert dep["name"] == "nightly" and not dep["paused"]
        schedule = dep["schedules"][0]["schedule"]
        assert schedule["cron"] == "0 2 * * *" and schedule["timezone"] == "Europe/Berlin"
        assert dep["global_concurrency_limit"]["limit"] == 1  # two nights never overlap
        assert dep["parameters"]["warehouse"] == str(warehouse.resolve())

        run = api(url, f"/deployments/{dep['id']}/create_flow_run", {"parameters": {"epochs": 2}})
        finished = wait_for(
            "the served run",
            lambda: (
                (r := api(url, f"/flow_runs/{run['id']}"))["state_type"] in ("COMPLETED", "FAILED", "CRASHED") and r
            ),
            timeout=240,
            every=2,
        )
        assert finished["state_type"] == "COMPLETED", finished["state"]
        artifacts = api(url, "/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
        assert {"collabflow-run-metrics", "collabflow-model-comparison"} <= {a["key"] for a in artifacts}
        wait_for(
            "our library's log lines in the UI",
            lambda: any(  # logs ship in batches, after the state
                "epoch 2/2" in e["message"]
                for e in api(url, "/logs/filter", {"logs": {"flow_run_id": {"any_": [run["id"]]}}})
            ),
        )
        with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
            assert con.execute("select status, config->'train'->>'epochs' from runs").fetchall() == [("succeeded", "2")]

        # a night missed while serve was down (slot an hour ago) finds it was covered, and does nothing
        slot = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        late = api(
            url,
            f"/deployments/{dep['id']}/create_flow_run",
            {"state": {"type": "SCHEDULED", "state_details": {"scheduled_time": slot}}},
        )
        wait_for(
            "the late run",
            lambda: api(url, f"/flow_runs/{late['id']}")["state_type"] == "COMPLETED",
            timeout=240,
            every=2,
        )
        wait_for(
            "the late run's 'skipped' log line (logs ship in batches)",
            lambda: any(
                "skipped: run " in e["message"]
                for e in api(url, "/logs/filter", {"logs": {"flow_run_id": {"any_": [late["id"]]}}})
            ),
        )
        with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
            assert con.execute("select count(*) from runs").fetchall() == [(1,)]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
    dep = api(url, f"/deployments/{dep['id']}")
    assert not dep["paused"]  # Prefect's default would pause it and delete the scheduled runs
    scheduled = api(url, "/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})
    assert len(scheduled) >= 1
