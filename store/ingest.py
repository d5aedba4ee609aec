"""The night's input, staged: each new file validated into Parquet under the run's folder.

Nothing here touches the published data: the staged rows join the ratings only when the night publishes
(``store.publish``), so a refused, rejected or crashed night leaves the warehouse as it was and the next
night picks the same files up again. Two things are recorded at once, because they must outlive a failed
night: a file refused as a whole is *parked* (``refused_files``: skipped, with a warning, until its bytes
change), so one bad file never stops the inbox.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recmodel.io import RatingsFileError, parse_column_mapping, read_items, read_ratings, read_users

from . import durable, faults
from .db import connect_state
from .paths import now, private_dir, run_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StagedFile:
    """One input file of the night. ``staged`` is the Parquet of its valid rows (latest per pair within the
    file, in file order), ``None`` when the file was skipped (``skipped``: same bytes ingested before, or
    parked) or refused tonight (``refused``: the reason)."""

    path: str
    file_hash: str
    skipped: bool
    refused: str | None = None
    staged: str | None = None
    quarantine: str | None = None
    rows_read: int = 0
    rows_quarantined: int = 0
    duplicates: int = 0  # valid rows superseded by a later row of the same pair in the same file


@dataclass(frozen=True)
class StagedNight:
    """Everything the night read, before it is published."""

    run_id: str
    files: list[StagedFile]
    items: str | None = None  # Parquet of the item metadata read tonight
    users: str | None = None  # Parquet of the user metadata read tonight (it alone decides cold start)

    @property
    def new_files(self) -> list[StagedFile]:
        return [f for f in self.files if f.staged is not None]


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


def _known(warehouse: str | Path, digest: str) -> str | None:
    """Why a file's bytes are skipped: ingested before, or parked after a refusal; None if new."""
    with connect_state(warehouse) as con:
        seen = con.execute("select path, ingested_at from ingested_files where file_hash = ?", [digest]).fetchone()
        if seen is not None:
            return f"same bytes already ingested from {seen[0]} at {seen[1]}"
        parked = con.execute("select path, reason from refused_files where file_hash = ?", [digest]).fetchone()
    if parked is not None:
        return f"parked since it was refused ({parked[1]}); fix or replace the file to have it read again"
    return None


def park(warehouse: str | Path, run_id: str, path: Path, digest: str, reason: str) -> None:
    """Record a refused file so later nights skip it until its bytes change (kept even if tonight fails)."""
    with connect_state(warehouse) as con:
        con.execute(
            "insert or replace into refused_files values (?, ?, ?, ?, ?)",
            [digest, str(path.resolve()), reason[:2000], now(), run_id],
        )


def stage_file(
    warehouse: str | Path,
    run_id: str,
    path: Path,
    *,
    columns: str | None = None,
    delimiter: str | None = None,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    max_bad_fraction: float = 0.5,
    default_timestamp: int | None = None,
) -> StagedFile:
    """Validate one file into the night's staging folder, unless its bytes were seen before."""
    digest = file_hash(path)
    why = _known(warehouse, digest)
    if why is not None:
        log.info("%s: %s; skipped", path, why)
        if "parked" in why:
            log.warning("%s: %s", path, why)
        return StagedFile(str(path), digest, True)
    log.info("%s: reading and validating %.0f MB", path, path.stat().st_size / 2**20)
    t0 = time.perf_counter()
    try:
        parsed = read_ratings(
            path,
            separator=delimiter,
            columns=parse_column_mapping(columns),
            rating_min=rating_min,
            rating_max=rating_max,
            default_timestamp=default_timestamp or int(time.time()),
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
    except RatingsFileError as e:
        park(warehouse, run_id, path, digest, str(e))
        log.warning("%s: refused and parked until its bytes change: %s", path, e)
        return StagedFile(str(path), digest, False, refused=str(e))
    seconds = max(time.perf_counter() - t0, 1e-9)
    log.info(
        "%s: %d rows validated in %.1fs (%.0f rows/s)", path, parsed.rows_read, seconds, parsed.rows_read / seconds
    )
    folder = private_dir(run_dir(warehouse, run_id) / "staged")
    staged = durable.write_parquet(parsed.ratings, folder / f"{digest[:32]}.parquet")
    quarantine = durable.write_parquet(
        parsed.quarantine.with_columns(pl.lit(digest).alias("file_hash"), pl.lit(str(path.resolve())).alias("path")),
        folder / f"{digest[:32]}.quarantine.parquet",
    )
    faults.point("ingest")
    return StagedFile(
        str(path),
        digest,
        False,
        None,
        str(staged),
        str(quarantine),
        parsed.rows_read,
        parsed.quarantine.height,
        parsed.duplicates,
    )


def stage_items(warehouse: str | Path, run_id: str, path: str | Path, columns: str | None = None) -> str:
    """Item metadata (id, title, genres) read tonight; upserted at publish (a later title wins)."""
    frame = read_items(path, parse_column_mapping(columns, ("item", "title", "genres")))
    log.info("%s: %d items with titles", path, frame.height)
    folder = private_dir(run_dir(warehouse, run_id) / "staged")
    return str(durable.write_parquet(frame, folder / "items.parquet"))


def stage_users(warehouse: str | Path, run_id: str, path: str | Path) -> str:
    """User metadata read tonight: at publish it replaces the table users_meta (cold start is per night)."""
    frame = read_users(path)
    log.info(
        "%s: metadata for %d users (%s)", path, frame.height, ", ".join(c for c in frame.columns if c != "user_id")
    )
    folder = private_dir(run_dir(warehouse, run_id) / "staged")
    return str(durable.write_parquet(frame, folder / "users.parquet"))
