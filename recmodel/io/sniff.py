"""How to read a delimited file: delimiter, header, which column plays which role, what kind of feedback.

Everything is decided from the content (the first lines), whatever the file is called: the delimiter is
the one of tab, ``::``, comma, semicolon and pipe that splits the first lines into the same number of
fields (more than one); a first line is a header when it names a known column, or when it alone has no
number in it. Explicit settings (``--delimiter``, ``--columns``) always win.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .columns import ALIASES, find_columns, rating_columns
from .errors import RatingsFileError, sample

Feedback = Literal["auto", "explicit", "implicit"]
DELIMITERS = ("\t", "::", ",", ";", "|")
SNIFF_LINES = 20


ITEM_FROM_BLOCK = "<item: the block's id line>"  # SourceFormat.columns["item"] of an "item-blocks" file


@dataclass(frozen=True)
class SourceFormat:
    """How to read one file. ``columns`` maps a role to a column name (header files) or a 0-based position."""

    kind: str  # "delimited", "item-blocks" (delimited, the item from each block's id line) or "parquet"
    separator: str = ","
    has_header: bool = True
    columns: dict[str, str | int] = field(default_factory=dict)
    feedback: Literal["explicit", "implicit"] = "explicit"


def split_line(line: bytes | str, separator: str) -> list[str]:
    text = line.decode("utf-8", errors="replace") if isinstance(line, bytes) else line
    return [f.strip().strip('"').strip("'") for f in text.strip("\r\ufeff").split(separator)]


def split_first_line(data: bytes, separator: str) -> list[str]:
    return split_line(data.split(b"\n", 1)[0], separator)


def looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def first_lines(data: bytes, n: int = SNIFF_LINES) -> list[bytes]:
    """The first ``n`` non-blank lines."""
    lines = []
    for line in data.split(b"\n", 4 * n)[: 4 * n]:
        if line.removeprefix(b"\xef\xbb\xbf").strip(b" \t\r"):
            lines.append(line.rstrip(b"\r"))
            if len(lines) == n:
                break
    return lines


def opens_quoted_fields(data: bytes) -> bool:
    """Whether the first lines quote a field as CSV does (``1,"Dune, Part Two",5``): a ``"`` that starts a
    line or follows a delimiter. Such a file is parsed with quotes honoured (a quoted field may hold the
    delimiter, line breaks and doubled quotes); any other ``"`` is plain text."""
    for line in first_lines(data):
        line = line.removeprefix(b"\xef\xbb\xbf")
        if line.startswith(b'"') or any(sep.encode() + b'"' in line for sep in DELIMITERS):
            return True
    return False


def sniff_delimiter(lines: list[bytes]) -> str | None:
    """The delimiter that splits the sample lines into the same number (> 1) of fields, most lines agreeing."""
    best: tuple[float, int, str] | None = None
    for rank, sep in enumerate(DELIMITERS):
        counts = [len(line.split(sep.encode())) for line in lines]
        if not counts or max(counts) < 2:
            continue
        typical = max(set(counts), key=counts.count)
        agreement = counts.count(typical) / len(counts)
        if typical < 2:
            continue
        key = (agreement, -rank, sep)
        if best is None or key > best:
            best = key
    if best is None and _space_separated(lines):
        return " "
    return best[2] if best else None


def _space_separated(lines: list[bytes]) -> bool:
    """The last resort (Epinions' ``ratings_data.txt``, FilmTrust, LibRec's files: ``1 2 4``): every sample
    line split by one space into the same number (> 1) of non-empty fields. Aligned columns (runs of spaces)
    and prose (lines of different lengths) are not."""
    fields = [line.strip(b"\r").removeprefix(b"\xef\xbb\xbf").split(b" ") for line in lines]
    return len({len(f) for f in fields}) == 1 and len(fields[0]) > 1 and all(all(f) for f in fields)


ITEM_LINE = r"^\s*([0-9]+):\s*$"  # "1:" opens an item's block (the Netflix prize's files); group 1: the id
ITEM_BLOCK = re.compile(ITEM_LINE.encode())


def item_blocks(lines: list[bytes]) -> bool:
    """The Netflix prize's layout: a line ``<item id>:`` opens each item's block of ``user,rating,date`` lines
    (``combined_data_*.txt``, ``training_set/mv_*.txt``)."""
    rows = [line for line in lines[1:] if not ITEM_BLOCK.match(line)]
    return bool(ITEM_BLOCK.match(lines[0])) and bool(rows) and all(len(line.split(b",")) == 3 for line in rows)


def is_header(lines: list[bytes], separator: str) -> bool:
    """A first line that names a known column, or that alone has no number in it."""
    first = split_line(lines[0], separator)
    if len(find_columns(first, {"user": ALIASES["user"], "item": ALIASES["item"]})) == 2:
        return True
    if any(looks_numeric(f) for f in first if f):
        return False
    rest = [split_line(line, separator) for line in lines[1:6]]
    return any(any(looks_numeric(f) for f in fields if f) for fields in rest)


def detect_format(
    path: str | Path,
    data: bytes,
    *,
    separator: str | None = None,
    has_header: bool | None = None,
    columns: dict[str, str | int] | None = None,
    feedback: Feedback = "auto",
) -> SourceFormat:
    """Work out how to read ``path`` from its first bytes; explicit arguments win over what the content says."""
    lines = first_lines(data)
    if not lines:
        raise RatingsFileError(path, "is empty", "Deliver a file with at least one rating row")
    if separator is None and has_header is None and not columns and feedback != "implicit" and item_blocks(lines):
        return SourceFormat(
            "item-blocks", ",", False, {"user": 0, "item": ITEM_FROM_BLOCK, "rating": 1, "timestamp": 2}
        )
    if separator is None:
        separator = sniff_delimiter(lines)
        if separator is None:
            raise RatingsFileError(
                path,
                f"has one field per line (first line starts {sample(lines[0])!r}): no tab, '::', comma, "
                "semicolon, pipe or single space separates user and item",
                "Pass --delimiter",
            )
    fields = split_line(lines[0], separator)
    if has_header is None:
        has_header = is_header(lines, separator) or any(isinstance(c, str) for c in (columns or {}).values())
    columns = dict(columns or {})
    if has_header:
        columns = rating_columns(fields, columns, path)
    elif not columns:  # MovieLens order: user, item, rating[, timestamp]; two fields: interactions
        columns = {"user": 0, "item": 1}
        if len(fields) >= 3 and feedback != "implicit":
            columns["rating"] = 2
        if len(fields) >= 4 and feedback != "implicit":
            columns["timestamp"] = 3
    missing = [r for r in ("user", "item") if r not in columns]
    if missing:
        shown = [sample(f, 24) for f in fields[:8]]
        raise RatingsFileError(
            path,
            f"cannot tell which column holds the {' and the '.join(missing)} (columns: {shown})",
            "Pass a mapping such as --columns user=uid,item=movie,rating=stars,timestamp=ts "
            "(or weight=plays for counts, or nothing but user and item for interactions)",
        )
    return SourceFormat("delimited", separator, has_header, columns, resolve_feedback(path, columns, feedback))


def resolve_feedback(
    path: str | Path, columns: dict[str, str | int], feedback: Feedback
) -> Literal["explicit", "implicit"]:
    """``auto``: explicit when a rating column is found or mapped and no weight is, implicit otherwise."""
    if feedback == "explicit":
        if "rating" not in columns:
            raise RatingsFileError(
                path,
                "has no rating column, but feedback=explicit",
                "Map one with --columns rating=<column>, or use --feedback implicit",
            )
        return "explicit"
    if feedback == "implicit" or "weight" in columns or "rating" not in columns:
        return "implicit"
    return "explicit"
