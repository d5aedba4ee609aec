"""Serve the nightly flow on a schedule (``collabflow serve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import serve
from prefect.schedules import Cron
from prefect.settings import PREFECT_API_URL

from flows.nightly import nightly


def deployment(params: dict[str, Any], cron: str = "0 2 * * *", timezone: str = "UTC", name: str = "nightly"):
    """The nightly deployment: one run at a time (``concurrency_limit=1``), paths made absolute so the
    served runs find the same warehouse whatever the working directory."""
    params = dict(params)
    for key in ("warehouse", "source"):
        if params.get(key):
            params[key] = str(Path(params[key]).resolve())
    return nightly.to_deployment(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters=params,
        tags=["collabflow", "nightly"],
        concurrency_limit=1,
        description="collabflow's nightly run: ingest, train, score every user, publish.",
    )


def serve_nightly(
    params: dict[str, Any], cron: str = "0 2 * * *", timezone: str = "UTC", name: str = "nightly"
) -> None:
    if not PREFECT_API_URL.value():
        raise RuntimeError(
            "serve needs a running Prefect server to hold the schedule: start one with "
            "`prefect server start` and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    # Prefect's serve pauses deployments and deletes their scheduled runs on shutdown by default;
    # a nightly job must keep its schedule across restarts.
    serve(deployment(params, cron, timezone, name), pause_on_shutdown=False)
