"""Ingest rating files into the warehouse: validate, quarantine, keep the latest rating per pair."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recmodel.io import RatingsFileError, parse_column_mapping, read_items, read_ratings, read_users

from . import faults
from .db import connect, scalar, sql
from .paths import now, private_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestedFile:
    """One rating file's outcome; ``rows_read = rows_loaded + rows_quarantined + rows_superseded``."""

    path: str
    file_hash: str
    skipped: bool
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    rows_superseded: int = 0


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    except FileNotFoundError:
        raise RatingsFileError(path, "disappeared before it could be read", "Re-deliver the file and rerun.") from None
    except IsADirectoryError:
        raise RatingsFileError(
            path, "is a folder, not a file", "Pass the folder as --source to ingest every file in it."
        ) from None
    return h.hexdigest()


def ingest_file(
    warehouse: str | Path,
    path: Path,
    *,
    columns: str | None = None,
    delimiter: str | None = None,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    max_bad_fraction: float = 0.5,
) -> IngestedFile:
    """Load one file unless its exact bytes were ingested before.

    Everything for one file (ratings merge, quarantine rows, the ingested_files record) commits in one
    DuckDB transaction, so a crash leaves either all of it or none of it.
    """
    digest = file_hash(path)
    with connect(warehouse) as con:
        seen = con.execute("select path, ingested_at from ingested_files where file_hash = ?", [digest]).fetchone()
    if seen is not None:
        log.info("%s: same bytes already ingested from %s at %s; skipped", path, seen[0], seen[1])
        return IngestedFile(str(path), digest, True)

    log.info("%s: reading and validating %.0f MB", path, path.stat().st_size / 2**20)
    t0 = time.perf_counter()
    parsed = read_ratings(
        path,
        separator=delimiter,
        columns=parse_column_mapping(columns),
        rating_min=rating_min,
        rating_max=rating_max,
        default_timestamp=int(time.time()),
    )
    seconds = max(time.perf_counter() - t0, 1e-9)
    log.info(
        "%s: %d rows validated in %.1fs (%.0f rows/s); loading",
        path,
        parsed.rows_read,
        seconds,
        parsed.rows_read / seconds,
    )
    n_bad = parsed.quarantine.height
    if parsed.rows_read and n_bad / parsed.rows_read > max_bad_fraction:
        top = parsed.quarantine.group_by("reason").len().sort("len", descending=True).head(3)
        reasons = "; ".join(f"{r} ({n} rows)" for r, n in top.iter_rows())
        raise RatingsFileError(
            path,
            f"{n_bad} of {parsed.rows_read} rows failed validation, e.g. {reasons}",
            "Nothing was loaded from it. Check the delimiter (--delimiter), the column mapping (--columns) "
            "and the rating range (--rating-min/--rating-max)",
        )

    parquet_path = private_dir(Path(warehouse) / "ingested") / f"{digest[:32]}.parquet"
    tmp = parquet_path.with_suffix(".parquet.tmp")
    parsed.ratings.write_parquet(tmp)
    os.replace(tmp, parquet_path)  # the durable copy of this file's valid rows

    batch = parsed.ratings.select("user_id", "item_id", "rating", "timestamp").to_arrow()
    quarantine = parsed.quarantine.with_columns(
        pl.lit(digest).alias("file_hash"), pl.lit(str(path.resolve())).alias("path")
    ).to_arrow()
    with connect(warehouse) as con:
        con.register("batch", batch)
        con.register("bad_rows", quarantine)
        con.execute("begin transaction")
        try:
            con.execute(sql("writer/incoming.sql"))
            stale = scalar(con, "select count(*) from incoming where old_ts is not null and timestamp < old_ts")
            con.execute(sql("writer/delete_replaced.sql"))
            con.execute(sql("writer/insert_winners.sql"), [digest])
            ingested_at = now()
            con.execute(
                "insert into quarantine select file_hash, path, row_number, reason, raw, ? from bad_rows", [ingested_at]
            )
            result = IngestedFile(
                str(path),
                digest,
                False,
                parsed.rows_read,
                parsed.ratings.height - stale,
                n_bad,
                parsed.duplicates + stale,
            )
            con.execute(
                "insert into ingested_files values (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    digest,
                    str(path.resolve()),
                    result.rows_read,
                    result.rows_loaded,
                    result.rows_quarantined,
                    result.rows_superseded,
                    str(parquet_path.relative_to(warehouse)),
                    ingested_at,
                ],
            )
            con.execute("drop table incoming")
            faults.point("ingest")
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
    log.info(
        "%s: read %d rows: %d loaded, %d quarantined, %d superseded",
        path,
        result.rows_read,
        result.rows_loaded,
        result.rows_quarantined,
        result.rows_superseded,
    )
    return result


def ingest_items_file(warehouse: str | Path, path: str | Path, columns: str | None = None) -> int:
    """Upsert item metadata (id, title, genres); a later file's title wins. Returns rows read."""
    frame = read_items(path, parse_column_mapping(columns, ("item", "title", "genres")))
    with connect(warehouse) as con:
        con.register("new_items", frame.to_arrow())
        con.execute("insert or replace into items select item_id, title, genres from new_items")
    log.info("%s: %d items with titles", path, frame.height)
    return frame.height


def ingest_users_file(warehouse: str | Path, path: str | Path) -> int:
    """Replace the user metadata (table users_meta). Returns users read."""
    frame = read_users(path)
    with connect(warehouse) as con:
        con.register("new_users", frame.to_arrow())
        con.execute("create or replace table users_meta as select * from new_users")
    log.info(
        "%s: metadata for %d users (%s)", path, frame.height, ", ".join(c for c in frame.columns if c != "user_id")
    )
    return frame.height
