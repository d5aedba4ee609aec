"""Reading and validating rating files with polars.

Every row read ends in exactly one of three places, so counts always reconcile:

    rows_read = len(ratings) + len(quarantine) + duplicates

* ``ratings``: valid rows, one per (user_id, item_id), the latest by timestamp (ties: the later row);
* ``quarantine``: rows that failed validation, with their 1-based data row number (header excluded),
  a reason and the raw text;
* ``duplicates``: valid rows superseded by a later rating of the same pair in the same file.

Ids are 64-bit integers (MovieLens and most exports use them); anything else is quarantined with a
reason. Timestamps are integer unix seconds; a file without a timestamp column gets ``default_timestamp``
(the ingest time), so a later file still supersedes an earlier one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .columns import ALIASES, REQUIRED_ROLES, find_columns
from .errors import RatingsFileError
from .files import PARQUET_SUFFIXES, logical_name, read_bytes
from .sniff import SourceFormat, detect_format, split_first_line

_SEP_PLACEHOLDER = "\x1f"  # polars takes one-byte separators; '::' is rewritten to this first
_RAW_MAX = 500

RATINGS_SCHEMA = pl.Schema(
    {"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Float64, "timestamp": pl.Int64, "row_number": pl.Int64}
)
QUARANTINE_SCHEMA = pl.Schema({"row_number": pl.Int64, "reason": pl.String, "raw": pl.String})


@dataclass
class ParsedFile:
    ratings: pl.DataFrame
    quarantine: pl.DataFrame
    rows_read: int
    duplicates: int


def read_ratings(
    path: str | Path,
    *,
    separator: str | None = None,
    has_header: bool | None = None,
    columns: dict[str, str | int] | None = None,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    default_timestamp: int = 0,
) -> ParsedFile:
    """Read one file, validate every row, keep the latest rating per pair. Never raises on bad rows;
    raises :class:`RatingsFileError` when the file as a whole cannot be read."""
    path = Path(path)
    if path.is_dir():
        raise RatingsFileError(
            path, "is a folder, not a file", "Pass the folder itself as --source to ingest every file in it."
        )
    if logical_name(path).endswith(PARQUET_SUFFIXES):
        raw = _read_parquet(path, SourceFormat("parquet", columns=dict(columns or {})))
    else:
        data = read_bytes(path)
        fmt = detect_format(path, data, separator=separator, has_header=has_header, columns=columns)
        raw = _read_delimited(path, data, fmt)
    return _validate(raw, rating_min=rating_min, rating_max=rating_max, default_timestamp=default_timestamp)


def _read_delimited(path: Path, data: bytes, fmt: SourceFormat) -> pl.DataFrame:
    """Every role as a raw column (any dtype), plus ``row_number``, ``raw`` and ``extra`` (text past the last
    column)."""
    separator = fmt.separator
    if len(separator.encode()) != 1:
        data = data.replace(separator.encode(), _SEP_PLACEHOLDER.encode())
        separator = _SEP_PLACEHOLDER
    header = split_first_line(data, fmt.separator) if fmt.has_header else None
    n_cols = len(header) if header else len(split_first_line(data, fmt.separator))
    positions: dict[str, int] = {}
    for role, col in fmt.columns.items():
        if isinstance(col, int):
            pos = col
        elif header is not None and col in header:
            pos = header.index(col)
        else:
            raise RatingsFileError(
                path,
                f"has no column {col!r} for the {role} (columns: {header})",
                "Fix --columns so each role names one of the file's columns.",
            )
        positions[role] = pos
    n_cols = max(n_cols, max(positions.values()) + 1)
    schema = {f"c{i}": pl.String for i in range(n_cols + 1)}  # one spare column catches extra fields
    try:
        frame = pl.read_csv(
            io.BytesIO(data),
            has_header=False,
            skip_rows=1 if fmt.has_header else 0,
            separator=separator,
            schema=schema,
            missing_columns="insert",
            truncate_ragged_lines=True,
            encoding="utf8-lossy",
            quote_char='"',
            raise_if_empty=False,
        )
    except pl.exceptions.PolarsError as e:
        raise RatingsFileError(
            path,
            f"is not a readable delimited file ({str(e).splitlines()[0]})",
            "Check the delimiter (--delimiter) and quoting.",
        ) from None
    raw_text = pl.concat_str([pl.col(c).fill_null("") for c in schema], separator=fmt.separator).str.strip_chars_end(
        fmt.separator
    )
    out = frame.select(
        *[pl.col(f"c{pos}").alias(role) for role, pos in positions.items()],
        pl.col(f"c{n_cols}").alias("extra"),
        pl.all_horizontal(pl.col(c).is_null() for c in schema).alias("blank"),
        raw_text.str.slice(0, _RAW_MAX).alias("raw"),
    )
    return out.with_row_index("row_number", offset=1).with_columns(pl.col("row_number").cast(pl.Int64))


def _read_parquet(path: Path, fmt: SourceFormat) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path, glob=False)
    except FileNotFoundError:
        raise RatingsFileError(path, "disappeared before it could be read", "Re-deliver the file and rerun.") from None
    except (pl.exceptions.PolarsError, OSError) as e:
        raise RatingsFileError(
            path, f"is not a readable Parquet file ({str(e).splitlines()[0]})", "Re-deliver the file."
        ) from None
    columns = find_columns(frame.columns, ALIASES, fmt.columns)
    bad = [r for r in REQUIRED_ROLES if r not in columns] + [
        f"{r}={c!r}" for r, c in columns.items() if not (isinstance(c, str) and c in frame.columns)
    ]
    if bad:
        raise RatingsFileError(
            path,
            f"cannot find the columns for {', '.join(bad)} (columns: {frame.columns})",
            "Pass a mapping such as --columns user=uid,item=movie,rating=stars,timestamp=ts",
        )
    if frame.height == 0:
        raise RatingsFileError(path, "has no rows", "Deliver a file with at least one rating row.")
    names = {role: str(col) for role, col in columns.items()}  # every one checked to be a column name above
    raw_text = pl.concat_str([pl.col(c).cast(pl.String).fill_null("") for c in names.values()], separator=",")
    return (
        frame.select(
            *[pl.col(col).alias(role) for role, col in names.items()],
            pl.lit(None, pl.String).alias("extra"),
            pl.lit(False).alias("blank"),
            raw_text.str.slice(0, _RAW_MAX).alias("raw"),
        )
        .with_row_index("row_number", offset=1)
        .with_columns(pl.col("row_number").cast(pl.Int64))
    )


def _as_int(frame: pl.DataFrame, role: str) -> pl.Expr:
    dtype = frame.schema[role]
    col = pl.col(role)
    if dtype.is_integer():
        return col.cast(pl.Int64, strict=False)
    if dtype.is_float():
        return pl.when(col.is_finite() & (col == col.floor())).then(col.cast(pl.Int64, strict=False))
    if dtype == pl.Datetime or dtype == pl.Date:
        return col.cast(pl.Datetime("ms")).dt.epoch("s")
    return col.cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False)


def _as_float(frame: pl.DataFrame, role: str) -> pl.Expr:
    col = pl.col(role)
    if frame.schema[role].is_numeric():
        return col.cast(pl.Float64)
    return col.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)


def _is_empty(role: str) -> pl.Expr:
    col = pl.col(role)
    return col.is_null() | (col.cast(pl.String).str.strip_chars() == "")


def _validate(raw: pl.DataFrame, *, rating_min: float, rating_max: float, default_timestamp: int) -> ParsedFile:
    has_ts = "timestamp" in raw.columns
    parsed = raw.with_columns(
        _as_int(raw, "user").alias("user_id"),
        _as_int(raw, "item").alias("item_id"),
        _as_float(raw, "rating").alias("rating_value"),
        (_as_int(raw, "timestamp") if has_ts else pl.lit(default_timestamp, pl.Int64)).alias("ts"),
    )
    rating = pl.col("rating_value")
    checks: list[tuple[pl.Expr, pl.Expr]] = [(pl.col("blank"), pl.lit("blank line"))]
    checks.append((pl.col("extra").is_not_null(), pl.lit("more fields than the first line has; check the delimiter")))
    for role, name in (("user", "user_id"), ("item", "item_id")):
        checks += [
            (_is_empty(role), pl.lit(f"missing {name}")),
            (pl.col(name).is_null(), pl.format(f"{name} '{{}}' is not a 64-bit integer", pl.col(role).cast(pl.String))),
            (pl.col(name) < 0, pl.format(f"{name} {{}} is negative", pl.col(name))),
        ]
    checks += [
        (_is_empty("rating"), pl.lit("missing rating")),
        (rating.is_null(), pl.format("rating '{}' is not a number", pl.col("rating").cast(pl.String))),
        (~rating.is_finite(), pl.format("rating {} is not finite", rating)),
        (
            (rating < rating_min) | (rating > rating_max),
            pl.format(f"rating {{}} is outside [{rating_min}, {rating_max}]", rating),
        ),
    ]
    if has_ts:
        checks += [
            (_is_empty("timestamp"), pl.lit("missing timestamp")),
            (
                pl.col("ts").is_null(),
                pl.format("timestamp '{}' is not integer unix seconds", pl.col("timestamp").cast(pl.String)),
            ),
        ]
    reason: Any = pl.when(checks[0][0]).then(checks[0][1])
    for cond, text in checks[1:]:
        reason = reason.when(cond).then(text)
    parsed = parsed.with_columns(reason.otherwise(None).alias("reason"))

    quarantine = parsed.filter(pl.col("reason").is_not_null()).select(
        "row_number", "reason", pl.col("raw").fill_null("")
    )
    valid = parsed.filter(pl.col("reason").is_null()).select(
        "user_id", "item_id", pl.col("rating_value").alias("rating"), pl.col("ts").alias("timestamp"), "row_number"
    )
    latest = (
        valid.sort(["user_id", "item_id", "timestamp", "row_number"])
        .unique(subset=["user_id", "item_id"], keep="last", maintain_order=True)
        .sort("row_number")
    )
    return ParsedFile(
        ratings=latest.cast(RATINGS_SCHEMA),
        quarantine=quarantine.cast(QUARANTINE_SCHEMA),
        rows_read=parsed.height,
        duplicates=valid.height - latest.height,
    )
