"""Helpers for tests of the store: ingest a file on its own, and read the writer's state."""

from pathlib import Path

import duckdb

from recmodel.io import RatingsFileError
from store.ingest import InputRules, StagedNight, WarehouseKind, stage_file, warehouse_kind
from store.night import IngestedFile, plan_night
from store.paths import new_run_id, state_db
from store.publish import load_night_data
from store.runs import start_run
from store.state import open_warehouse


def ingest(warehouse: Path, path: Path, **options) -> IngestedFile:
    """Stage one file and merge it into the state (no lists, no version): its counts and records.
    A refused file raises its ``RatingsFileError``, as the night would."""
    open_warehouse(warehouse)
    run_id = new_run_id()
    start_run(warehouse, run_id, str(path), {}, "test", {})
    staged = stage_file(warehouse, run_id, path, InputRules(**options))
    if staged.refused:
        raise RatingsFileError(path, staged.refused.removeprefix(f"{path}: "))
    plan, _ = plan_night(warehouse, StagedNight(run_id, [staged], kind=night_kind(warehouse, staged)))
    load_night_data(warehouse, plan)
    return plan.files[0]


def night_kind(warehouse: Path, staged) -> WarehouseKind:
    """The warehouse's kind, or (nothing published yet) the staged file's."""
    kind = warehouse_kind(warehouse)
    return (
        kind
        if kind.feedback is not None or staged.staged is None
        else WarehouseKind(staged.feedback, dict(staged.id_types))
    )


def state(warehouse: Path, sql: str, params=None):
    """Rows of a query on the writer's state."""
    with duckdb.connect(str(state_db(warehouse)), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()
