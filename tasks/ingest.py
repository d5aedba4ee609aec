"""Stage the night's input: each new file validated into the run's folder (published with the night)."""

from __future__ import annotations

from prefect import task

from recmodel.io import list_rating_files
from store.ingest import StagedFile, stage_file, stage_items, stage_users


@task(name="ingest-ratings")
def ingest_ratings(
    warehouse: str,
    run_id: str,
    source: str,
    columns: str | None = None,
    delimiter: str | None = None,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    max_bad_fraction: float = 0.5,
) -> list[StagedFile]:
    """Validate every rating file of the source that the warehouse has not seen (a file refused as a whole
    is parked and skipped until it changes)."""
    return [
        stage_file(
            warehouse,
            run_id,
            path,
            columns=columns,
            delimiter=delimiter,
            rating_min=rating_min,
            rating_max=rating_max,
            max_bad_fraction=max_bad_fraction,
        )
        for path in list_rating_files(source)
    ]


ingest_items = task(name="ingest-items")(stage_items)
ingest_users = task(name="ingest-users")(stage_users)
