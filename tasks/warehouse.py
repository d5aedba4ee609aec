"""The warehouse: one folder with ``collabflow.duckdb``, durable Parquet copies and per-run files.

Plain functions (no Prefect) so they can be tested and reused; the Prefect tasks call them.
DuckDB 2.x notes: relations have no ``fetchone()``; use ``con.execute(...).fetchone()``.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import duckdb

DB_NAME = "collabflow.duckdb"
SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
VIEW_FILES = ("cold_users.sql", "latest_run.sql", "latest_recommendations.sql", "user_recommendations.sql", "run_history.sql", "latest_similar_items.sql")
_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")


def db_path(warehouse: str | Path) -> Path:
    return Path(warehouse) / DB_NAME


def run_dir(warehouse: str | Path, run_id: str) -> Path:
    if not _RUN_ID.match(run_id):
        raise ValueError(f"invalid run id {run_id!r}")
    return Path(warehouse) / "runs" / run_id


def sql_literal(value: str | Path) -> str:
    """A quoted SQL string literal (for COPY targets, which take no parameters)."""
    return "'" + str(value).replace("'", "''") + "'"


def now() -> datetime:
    return datetime.now(timezone.utc)


def new_run_id() -> str:
    """Sortable and unique: UTC time to the microsecond plus the pid."""
    return now().strftime("%Y%m%dT%H%M%S%fZ") + f"-{os.getpid()}"


LOCK_TIMEOUT_S = float(os.environ.get("COLLABFLOW_LOCK_TIMEOUT", "60"))


def fault_point(stage: str) -> None:
    """Crash-test hook: with ``COLLABFLOW_TEST_KILL_AT=<stage>`` the process SIGKILLs itself here, so the
    tests can prove that a crash at that point leaves published results intact. A no-op otherwise."""
    if os.environ.get("COLLABFLOW_TEST_KILL_AT") == stage:
        os.kill(os.getpid(), signal.SIGKILL)


def private_dir(path: str | Path) -> Path:
    """Create a folder readable by its owner only (the warehouse holds user data)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@contextmanager
def connect(warehouse: str | Path, read_only: bool = False,
            lock_timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse. DuckDB lets one process hold the file; while another does (a reader, or the
    nightly writer), retry for ``lock_timeout_s`` (default ``$COLLABFLOW_LOCK_TIMEOUT`` or 60 s), then
    fail with a message that says who holds it and what to do."""
    path = db_path(warehouse)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}; run `collabflow run --warehouse {warehouse}` first")
    if not read_only:
        private_dir(path.parent)
    created = not path.exists()
    timeout = LOCK_TIMEOUT_S if lock_timeout_s is None else lock_timeout_s
    deadline, delay = time.monotonic() + timeout, 0.1
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise
            if time.monotonic() >= deadline:
                holder = re.search(r"PID (\d+)", str(e))
                raise RuntimeError(
                    f"{path} is locked by another process{f' (pid {holder.group(1)})' if holder else ''} for more "
                    f"than {timeout:.0f}s. DuckDB allows one process at a time: close read connections to the "
                    f"warehouse (or wait for the nightly run) and retry"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
    if created and not read_only:
        os.chmod(path, 0o600)
    try:
        yield con
    finally:
        con.close()


def apply_sql_file(con: duckdb.DuckDBPyConnection, name: str) -> None:
    con.execute((SQL_DIR / name).read_text())


def ensure_schema(warehouse: str | Path) -> None:
    """Create tables and views if missing (idempotent)."""
    with connect(warehouse) as con:
        apply_sql_file(con, "schema.sql")
        for view in VIEW_FILES:
            apply_sql_file(con, view)


class WarehouseBusy(RuntimeError):
    pass


@contextmanager
def exclusive(warehouse: str | Path) -> Iterator[None]:
    """One run per warehouse at a time. The OS drops the lock when the process dies, even on kill -9."""
    Path(warehouse).mkdir(parents=True, exist_ok=True)
    lock_path = Path(warehouse) / ".collabflow.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise WarehouseBusy(
                f"another collabflow run (pid {holder}) is using {warehouse}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def start_run(warehouse: str | Path, run_id: str, source: str | None, config: dict, config_hash: str,
              versions: dict) -> None:
    """Record the run as 'running'; runs left 'running' by a crashed process become 'abandoned'."""
    with connect(warehouse) as con:
        con.execute("update runs set status = 'abandoned', error = 'process ended before the run finished' "
                    "where status = 'running'")
        con.execute(
            "insert into runs (run_id, status, started_at, source, config, config_hash, versions) "
            "values (?, 'running', ?, ?, ?, ?, ?)",
            [run_id, now(), source, json.dumps(config), config_hash, json.dumps(versions)],
        )


def succeeded_since(warehouse: str | Path, when: datetime) -> str | None:
    """The id of a run that started at or after ``when`` and succeeded, if any."""
    with connect(warehouse) as con:
        row = con.execute("select run_id from runs where status = 'succeeded' and started_at >= ? "
                          "order by started_at limit 1", [when]).fetchone()
    return row[0] if row else None


def fail_run(warehouse: str | Path, run_id: str, error: str) -> None:
    with connect(warehouse) as con:
        con.execute("update runs set status = 'failed', finished_at = ?, error = ? where run_id = ?",
                    [now(), error[:2000], run_id])


class RunRejected(RuntimeError):
    """The run was measured or checked and not published; the previous lists stay live."""


def checks(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """Run every query of sql/checks.sql; ``(check name, offending rows)`` for those returning rows."""
    failures = []
    for block in (SQL_DIR / "checks.sql").read_text().split("-- check:")[1:]:
        name, _, query = block.partition("\n")
        n = con.execute(f"select count(*) from ({query.strip().rstrip(';')})").fetchone()[0]
        if n:
            failures.append((name.strip(), int(n)))
    return failures


def reject_run(warehouse: str | Path, run_id: str, reason: str) -> None:
    with connect(warehouse) as con:
        con.execute("update runs set status = 'rejected', finished_at = ?, error = ? where run_id = ?",
                    [now(), reason[:2000], run_id])


def publish_run(warehouse: str | Path, run_id: str, recommendations_path: str | Path, summary: dict,
                top_n: int, keep_runs: int = 7, similar_path: str | Path | None = None, min_item_ratings: int = 1) -> int:
    """Insert the run's recommendations, check them (sql/checks.sql), mark the run succeeded and apply
    retention, all in ONE transaction.

    Until the commit, readers of ``latest_recommendations`` see the previous run; a failed check, an
    error or a crash rolls everything back, so a half-published run is never visible. Retention keeps
    the recommendations of the ``keep_runs`` newest succeeded runs; ``runs`` rows are kept forever.
    """
    if not _RUN_ID.match(run_id):
        raise ValueError(f"invalid run id {run_id!r}")
    with connect(warehouse) as con:
        con.execute("begin transaction")
        try:
            columns = {row[0] for row in con.execute("describe select * from read_parquet(?)",
                                                      [str(recommendations_path)]).fetchall()}
            source = "source" if "source" in columns else "'model'"  # files written before cold start
            con.execute(
                "insert into recommendations (run_id, user_id, rank, item_id, score, source) "
                f"select ?, user_id, rank, item_id, score, {source} from read_parquet(?)",
                [run_id, str(recommendations_path)],
            )
            if similar_path is not None:
                con.execute("insert into similar_items select ?, item_id, rank, similar_item_id, similarity "
                            "from read_parquet(?)", [run_id, str(similar_path)])
            con.execute(f"create or replace temp view candidate_recommendations as "
                        f"select * from recommendations where run_id = '{run_id}'")  # run_id matched _RUN_ID
            con.execute(f"set variable top_n = {int(top_n)}")
            con.execute(f"set variable min_item_ratings = {int(min_item_ratings)}")
            failures = checks(con)
            if failures:
                raise RunRejected("checks failed: " + ", ".join(f"{name} ({n} rows)" for name, n in failures))
            n = con.execute("select count(*) from candidate_recommendations").fetchone()[0]
            con.execute(
                "update runs set status = 'succeeded', finished_at = ?, n_ratings = ?, n_users = ?, n_items = ?, "
                "n_recommendations = ?, device = ?, data_hash = ?, metrics = ?, timings = ? where run_id = ?",
                [now(), summary["n_ratings"], summary["n_users"], summary["n_items"], n, summary["device"],
                 summary["data_hash"], json.dumps(summary["metrics"]), json.dumps(summary["timings"]), run_id],
            )
            expired = [r for (r,) in con.execute(
                "select run_id from runs where status = 'succeeded' order by finished_at desc, run_id desc offset ?",
                [keep_runs]).fetchall()]
            con.execute("delete from recommendations where run_id in (select unnest(?::varchar[]))", [expired])
            con.execute("delete from similar_items where run_id in (select unnest(?::varchar[]))", [expired])
            fault_point("publish")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    remove_run_folders(warehouse, keep=keep_runs)
    return int(n)


def remove_run_folders(warehouse: str | Path, keep: int) -> list[str]:
    """Delete run folders (models, snapshots) except the ``keep`` newest succeeded runs and any run still
    'running'. Called after the commit: a crash here leaves extra folders, never missing ones."""
    root = Path(warehouse) / "runs"
    if not root.is_dir():
        return []
    with connect(warehouse) as con:
        keep_ids = {r for (r,) in con.execute(
            "select run_id from runs where status = 'succeeded' order by finished_at desc, run_id desc limit ?",
            [keep]).fetchall()}
        keep_ids |= {r for (r,) in con.execute("select run_id from runs where status = 'running'").fetchall()}
    removed = []
    for folder in root.iterdir():
        if folder.is_dir() and folder.name not in keep_ids and _RUN_ID.match(folder.name):
            shutil.rmtree(folder)
            removed.append(folder.name)
    return removed


def last_published(warehouse: str | Path) -> dict | None:
    """The newest succeeded run: ``run_id``, ``finished_at`` (epoch seconds: every rating ingested before it
    was in that run's data), ``metrics``, ``run_dir``."""
    with connect(warehouse) as con:
        row = con.execute("select run_id, epoch(finished_at), metrics from runs where status = 'succeeded' "
                          "order by finished_at desc, run_id desc limit 1").fetchone()
    if not row:
        return None
    return {"run_id": row[0], "finished_at": float(row[1]), "metrics": json.loads(row[2]) if row[2] else {},
            "run_dir": str(run_dir(warehouse, row[0]))}


def quality_gate(previous: dict | None, metrics: dict, tolerance: float | None) -> str | None:
    """Why the new model is worse than the last published one beyond ``tolerance`` (relative), or None.

    Compared: validation RMSE (lower is better) and NDCG@10 (higher is better), when both runs have them.
    """
    if tolerance is None or not previous:
        return None
    if previous.get("validation", "random") != metrics.get("validation", "random"):
        return None  # measured on different kinds of validation data: not comparable
    reasons = []
    old, new = previous.get("valid_rmse"), metrics.get("valid_rmse")
    if old is not None and new is not None and new > old * (1 + tolerance):
        reasons.append(f"validation RMSE {new:.4f} is worse than the published {old:.4f} by more than {tolerance:.0%}")
    old, new = previous.get("ndcg_at_10"), metrics.get("ndcg_at_10")
    if old is not None and new is not None and new < old * (1 - tolerance):
        reasons.append(f"validation NDCG@10 {new:.4f} is worse than the published {old:.4f} by more than {tolerance:.0%}")
    return "; ".join(reasons) or None
