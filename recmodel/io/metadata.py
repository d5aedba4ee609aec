"""Item and user metadata files: titles and genres, sign-up features for cold start.

Read like rating files (no links followed, regular files only, bounded) and validated row by row: a row
whose id is not a valid id, whose field count is off, or whose numeric feature is not a finite number is
quarantined with the file, row, column and reason; the other rows load.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import polars as pl

from .columns import ALIASES, find_columns, normalise
from .errors import RatingsFileError, sample
from .files import PARQUET_SUFFIXES, Limits, Reader, logical_name
from .ratings_file import QUARANTINE_SCHEMA, RAW_MAX, IdType, _shown
from .sniff import first_lines, sniff_delimiter

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
    "title": ("title", "movie_title", "name", "item_name", "product_name", "book_title"),
    "genres": ("genres", "genre", "class", "category", "categories", "tags"),
}
USER_FILE_COLUMNS = ("user_id", "age", "gender", "occupation", "zip")  # MovieLens u.user
USER_FILE_CATEGORIES = ("gender", "occupation", "zip")  # its categorical features (a zip region is no number)


def _read_text(path: Path, limits: Limits) -> str:
    with Reader(path, limits) as reader:
        data = b"".join(reader.line_chunks())  # every line checked against max_line_bytes
        reader.finish()
    if not data.strip():
        raise RatingsFileError(path, "is empty", "Deliver a file with at least one row")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:  # the older MovieLens files are latin-1
        return data.decode("latin-1")


def _read_table(
    path: Path, limits: Limits, separator: str | None = None, header: list[str] | None = None
) -> pl.DataFrame:
    """Every column as text, plus ``row_number``, ``raw`` and ``fields_off`` (the row's field count differs from
    the header's), from a CSV/TSV (any delimiter) or a Parquet file.

    Delimited files are parsed a line at a time by the csv module: quotes are honoured, but a stray quote can
    never swallow the lines after it, and a ragged row is a row with the wrong number of fields, not a crash.
    """
    if logical_name(path).endswith(PARQUET_SUFFIXES):
        with Reader(path, limits) as reader:
            for _ in reader.raw_blocks():
                pass
            reader.finish()
        try:
            frame = pl.read_parquet(path, glob=False)
        except (pl.exceptions.PolarsError, OSError) as e:
            raise RatingsFileError(
                path, f"is not a readable Parquet file ({sample(str(e), 80)})", "Re-deliver the file"
            ) from None
        return (
            frame.select(pl.all().cast(pl.String))
            .with_columns(
                pl.concat_str(pl.all().fill_null(""), separator=",").str.slice(0, RAW_MAX).alias("raw"),
                pl.lit(False).alias("fields_off"),
            )
            .with_row_index("row_number", offset=1)
            .with_columns(pl.col("row_number").cast(pl.Int64))
        )
    text = _read_text(path, limits)
    lines = text.splitlines()
    while lines and not lines[0].strip("\ufeff \t"):
        lines.pop(0)
    sep = separator or sniff_delimiter(first_lines(text.encode())) or ","
    one_char = sep if len(sep) == 1 else "\x1f"

    def fields(line: str) -> list[str]:
        if one_char != sep:
            line = line.replace(sep, one_char)
        return [f.strip() for f in next(csv.reader([line], delimiter=one_char), [])]

    if header is None:
        header = fields(lines[0].lstrip("\ufeff")) if lines else []
        lines = lines[1:]
    names = [normalise(h.split(":")[0]) or f"column_{i}" for i, h in enumerate(header)]  # RecBole's name:type
    names = [n if names.index(n) == i else f"{n}_{i}" for i, n in enumerate(names)]
    rows = [(n, line, fields(line)) for n, line in enumerate(lines, start=1) if line.strip()]
    width = len(names)
    columns = {name: [r[2][i] if i < len(r[2]) else None for r in rows] for i, name in enumerate(names)}
    return pl.DataFrame(
        {
            "row_number": [r[0] for r in rows],
            **columns,
            "raw": [r[1][:RAW_MAX] for r in rows],
            "fields_off": [len(r[2]) != width for r in rows],
        },
        schema={"row_number": pl.Int64, **{n: pl.String for n in names}, "raw": pl.String, "fields_off": pl.Boolean},
    )


def _id_column(
    frame: pl.DataFrame, col: str, name: str, id_type: IdType
) -> tuple[pl.Expr, list[tuple[pl.Expr, pl.Expr]]]:
    text = pl.col(col).cast(pl.String).str.strip_chars()
    checks = [(text.is_null() | (text == ""), pl.lit(f"missing {name}"))]
    if id_type == "str":
        return text, checks
    value = pl.when(text.str.contains(r"^\+?[0-9]+(\.0+)?$")).then(
        text.str.replace(r"\.0+$", "").str.strip_prefix("+").cast(pl.Int64, strict=False)
    )
    checks.append((value.is_null(), pl.format(f"{name} '{{}}' is not a non-negative 64-bit integer", _shown(text))))
    return value, checks


def _split(
    frame: pl.DataFrame, checks: list[tuple[pl.Expr, pl.Expr]], keep: list[pl.Expr]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    reason: Any = pl.when(checks[0][0]).then(checks[0][1])
    for cond, text in checks[1:]:
        reason = reason.when(cond).then(text)
    checked = frame.with_columns(reason.otherwise(None).alias("reason"))
    bad = checked.filter(pl.col("reason").is_not_null()).select("row_number", "reason", "raw").cast(QUARANTINE_SCHEMA)
    return checked.filter(pl.col("reason").is_null()).select(keep), bad


def read_items(
    path: str | Path, columns: dict[str, str | int] | None = None, id_type: IdType = "int", limits: Limits | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(items, quarantine)``: ``item_id, title, genres`` from MovieLens ``u.item``, ``movies.dat``,
    ``movies.csv``, RecBole's ``items.tsv``, or any CSV/TSV/Parquet with a header (``columns`` maps
    item/title/genres, by name or position); rows that fail are quarantined."""
    path, limits = Path(path), limits or Limits()
    name = logical_name(path)
    if name == "u.item" or name.endswith(".item"):
        frame = _read_table(
            path,
            limits,
            "|",
            ["movie_id", "title", "release", "video", "url", *[f"g{i}" for i in range(len(ML100K_GENRES))]],
        )
        genres = pl.concat_str(
            [pl.when(pl.col(f"g{i}") == "1").then(pl.lit(g)) for i, g in enumerate(ML100K_GENRES)],
            separator="|",
            ignore_nulls=True,
        )
        frame = frame.with_columns(genres.alias("genres"), pl.lit(False).alias("fields_off"))
    elif name == "movies.dat" or (name.endswith(".dat") and not name.startswith("ratings")):
        frame = _read_table(path, limits, "::", ["movie_id", "title", "genres"]).with_columns(
            pl.lit(False).alias("fields_off")
        )
    else:
        frame = _read_table(path, limits)
    mapping = {
        role: frame.columns[col] if isinstance(col, int) and col < frame.width else normalise(str(col))
        for role, col in (columns or {}).items()
    }
    mapping = {
        role: str(col)
        for role, col in find_columns(
            [c for c in frame.columns if c not in ("row_number", "raw", "fields_off")], ITEM_ALIASES, mapping
        ).items()
    }
    if "item" not in mapping or "title" not in mapping or mapping["item"] not in frame.columns:
        raise RatingsFileError(
            path,
            f"cannot find the item id and title columns (columns: {[sample(c, 24) for c in frame.columns[:12]]})",
            "Pass --item-columns item=<id column>,title=<title column>[,genres=<column>]",
        )
    item_id, checks = _id_column(frame, mapping["item"], "item_id", id_type)
    genres = (
        pl.col(mapping["genres"]).str.replace_all(r"[,;]\s*", "|") if "genres" in mapping else pl.lit(None, pl.String)
    )
    items, bad = _split(
        frame, checks, [item_id.alias("item_id"), pl.col(mapping["title"]).alias("title"), genres.alias("genres")]
    )
    return items.unique("item_id", keep="last", maintain_order=True), bad


def read_users(
    path: str | Path, id_type: IdType = "int", limits: Limits | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(users, quarantine)``: ``user_id`` plus feature columns, from MovieLens ``u.user`` (``|``, no header; the
    zip code reduced to its first digit, a region) or a CSV/TSV/Parquet whose header names the user id.
    A column is numeric when most of its values are numbers; a row whose numeric feature is not a finite
    number, or whose field count is off, is quarantined (the file, row and column in the reason)."""
    path, limits = Path(path), limits or Limits()
    name = logical_name(path)
    movielens = name == "u.user" or name.endswith(".user")
    frame = _read_table(path, limits, "|", list(USER_FILE_COLUMNS)) if movielens else _read_table(path, limits)
    if movielens:
        frame = frame.with_columns(pl.col("zip").str.slice(0, 1))
    features = [c for c in frame.columns if c not in ("row_number", "raw", "fields_off")]
    id_col = find_columns(features, {"user": ALIASES["user"]}).get("user")
    if id_col is None:
        raise RatingsFileError(
            path,
            f"has no user id column (columns: {[sample(c, 24) for c in features[:12]]})",
            "Name it user_id (or userId), or use MovieLens u.user layout",
        )
    features = [c for c in features if c != id_col]
    user_id, checks = _id_column(frame, str(id_col), "user_id", id_type)
    checks.insert(0, (pl.col("fields_off"), pl.lit("the row's field count differs from the header's")))
    keep = [user_id.alias("user_id")]
    well_formed = frame.filter(~pl.col("fields_off"))  # a ragged row's fields are shifted: they decide nothing
    for col in features:
        values = well_formed[col].drop_nulls().str.strip_chars()
        values = values.filter(values != "")
        numeric = values.cast(pl.Float64, strict=False)
        share = numeric.is_not_null().mean() if values.len() else 0.0
        if movielens:  # its layout says which features are numbers
            is_number = col not in USER_FILE_CATEGORIES
        else:  # a numeric feature (age, income, ...) is one whose values are (nearly all) numbers
            is_number = isinstance(share, float) and share >= 0.9
        if is_number:
            number = pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
            present = pl.col(col).is_not_null() & (pl.col(col).str.strip_chars() != "")
            checks.append(
                (
                    present & (number.is_null() | ~number.is_finite()),
                    pl.format(f"{col} '{{}}' is not a finite number", _shown(pl.col(col))),
                )
            )
            keep.append(number.alias(col))
        else:
            keep.append(pl.col(col))
    users, bad = _split(frame, checks, keep)
    return users.unique("user_id", keep="last", maintain_order=True), bad
