"""Stage the night's input: each new file validated into the run's folder (published with the night)."""

from __future__ import annotations

from prefect import task

from recmodel.io import list_rating_files
from store.ingest import (
    InputRules,
    StagedFile,
    WarehouseKind,
    ledger,
    stage_file,
    stage_items,
    stage_users,
    warehouse_kind,
)


@task(name="ingest-ratings")
def ingest_ratings(
    warehouse: str, run_id: str, source: str, rules: InputRules
) -> tuple[list[StagedFile], WarehouseKind]:
    """Validate every rating file of the source that the warehouse has not seen; a file refused as a whole is
    parked and skipped until it changes. The warehouse's kind (feedback, id types) is its first night's."""
    kind, known = warehouse_kind(warehouse), ledger(warehouse)
    files = []
    try:
        for path in list_rating_files(source):
            staged = stage_file(warehouse, run_id, path, rules, kind, known)
            if staged.staged is not None and kind.feedback is None:  # a new warehouse: the first file decides
                kind = WarehouseKind(staged.feedback, dict(staged.id_types))
            files.append(staged)
    finally:
        known.flush(warehouse)  # what was read stays known even if a later file stops the night
    return files, kind


ingest_items = task(name="ingest-items")(stage_items)
ingest_users = task(name="ingest-users")(stage_users)
