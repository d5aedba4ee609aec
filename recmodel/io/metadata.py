"""Item and user metadata files: titles and genres, sign-up features for cold start."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from .columns import ALIASES, find_columns
from .errors import RatingsFileError
from .files import PARQUET_SUFFIXES, logical_name, read_bytes

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
    name = logical_name(path)
    if name.endswith(PARQUET_SUFFIXES):
        frame = pl.read_parquet(path, glob=False)
    else:
        data = read_bytes(path)
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
    mapping = {role: str(col) for role, col in find_columns(frame.columns, ITEM_ALIASES, mapping).items()}
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
    name = logical_name(path)
    if name.endswith(PARQUET_SUFFIXES):
        frame = pl.read_parquet(path, glob=False)
    else:
        data = read_bytes(path)
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
    id_col = find_columns(frame.columns, {"user": ALIASES["user"]}).get("user")
    if id_col is None:
        raise RatingsFileError(
            path,
            f"has no user id column (columns: {frame.columns})",
            "Name it user_id (or userId), or use MovieLens u.user layout",
        )
    frame = frame.rename({str(id_col): "user_id"}).with_columns(pl.col("user_id").cast(pl.Int64, strict=False))
    bad = frame.filter(pl.col("user_id").is_null()).height
    if bad:
        raise RatingsFileError(path, f"{bad} rows have no integer user id", "Fix or remove those rows")
    return frame.unique("user_id", keep="last", maintain_order=True)
