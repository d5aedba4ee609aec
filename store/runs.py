"""The run lifecycle in the state's ``runs`` table: running -> succeeded | failed | rejected | abandoned.

Only the writer changes it, in the state database (``store.db.connect_state``); readers see it in the
served snapshot from the next publish on. ``seq`` orders runs by when they started, whatever the wall
clock did; "the last published run" is the one with the highest ``version``, never the newest time.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from recmodel.io.errors import UserError

from .db import connect_state
from .paths import now, run_dir

log = logging.getLogger(__name__)
STATUSES = ("running", "succeeded", "failed", "rejected", "abandoned")
ERROR_MAX = 2000  # characters of an error kept in runs.error


class RunRejected(RuntimeError, UserError):
    """The run was measured or checked and not published; the previous lists stay live."""


def start_run(
    warehouse: str | Path,
    run_id: str,
    source: str | None,
    config: dict[str, Any],
    config_hash: str,
    versions: dict[str, str],
) -> int:
    """Record the run as 'running' (runs left 'running' by a crashed process become 'abandoned'); its seq."""
    with connect_state(warehouse) as con:
        con.execute(
            "update runs set status = 'abandoned', finished_at = coalesce(finished_at, ?), "
            "error = 'the process ended before the run finished (killed, or the machine stopped)' "
            "where status = 'running'",
            [now()],
        )
        row = con.execute("select coalesce(max(seq), 0) + 1 from runs").fetchone()
        seq = int(row[0]) if row else 1
        con.execute(
            "insert into runs (run_id, seq, status, started_at, source, config, config_hash, versions) "
            "values (?, ?, 'running', ?, ?, ?, ?, ?)",
            [run_id, seq, now(), source, json.dumps(config), config_hash, json.dumps(versions)],
        )
    return seq


def record_trained_config(warehouse: str | Path, run_id: str, values: dict[str, Any]) -> None:
    """Add the settings the night actually trained with (after tuning) to its config, under ``trained``."""
    with connect_state(warehouse) as con:
        row = con.execute("select config from runs where run_id = ?", [run_id]).fetchone()
        config = _metrics(row[0]) if row else {}
        config["trained"] = values
        con.execute("update runs set config = ? where run_id = ?", [json.dumps(config), run_id])


def succeeded_since(warehouse: str | Path, when: datetime) -> str | None:
    """The id of a run that started at or after ``when`` and was published, if any."""
    with connect_state(warehouse) as con:
        row = con.execute(
            "select run_id from runs where status = 'succeeded' and started_at >= ? order by seq limit 1", [when]
        ).fetchone()
    return row[0] if row else None


def _finish(warehouse: str | Path, run_id: str, status: str, error: str) -> None:
    """Record how a run ended. Best effort: when even that fails (a full disk, say), log it and let the
    original error be the one the caller raises."""
    try:
        with connect_state(warehouse) as con:
            con.execute(
                "update runs set status = ?, finished_at = ?, error = ? where run_id = ? and status = 'running'",
                [status, now(), error[:ERROR_MAX], run_id],
            )
    except Exception as e:  # noqa: BLE001  (never mask the run's own error)
        log.error(
            "could not record run %s as %s (%s: %s); the next run will mark it abandoned",
            run_id,
            status,
            type(e).__name__,
            e,
        )


def fail_run(warehouse: str | Path, run_id: str, error: str) -> None:
    _finish(warehouse, run_id, "failed", error)


def reject_run(warehouse: str | Path, run_id: str, reason: str) -> None:
    _finish(warehouse, run_id, "rejected", reason)


def _metrics(raw: Any) -> dict[str, Any]:
    return json.loads(raw) if raw else {}


def last_published(warehouse: str | Path) -> dict[str, Any] | None:
    """The run the latest version serves: ``run_id``, ``version``, ``metrics``, ``run_dir``."""
    with connect_state(warehouse) as con:
        row = con.execute(
            "select v.run_id, v.version, r.metrics from versions as v join runs as r using (run_id) "
            "order by v.version desc limit 1"
        ).fetchone()
    if not row:
        return None
    return {
        "run_id": row[0],
        "version": int(row[1]),
        "metrics": _metrics(row[2]),
        "run_dir": str(run_dir(warehouse, row[0])),
    }


def last_measured(warehouse: str | Path, k: int) -> dict[str, Any] | None:
    """The latest published night that was measured on a validation part (what the quality gate compares
    with): ``run_id`` and ``metrics``. Unmeasured nights (``valid_pct=0``) are passed over."""
    with connect_state(warehouse) as con:
        rows = con.execute(
            "select v.run_id, r.metrics from versions as v join runs as r using (run_id) "
            "where v.kind = 'night' order by v.version desc"
        ).fetchall()
    for run_id, raw in rows:
        metrics = _metrics(raw)
        if metrics.get("valid_rmse") is not None or metrics.get(f"ndcg_at_{k}") is not None:
            return {"run_id": run_id, "metrics": metrics}
    return None
