"""How to read a delimited file: delimiter, header, which column plays which role."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .columns import ALIASES, REQUIRED_ROLES, find_columns
from .errors import RatingsFileError
from .files import PARQUET_SUFFIXES, logical_name, read_bytes


@dataclass(frozen=True)
class SourceFormat:
    """How to read one file. ``columns`` maps a role to a column name (header files) or a 0-based position."""

    kind: str  # "delimited" or "parquet"
    separator: str = ","
    has_header: bool = True
    columns: dict[str, str | int] = field(default_factory=dict)


def split_first_line(data: bytes, separator: str) -> list[str]:
    first = data.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip("\r\ufeff")
    return [f.strip().strip('"') for f in first.split(separator)]


def looks_numeric(text: str) -> bool:
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
    name = logical_name(path)
    columns = dict(columns or {})
    if name.endswith(PARQUET_SUFFIXES):
        return SourceFormat("parquet", columns=columns)
    if data is None:
        data = read_bytes(path)
    if separator is None:
        if name == "u.data" or name.endswith(".data") or name.endswith((".tsv", ".tab")):
            separator = "\t"
        elif name.endswith(".dat"):
            separator = "::"
        else:
            first = data.split(b"\n", 1)[0]
            separator = next((s for s in ("::", "\t", ",", ";", "|") if s.encode() in first), ",")
    fields = split_first_line(data, separator)
    if has_header is None:  # MovieLens .data/.dat files never have one; elsewhere a header has no numeric field
        movielens = name.endswith((".data", ".dat"))
        has_header = not movielens and not any(looks_numeric(f) for f in fields if f)
    if has_header:
        columns = find_columns(fields, ALIASES, columns)
    elif not columns:  # MovieLens order: user, item, rating[, timestamp]
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
