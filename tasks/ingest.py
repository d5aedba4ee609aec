"""Ingest the night's files into the warehouse."""

from __future__ import annotations

from prefect import task

from recmodel.io import list_rating_files
from store.ingest import IngestedFile, ingest_file, ingest_items_file, ingest_users_file


@task(name="ingest-ratings")
def ingest_ratings(
    source: str,
    warehouse: str,
    columns: str | None = None,
    delimiter: str | None = None,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    max_bad_fraction: float = 0.5,
) -> list[IngestedFile]:
    """Ingest a rating file, or every rating file in a folder, that the warehouse has not seen."""
    return [
        ingest_file(
            warehouse,
            path,
            columns=columns,
            delimiter=delimiter,
            rating_min=rating_min,
            rating_max=rating_max,
            max_bad_fraction=max_bad_fraction,
        )
        for path in list_rating_files(source)
    ]


ingest_items = task(name="ingest-items")(ingest_items_file)
ingest_users = task(name="ingest-users")(ingest_users_file)
