"""The run lifecycle in the ``runs`` table: running -> succeeded | failed | rejected | abandoned."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from .db import connect
from .paths import now, run_dir

STATUSES = ("running", "succeeded", "failed", "rejected", "abandoned")


class RunRejected(RuntimeError):
    """The run was measured or checked and not published; the previous lists stay live."""


def start_run(
    warehouse: str | Path,
    run_id: str,
    source: str | None,
    config: dict[str, Any],
    config_hash: str,
    versions: dict[str, str],
) -> None:
    """Record the run as 'running'; runs left 'running' by a crashed process become 'abandoned'."""
    with connect(warehouse) as con:
        con.execute(
            "update runs set status = 'abandoned', error = 'process ended before the run finished' "
            "where status = 'running'"
        )
        con.execute(
            "insert into runs (run_id, status, started_at, source, config, config_hash, versions) "
            "values (?, 'running', ?, ?, ?, ?, ?)",
            [run_id, now(), source, json.dumps(config), config_hash, json.dumps(versions)],
        )


def succeeded_since(warehouse: str | Path, when: datetime) -> str | None:
    """The id of a run that started at or after ``when`` and succeeded, if any."""
    with connect(warehouse) as con:
        row = con.execute(
            "select run_id from runs where status = 'succeeded' and started_at >= ? order by started_at limit 1", [when]
        ).fetchone()
    return row[0] if row else None


def _finish(warehouse: str | Path, run_id: str, status: str, error: str) -> None:
    with connect(warehouse) as con:
        con.execute(
            "update runs set status = ?, finished_at = ?, error = ? where run_id = ?",
            [status, now(), error[:2000], run_id],
        )


def fail_run(warehouse: str | Path, run_id: str, error: str) -> None:
    _finish(warehouse, run_id, "failed", error)


def reject_run(warehouse: str | Path, run_id: str, reason: str) -> None:
    _finish(warehouse, run_id, "rejected", reason)


def last_published(warehouse: str | Path) -> dict[str, Any] | None:
    """The newest succeeded run: ``run_id``, ``finished_at`` (epoch seconds: every rating ingested before it
    was in that run's data), ``metrics``, ``run_dir``."""
    with connect(warehouse) as con:
        row = con.execute(
            "select run_id, epoch(finished_at), metrics from runs where status = 'succeeded' "
            "order by finished_at desc, run_id desc limit 1"
        ).fetchone()
    if not row:
        return None
    return {
        "run_id": row[0],
        "finished_at": float(row[1]),
        "metrics": json.loads(row[2]) if row[2] else {},
        "run_dir": str(run_dir(warehouse, row[0])),
    }
