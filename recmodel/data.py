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

import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

ROLES = ("user", "item", "rating", "timestamp")
REQUIRED_ROLES = ("user", "item", "rating")
ALIASES = {
    "user": ("user_id", "userid", "user", "uid", "customer_id", "visitorid"),
    "item": ("item_id", "itemid", "movieid", "movie_id", "item", "iid", "product_id", "movie"),
    "rating": ("rating", "ratings", "score", "stars", "value"),
    "timestamp": ("timestamp", "ts", "time", "unix_timestamp", "rated_at"),
}
PARQUET_SUFFIXES = (".parquet", ".pq")
RATING_FILE_SUFFIXES = (".data", ".dat", ".csv", ".tsv", ".tab", ".txt", *PARQUET_SUFFIXES)
_SEP_PLACEHOLDER = "\x1f"  # polars takes one-byte separators; '::' is rewritten to this first
_RAW_MAX = 500

RATINGS_SCHEMA = pl.Schema(
    {"user_id": pl.Int64, "item_id": pl.Int64, "rating": pl.Float64, "timestamp": pl.Int64, "row_number": pl.Int64}
)
QUARANTINE_SCHEMA = pl.Schema({"row_number": pl.Int64, "reason": pl.String, "raw": pl.String})


class RatingsFileError(ValueError):
    """A rating file that cannot be read at all. The message names the file, the problem and the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str):
        self.path, self.problem, self.fix = str(path), problem, fix
        super().__init__(f"{path}: {problem}. {fix}")


@dataclass(frozen=True)
class SourceFormat:
    """How to read one file. ``columns`` maps a role to a column name (header files) or a 0-based position."""

    kind: str  # "delimited" or "parquet"
    separator: str = ","
    has_header: bool = True
    columns: dict[str, str | int] = field(default_factory=dict)


@dataclass
class ParsedFile:
    ratings: pl.DataFrame
    quarantine: pl.DataFrame
    rows_read: int
    duplicates: int


def parse_column_mapping(spec: str | None, roles: tuple[str, ...] = ROLES) -> dict[str, str | int]:
    """Parse ``"user=uid,item=movie,rating=stars,timestamp=ts"`` (names, or 0-based positions without a header)."""
    if not spec:
        return {}
    mapping: dict[str, str | int] = {}
    for part in spec.split(","):
        role, sep, col = part.partition("=")
        role, col = role.strip(), col.strip()
        if not sep or role not in roles or not col:
            raise ValueError(
                f"bad column mapping {part!r}: write role=column with role one of {', '.join(roles)}, "
                "e.g. 'user=uid,item=movie,rating=stars,timestamp=ts'"
            )
        mapping[role] = int(col) if col.isdigit() else col
    return mapping


def list_rating_files(source: str | Path) -> list[Path]:
    """A file, or every rating file directly inside a folder (sorted by name; hidden files skipped)."""
    path = Path(source)
    if not path.exists():
        raise RatingsFileError(path, "no such file or folder", "Check the --source path.")
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith(".") and _logical_name(p).endswith(RATING_FILE_SUFFIXES)
    )
    if not files:
        raise RatingsFileError(
            path,
            "folder holds no rating files",
            f"Put files ending in {', '.join(RATING_FILE_SUFFIXES)} (optionally .gz) in it.",
        )
    return files


def _logical_name(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise RatingsFileError(
            path, "is a folder, not a file", "Pass the folder itself as --source to ingest every file in it."
        ) from None
    except FileNotFoundError:
        raise RatingsFileError(path, "disappeared before it could be read", "Re-deliver the file and rerun.") from None
    except OSError as e:
        raise RatingsFileError(path, f"cannot be read ({e.strerror})", "Check the file's permissions.") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise RatingsFileError(path, f"is a damaged gzip file ({e})", "Re-deliver the file.") from None
    if not data.strip():
        raise RatingsFileError(path, "is empty", "Deliver a file with at least one rating row.")
    return data


def _split_first_line(data: bytes, separator: str) -> list[str]:
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip("\r\ufeff")
    return [f.strip().strip('"') for f in first.split(separator)]


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def detect_format(
    path: str | Path,
    data: bytes | None = None,
    *,
    separator: str | None = None,
    has_header: bool | None = None,
    columns: dict[str, str | int] | None = None,
) -> SourceFormat:
    """Work out how to read ``path``; explicit arguments win over what the name and first line suggest."""
    path = Path(path)
    name = _logical_name(path)
    columns = dict(columns or {})
    if name.endswith(PARQUET_SUFFIXES):
        return SourceFormat("parquet", columns=columns)
    if data is None:
        data = _read_bytes(path)
    if separator is None:
        if name == "u.data" or name.endswith(".data") or name.endswith((".tsv", ".tab")):
            separator = "\t"
        elif name.endswith(".dat"):
            separator = "::"
        else:
            first = data.split(b"\n", 1)[0]
            separator = next((s for s in ("::", "\t", ",", ";", "|") if s.encode() in first), ",")
    fields = _split_first_line(data, separator)
    if has_header is None:  # MovieLens .data/.dat files never have one; elsewhere a header has no numeric field
        movielens = name.endswith((".data", ".dat"))
        has_header = not movielens and not any(_looks_numeric(f) for f in fields if f)
    if not columns:
        if has_header:
            lowered = [f.lower() for f in fields]
            for role in ROLES:
                hit = next((a for a in ALIASES[role] if a in lowered), None)
                if hit is not None:
                    columns[role] = fields[lowered.index(hit)]
        else:  # MovieLens order: user, item, rating[, timestamp]
            columns = {"user": 0, "item": 1, "rating": 2}
            if len(fields) >= 4:
                columns["timestamp"] = 3
    missing = [r for r in REQUIRED_ROLES if r not in columns]
    if missing:
        raise RatingsFileError(
            path,
            f"cannot tell which column holds the {', '.join(missing)} (first line: {fields[:8]})",
            "Pass a mapping such as --columns user=uid,item=movie,rating=stars,timestamp=ts",
        )
    return SourceFormat("delimited", separator=separator, has_header=has_header, columns=columns)


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
    if _logical_name(path).endswith(PARQUET_SUFFIXES):
        raw = _read_parquet(path, SourceFormat("parquet", columns=dict(columns or {})))
    else:
        data = _read_bytes(path)
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
    header = _split_first_line(data, fmt.separator) if fmt.has_header else None
    n_cols = len(header) if header else len(_split_first_line(data, fmt.separator))
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
        frame = pl.read_parquet(path)
    except FileNotFoundError:
        raise RatingsFileError(path, "disappeared before it could be read", "Re-deliver the file and rerun.") from None
    except (pl.exceptions.PolarsError, OSError) as e:
        raise RatingsFileError(
            path, f"is not a readable Parquet file ({str(e).splitlines()[0]})", "Re-deliver the file."
        ) from None
    columns = dict(fmt.columns)
    lowered = {c.lower(): c for c in frame.columns}
    for role in ROLES:
        if role not in columns:
            hit = next((lowered[a] for a in ALIASES[role] if a in lowered), None)
            if hit is not None:
                columns[role] = hit
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


ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ITEM_ALIASES = {
    "item": ALIASES["item"],
    "title": ("title", "movie_title", "name", "item_name"),
    "genres": ("genres", "genre", "class", "category"),
}


def read_items(path: str | Path, columns: dict[str, str | int] | None = None) -> pl.DataFrame:
    """Item metadata as ``item_id, title, genres``: MovieLens ``u.item``, ``movies.dat``, ``movies.csv``,
    RecBole's ``items.tsv``, or any CSV/TSV/Parquet with a header (``columns`` maps item/title/genres)."""
    path = Path(path)
    name = _logical_name(path)
    if name.endswith(PARQUET_SUFFIXES):
        frame = pl.read_parquet(path)
    else:
        data = _read_bytes(path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:  # the older MovieLens files are latin-1
            text = data.decode("latin-1")
        if name == "u.item" or name.endswith(".item"):
            raw = pl.read_csv(io.StringIO(text), separator="|", has_header=False, quote_char=None, infer_schema=False)
            flags = raw.columns[5 : 5 + len(ML100K_GENRES)]
            genres = pl.concat_str(
                [pl.when(pl.col(c) == "1").then(pl.lit(g)) for c, g in zip(flags, ML100K_GENRES)],
                separator="|",
                ignore_nulls=True,
            )
            frame = raw.select(
                pl.col(raw.columns[0]).alias("item_id"), pl.col(raw.columns[1]).alias("title"), genres.alias("genres")
            )
        elif name.endswith(".dat"):
            lines = [line.split("::") for line in text.splitlines() if line.strip()]
            frame = pl.DataFrame(
                {
                    "item_id": [f[0] for f in lines],
                    "title": [f[1] if len(f) > 1 else None for f in lines],
                    "genres": [f[2] if len(f) > 2 else None for f in lines],
                },
                schema={"item_id": pl.String, "title": pl.String, "genres": pl.String},
            )
        else:
            sep = "\t" if name.endswith((".tsv", ".tab")) or "\t" in text.split("\n", 1)[0] else ","
            frame = pl.read_csv(io.StringIO(text), separator=sep, infer_schema=False, quote_char='"')
            frame = frame.rename({c: c.split(":")[0] for c in frame.columns})  # RecBole's name:type headers
    # positions (item=0,title=1) name the frame's columns; names stay names
    mapping = {
        role: frame.columns[col] if isinstance(col, int) and col < frame.width else str(col)
        for role, col in (columns or {}).items()
    }
    lowered = {c.lower(): c for c in frame.columns}
    for role, aliases in ITEM_ALIASES.items():
        if role not in mapping:
            hit = next((lowered[a] for a in aliases if a in lowered), None)
            if hit is not None:
                mapping[role] = hit
    if "item" not in mapping or "title" not in mapping:
        raise RatingsFileError(
            path,
            f"cannot find the item id and title columns (columns: {frame.columns})",
            "Pass --item-columns item=<id column>,title=<title column>[,genres=<column>]",
        )
    out = frame.select(
        pl.col(mapping["item"]).cast(pl.String).str.strip_chars().cast(pl.Int64, strict=False).alias("item_id"),
        pl.col(mapping["title"]).cast(pl.String).str.strip_chars().alias("title"),
        (
            pl.col(mapping["genres"]).cast(pl.String).str.replace_all(" ", "|")
            if "genres" in mapping
            else pl.lit(None, pl.String)
        ).alias("genres"),
    )
    bad = out.filter(pl.col("item_id").is_null()).height
    if bad:
        raise RatingsFileError(path, f"{bad} rows have no integer item id", "Check the file and --item-columns")
    return out.unique("item_id", keep="last", maintain_order=True)


USER_FILE_COLUMNS = ("user_id", "age", "gender", "occupation", "zip")  # MovieLens u.user


def read_users(path: str | Path) -> pl.DataFrame:
    """User metadata: ``user_id`` plus any feature columns. MovieLens ``u.user`` (``|``, no header; the
    zip code is reduced to its first digit, a region), or a CSV/TSV/Parquet whose header names the id."""
    path = Path(path)
    name = _logical_name(path)
    if name.endswith(PARQUET_SUFFIXES):
        frame = pl.read_parquet(path)
    else:
        data = _read_bytes(path)
        if name == "u.user" or name.endswith(".user"):
            frame = pl.read_csv(
                io.BytesIO(data),
                separator="|",
                has_header=False,
                new_columns=list(USER_FILE_COLUMNS),
                infer_schema=False,
                encoding="utf8-lossy",
            )
            frame = frame.with_columns(pl.col("age").cast(pl.Float64, strict=False), pl.col("zip").str.slice(0, 1))
        else:
            sep = "\t" if name.endswith((".tsv", ".tab")) else ","
            frame = pl.read_csv(io.BytesIO(data), separator=sep, encoding="utf8-lossy")
    lowered = {c.lower(): c for c in frame.columns}
    id_col = next((lowered[a] for a in ALIASES["user"] if a in lowered), None)
    if id_col is None:
        raise RatingsFileError(
            path,
            f"has no user id column (columns: {frame.columns})",
            "Name it user_id (or userId), or use MovieLens u.user layout",
        )
    frame = frame.rename({id_col: "user_id"}).with_columns(pl.col("user_id").cast(pl.Int64, strict=False))
    bad = frame.filter(pl.col("user_id").is_null()).height
    if bad:
        raise RatingsFileError(path, f"{bad} rows have no integer user id", "Fix or remove those rows")
    return frame.unique("user_id", keep="last", maintain_order=True)
