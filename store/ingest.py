"""The night's input, staged: each new file validated into Parquet under the run's folder.

Nothing here touches the published data: the staged rows join the ratings only when the night publishes
(``store.publish``), so a refused, rejected or crashed night leaves the warehouse as it was and the next
night picks the same files up again. Two things are recorded at once, because they must outlive a failed
night: the **inbox ledger** (a file's path, size, modification time and inode with its content hash, so
a file already ingested or parked is skipped without reading a byte of it), and **parked files** (a file
refused as a whole is skipped, with a warning, until its bytes change): one bad file never stops the inbox.

A file is read only once it is stable: not modified for ``settle_seconds``, or with a ``<name>.ready``
marker beside it. It is read once, and hashed from the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl

from recmodel.io import Limits, RatingsFileError, ReadOptions, parse_column_mapping, read_items, read_users
from recmodel.io.files import FileChanged
from recmodel.io.ratings_file import IdType, out_of_range, stage_ratings

from . import durable, faults
from .db import connect_state
from .paths import now, private_dir, run_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputRules:
    """How tonight's files are read (the ``DataConfig`` settings, and the run's rating range)."""

    columns: str | None = None
    delimiter: str | None = None
    rating_min: float = 0.5
    rating_max: float = 5.0
    max_bad_fraction: float = 0.5
    feedback: Literal["auto", "explicit", "implicit"] = "auto"
    timestamp_min: str = "1995-01-01"
    settle_seconds: float = 0.0
    max_line_bytes: int = 1 << 20
    max_field_bytes: int = 1 << 16
    max_file_bytes: int = 20 << 30

    def limits(self) -> Limits:
        return Limits(max_line_bytes=self.max_line_bytes, max_file_bytes=self.max_file_bytes)


@dataclass(frozen=True)
class WarehouseKind:
    """What the warehouse's published data is: its feedback kind and id types (None: nothing published yet)."""

    feedback: Literal["explicit", "implicit"] | None = None
    id_types: dict[str, IdType] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedFile:
    """One input file of the night. ``staged`` is the Parquet of its valid rows (in file order), None when the
    file was skipped (``skipped``: why, e.g. same bytes ingested before, parked, still being written) or
    refused tonight (``refused``: the reason)."""

    path: str
    file_hash: str
    skipped: str | None = None
    refused: str | None = None
    staged: str | None = None
    quarantine: str | None = None
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    feedback: Literal["explicit", "implicit"] | None = None
    id_types: dict[str, IdType] = field(default_factory=dict)


@dataclass(frozen=True)
class StagedNight:
    """Everything the night read, before it is published."""

    run_id: str
    files: list[StagedFile]
    items: str | None = None  # Parquet of the item metadata read tonight
    users: str | None = None  # Parquet of the user metadata read tonight (it alone decides cold start)
    metadata_quarantine: list[str] = field(default_factory=list)  # Parquet of their quarantined rows
    kind: WarehouseKind = field(default_factory=WarehouseKind)

    @property
    def new_files(self) -> list[StagedFile]:
        return [f for f in self.files if f.staged is not None]


def warehouse_kind(warehouse: str | Path) -> WarehouseKind:
    with connect_state(warehouse) as con:
        meta = dict(con.execute("select key, value from warehouse_meta").fetchall())
    id_types: dict[str, IdType] = {}
    for role in ("user", "item"):
        value = meta.get(f"{role}_id_type")
        if value in ("int", "str"):
            id_types[role] = "int" if value == "int" else "str"
    feedback = meta.get("feedback")
    return WarehouseKind(
        "explicit" if feedback == "explicit" else "implicit" if feedback == "implicit" else None, id_types
    )


@dataclass(frozen=True)
class Known:
    """A path the ledger knows: its state on disk when last read, and what became of its bytes."""

    size: int
    mtime_ns: int
    inode: int
    file_hash: str
    status: str  # ingested | parked | seen


@dataclass
class Ledger:
    """What a night knows about the inbox before reading anything, loaded once (10,000 files skip in
    milliseconds): every path read before, and the content hashes ingested or parked. What the night learns
    is kept in ``pending`` and written in one statement by ``flush`` (a connection a file cost 20 ms each)."""

    paths: dict[str, Known]
    ingested: dict[str, tuple[str, Any]]  # file hash -> (path, ingested_at)
    parked: dict[str, str]  # file hash -> reason
    pending: list[list[Any]] = field(default_factory=list)

    def remember(self, path: Path, st: os.stat_result, digest: str) -> None:
        self.pending.append([str(path.absolute()), st.st_size, st.st_mtime_ns, st.st_ino, digest, now()])

    def flush(self, warehouse: str | Path) -> None:
        if self.pending:
            with connect_state(warehouse) as con:
                con.executemany("insert or replace into inbox_ledger values (?, ?, ?, ?, ?, ?)", self.pending)
            self.pending = []

    def status(self, digest: str) -> str | None:
        """Why these bytes are skipped: ingested before, or parked after a refusal; None if new."""
        if digest in self.ingested:
            path, at = self.ingested[digest]
            return f"same bytes already ingested from {path} at {at}"
        if digest in self.parked:
            return (
                f"parked since it was refused ({self.parked[digest][:300]}); "
                "fix or replace the file to have it read again"
            )
        return None


def ledger(warehouse: str | Path) -> Ledger:
    """The inbox ledger, loaded once a night."""
    with connect_state(warehouse) as con:
        rows = con.execute(
            "select l.path, l.size, l.mtime_ns, l.inode, l.file_hash, "
            "case when f.file_hash is not null then 'ingested' when r.file_hash is not null then 'parked' "
            "else 'seen' end from inbox_ledger as l left join ingested_files as f using (file_hash) "
            "left join refused_files as r using (file_hash)"
        ).fetchall()
        ingested = con.execute("select file_hash, path, ingested_at from ingested_files").fetchall()
        parked = con.execute("select file_hash, reason from refused_files").fetchall()
    return Ledger(
        {path: Known(size, mtime, inode, digest, status) for path, size, mtime, inode, digest, status in rows},
        {digest: (path, at) for digest, path, at in ingested},
        dict(parked),
    )


def park(warehouse: str | Path, run_id: str, path: Path, digest: str, reason: str) -> None:
    """Record a refused file so later nights skip it until its bytes change (kept even if tonight fails)."""
    with connect_state(warehouse) as con:
        con.execute(
            "insert or replace into refused_files values (?, ?, ?, ?, ?)",
            [digest, str(path.absolute()), reason[:2000], now(), run_id],
        )


def _settling(path: Path, st: os.stat_result, settle_seconds: float) -> bool:
    if settle_seconds <= 0 or Path(f"{path}.ready").exists():
        return False
    return time.time() - st.st_mtime < settle_seconds


def _timestamp(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC).timestamp())


def _scale_hint(reasons: pl.DataFrame, valid: Path) -> str:
    """When ratings outside the range are what failed most: the scale the file's ratings span, as the
    options that would accept it (Book-Crossing's 0-10 against the default 0.5-5)."""
    ratings = out_of_range(reasons["reason"])
    if ratings.is_null().all() or reasons["len"].filter(ratings.is_not_null()).sum() * 2 < reasons["len"].sum():
        return ""
    values = ratings.drop_nulls()
    if valid.exists():
        kept = pl.scan_parquet(valid, glob=False).select(
            pl.col("rating").min().alias("lo"), pl.col("rating").max().alias("hi")
        )
        values = pl.concat([values, kept.collect().unpivot()["value"].cast(pl.Float64)]).drop_nulls()
    if values.is_empty():
        return ""
    lo, hi = float(values.min()), float(values.max())  # type: ignore[arg-type]
    hint = f"; its ratings span {lo:g} to {hi:g}: if that is its scale, pass --rating-min {lo:g} --rating-max {hi:g}"
    above = values.filter(values > lo)
    if lo <= 0 and not above.is_empty():  # 0 in Book-Crossing and Goodreads, -1 in other exports: no rating given
        second = float(above.min())  # type: ignore[arg-type]
        hint += (
            f"; if {lo:g} means 'not rated', pass --rating-min {second:g} --rating-max {hi:g} "
            f"(the {lo:g} rows are then quarantined, with their reason)"
        )
    return hint


def stage_file(
    warehouse: str | Path,
    run_id: str,
    path: Path,
    rules: InputRules | None = None,
    kind: WarehouseKind | None = None,
    known: Ledger | None = None,
) -> StagedFile:
    """Validate one file into the night's staging folder, unless it is known, unstable or refused.

    With ``known`` (the night's ledger, for many files) the caller flushes it once after the last file."""
    if known is None:
        known = ledger(warehouse)
        try:
            return stage_file(warehouse, run_id, path, rules, kind, known)
        finally:
            known.flush(warehouse)
    rules = rules or InputRules()
    kind = kind if kind is not None else warehouse_kind(warehouse)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise RatingsFileError(path, "disappeared before it could be read", "Re-deliver the file and rerun") from None
    seen = known.paths.get(str(path.absolute()))
    if (
        seen is not None
        and seen.status != "seen"
        and (seen.size, seen.mtime_ns, seen.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
    ):
        log.info("%s: unchanged since it was %s; skipped without reading it", path, seen.status)
        return StagedFile(str(path), seen.file_hash, skipped=f"unchanged since it was {seen.status}")
    if stat.S_ISREG(st.st_mode) and _settling(path, st, rules.settle_seconds):
        log.info(
            "%s: modified %.0fs ago, still settling (settle_seconds %s); read next night, or add %s.ready",
            path,
            time.time() - st.st_mtime,
            rules.settle_seconds,
            path.name,
        )
        return StagedFile(str(path), "", skipped="still being written")
    folder = private_dir(run_dir(warehouse, run_id) / "staged")
    stem = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:24]
    valid, quarantine = folder / f"{stem}.parquet", folder / f"{stem}.quarantine.parquet"
    opts = ReadOptions(
        separator=rules.delimiter,
        columns=parse_column_mapping(rules.columns),
        feedback=kind.feedback or rules.feedback,
        rating_min=rules.rating_min,
        rating_max=rules.rating_max,
        id_types=kind.id_types,
        timestamp_min=_timestamp(rules.timestamp_min),
        max_field_bytes=rules.max_field_bytes,
        limits=rules.limits(),
    )
    log.info("%s: reading and validating %.0f MB", path, st.st_size / 2**20)
    t0 = time.perf_counter()
    try:
        staged = stage_ratings(path, valid, quarantine, opts)
    except FileChanged as e:
        log.warning("%s", e)
        return StagedFile(str(path), "", skipped="changed while it was read")
    except RatingsFileError as e:
        # a link, FIFO or unreadable file has no content to hash: park it by what identifies it on disk
        digest = (
            _hash_of(path)
            or hashlib.sha256(
                f"unreadable:{path.absolute()}:{st.st_ino}:{st.st_mtime_ns}:{st.st_size}".encode()
            ).hexdigest()
        )
        park(warehouse, run_id, path, digest, str(e))
        known.parked[digest] = str(e)
        known.remember(path, st, digest)
        log.warning("%s: refused and parked until its bytes change: %s", path, e)
        return StagedFile(str(path), digest, refused=str(e))
    why = known.status(staged.file_hash)
    if why is not None:  # the same bytes under another name or date: nothing new
        valid.unlink(missing_ok=True)
        quarantine.unlink(missing_ok=True)
        known.remember(path, st, staged.file_hash)
        log.info("%s: %s; skipped", path, why)
        return StagedFile(str(path), staged.file_hash, skipped=why)
    problem = None
    if kind.feedback is not None and staged.feedback != kind.feedback:
        problem = (
            f"holds {staged.feedback} feedback, but this warehouse holds {kind.feedback} feedback",
            f"Use --feedback {kind.feedback} (or another warehouse)",
        )
    elif staged.rows_read and staged.rows_quarantined / staged.rows_read > rules.max_bad_fraction:
        reasons = pl.read_parquet(quarantine, glob=False).group_by("reason").len().sort("len", descending=True)
        top = "; ".join(f"{r} ({n} rows)" for r, n in reasons.head(3).iter_rows())
        problem = (
            f"{staged.rows_quarantined} of {staged.rows_read} rows failed validation, e.g. {top}",
            "Nothing was loaded from it. Check the delimiter (--delimiter), the column mapping (--columns) "
            "and the rating range (--rating-min/--rating-max)" + _scale_hint(reasons, valid),
        )
    known.remember(path, st, staged.file_hash)
    if problem is not None:
        error = RatingsFileError(path, *problem)
        park(warehouse, run_id, path, staged.file_hash, str(error))
        known.parked[staged.file_hash] = str(error)
        valid.unlink(missing_ok=True)
        quarantine.unlink(missing_ok=True)
        log.warning("%s: refused and parked until its bytes change: %s", path, error)
        return StagedFile(str(path), staged.file_hash, refused=str(error))
    seconds = max(time.perf_counter() - t0, 1e-9)
    log.info(
        "%s: %d rows validated in %.1fs (%.0f rows/s)%s",
        path,
        staged.rows_read,
        seconds,
        staged.rows_read / seconds,
        "; timestamps were milliseconds, converted" if staged.timestamps == "milliseconds" else "",
    )
    for target in (valid, quarantine):
        if target.exists():
            durable.fsync_path(target)
    if not quarantine.exists():
        quarantine = None  # type: ignore[assignment]
    faults.point("ingest")
    return StagedFile(
        str(path),
        staged.file_hash,
        None,
        None,
        str(valid),
        str(quarantine) if quarantine else None,
        staged.rows_read,
        staged.rows_valid,
        staged.rows_quarantined,
        staged.feedback,
        staged.id_types,
    )


def _hash_of(path: Path) -> str:
    """The content hash of a refused file (to park it), read without following links; '' if unreadable."""
    from recmodel.io.files import Reader

    try:
        with Reader(path, Limits(max_file_bytes=1 << 62)) as reader:
            for _ in reader.raw_blocks():
                pass
            return reader.hash.hexdigest()
    except (RatingsFileError, OSError):
        return ""


def _stage_metadata(
    warehouse: str | Path, run_id: str, path: Path, name: str, frame: pl.DataFrame, bad: pl.DataFrame
) -> tuple[str, str | None]:
    folder = private_dir(run_dir(warehouse, run_id) / "staged")
    rows = str(durable.write_parquet(frame, folder / f"{name}.parquet"))
    if bad.height == 0:
        return rows, None
    log.warning("%s: %d rows quarantined, e.g. row %d: %s", path, bad.height, bad["row_number"][0], bad["reason"][0])
    digest = _hash_of(path)
    tagged = bad.with_columns(pl.lit(digest).alias("file_hash"), pl.lit(str(path.absolute())).alias("path"))
    return rows, str(
        durable.write_parquet(
            tagged.select("file_hash", "path", "row_number", "reason", "raw"), folder / f"{name}.quarantine.parquet"
        )
    )


def stage_items(
    warehouse: str | Path, run_id: str, path: str | Path, columns: str | None = None, id_type: IdType = "int"
) -> tuple[str, str | None]:
    """Item metadata (id, title, genres) read tonight, and its quarantined rows; upserted at publish."""
    frame, bad = read_items(path, parse_column_mapping(columns, ("item", "title", "genres")), id_type)
    log.info("%s: %d items with titles", path, frame.height)
    return _stage_metadata(warehouse, run_id, Path(path), "items", frame, bad)


def stage_users(
    warehouse: str | Path, run_id: str, path: str | Path, id_type: IdType = "int"
) -> tuple[str, str | None]:
    """User metadata read tonight (it replaces users_meta at publish: cold start is per night), and its
    quarantined rows."""
    frame, bad = read_users(path, id_type)
    log.info(
        "%s: metadata for %d users (%s)", path, frame.height, ", ".join(c for c in frame.columns if c != "user_id")
    )
    return _stage_metadata(warehouse, run_id, Path(path), "users", frame, bad)
