"""Reading and validating rating and interaction files with polars, one chunk at a time.

Every data row read ends in exactly one of two places (blank lines are not rows), so counts reconcile:

    rows_read = rows_valid + rows_quarantined

* valid rows go to a Parquet file (``user_id, item_id, rating, timestamp, row_number``), in file order; the
  latest rating of a pair (explicit feedback) or the sum of a pair's weights (implicit feedback) is taken
  later, when the night is planned;
* quarantined rows go to another (``row_number, reason, raw``): the 1-based data row (header excluded), a
  reason that names the column and quotes at most a short escaped sample, and the row's text (500 chars).

**Feedback.** Explicit files have a rating column; implicit files (clicks, plays, purchases) have none, or a
``weight`` column (counts, durations): then ``rating`` holds the weight (1 per event without one).

**Ids** are 64-bit integers (negative ones are refused) or strings, per column: decided by the warehouse if
it has published data, otherwise by the file (integers when at least half its ids are). ``196.0`` (a pandas
export) is the integer 196. **Timestamps** are unix seconds, ISO-8601 times or plain dates; a file whose
timestamps are all in milliseconds is converted (logged); a timestamp outside the plausible window
(``timestamp_min`` .. now + 1 day) is quarantined, so a typo can never supersede later ratings forever.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from .columns import rating_columns
from .errors import RatingsFileError, sample
from .files import PARQUET_SUFFIXES, Limits, Reader, logical_name
from .sniff import (
    ITEM_FROM_BLOCK,
    ITEM_LINE,
    Feedback,
    SourceFormat,
    detect_format,
    opens_quoted_fields,
    resolve_feedback,
    split_line,
)

log = logging.getLogger(__name__)
IdType = Literal["int", "str"]
TIMESTAMP_MIN = 788_918_400  # 1995-01-01: no recommender data set we know of is older
RAW_MAX = 500
_SEP_PLACEHOLDER = "\x1f"  # polars takes one-byte separators; '::' is rewritten to this first
_INT_ID = r"^\+?[0-9]+(\.0+)?$"
# "0042", "0001527665" (an ISBN): a code, not a number. As an integer it would lose its zeros and could become
# another id ("42"); a column that has one is read as text, and an integer warehouse quarantines it
_LEADING_ZERO = r"^\+?0[0-9]"
_DATE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
)
QUARANTINE_SCHEMA = pl.Schema({"row_number": pl.Int64, "reason": pl.String, "raw": pl.String})


@dataclass(frozen=True)
class ReadOptions:
    """How to read and validate one file (explicit values win over what the content suggests)."""

    separator: str | None = None
    has_header: bool | None = None
    columns: Mapping[str, str | int] = field(default_factory=dict)
    feedback: Feedback = "auto"
    rating_min: float = 0.5
    rating_max: float = 5.0
    id_types: Mapping[str, IdType] = field(default_factory=dict)  # the warehouse's, per role ("user", "item")
    timestamp_min: int = TIMESTAMP_MIN
    timestamp_max: int | None = None  # None: now + 1 day
    default_timestamp: int | None = None  # for files without timestamps; None: now
    max_field_bytes: int = 1 << 16
    limits: Limits = field(default_factory=Limits)

    def ts_max(self) -> int:
        return self.timestamp_max if self.timestamp_max is not None else int(time.time()) + 86_400


@dataclass
class StagedRatings:
    """A file read into Parquet (valid rows, quarantined rows) and what was learnt about it."""

    file_hash: str
    feedback: Literal["explicit", "implicit"]
    id_types: dict[str, IdType]
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    timestamps: str = "seconds"  # seconds | milliseconds (converted) | ingest time


@dataclass
class ParsedFile:
    """A file read into memory (``read_ratings``): one row per pair, and the quarantine."""

    ratings: pl.DataFrame
    quarantine: pl.DataFrame
    rows_read: int
    duplicates: int  # valid rows merged into another row of the same pair
    feedback: Literal["explicit", "implicit"] = "explicit"


def _date(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d")


def _text(col: str) -> pl.Expr:
    return pl.col(col).cast(pl.String).str.strip_chars().str.strip_chars("\"'")


def _number(col: str) -> pl.Expr:
    """A text column's numbers, a decimal comma read as a point (``4,5``: European exports, quoted in a CSV
    or in a semicolon-separated file); null where the text is no number."""
    text = _text(col)
    comma = text.str.contains(r"^[+-]?[0-9]+,[0-9]+$")
    return pl.when(comma).then(text.str.replace(",", ".", literal=True)).otherwise(text).cast(pl.Float64, strict=False)


def _shown(expr: pl.Expr) -> pl.Expr:
    """A short, escaped sample of a value for a reason (the value itself may be huge or secret)."""
    return expr.str.slice(0, 40).str.replace_all(r"[^\x20-\x7E]", "?")


class _FileRules:
    """Per-file decisions taken on the first chunk: id types and the timestamp unit."""

    def __init__(self, opts: ReadOptions, fmt: SourceFormat, path: Path):
        self.opts, self.fmt, self.path = opts, fmt, path
        self.id_types: dict[str, IdType] = dict(opts.id_types)
        self.milliseconds = False
        self.decided = False

    def decide(self, raw: pl.DataFrame) -> None:
        for role in ("user", "item"):
            if role in self.id_types:
                continue
            dtype = raw.schema[role]
            if dtype.is_integer():
                self.id_types[role] = "int"
                continue
            plain = raw.select(pl.col(role).cast(pl.Int64, strict=False).alias("v"))["v"]
            if (
                plain.null_count() == 0
                and (plain.min() or 0) >= 0  # type: ignore[operator]
                and not raw.select(_leading_zero(pl.col(role)).any()).item()
            ):
                self.id_types[role] = "int"  # every id a plain integer: no text to strip and match
                continue
            values = raw.select(_text(role).alias("v")).filter(pl.col("v").is_not_null() & (pl.col("v") != ""))
            ints = values.select(pl.col("v").str.contains(_INT_ID).mean()).item() if values.height else 1.0
            padded = values.filter(pl.col("v").str.contains(_LEADING_ZERO))["v"]
            self.id_types[role] = "int" if (ints or 0.0) >= 0.5 and padded.len() == 0 else "str"
            if padded.len():
                log.info(
                    "%s: %s ids such as '%s' start with a zero: read as text, so that no two ids become one",
                    self.path,
                    role,
                    sample(padded[0], 24),
                )
        if "timestamp" in raw.columns:
            numeric = raw.select(pl.col("timestamp").cast(pl.Float64, strict=False).alias("t"))["t"]
            if numeric.null_count():  # some value is not a plain number: read the stripped text
                numeric = raw.select(_text("timestamp").cast(pl.Float64, strict=False).alias("t")).drop_nulls()["t"]
            top = self.opts.ts_max()
            low, high = (float(numeric.min()), float(numeric.max())) if numeric.len() else (0.0, 0.0)  # type: ignore[arg-type]
            if numeric.len() and low > top and self.opts.timestamp_min <= high / 1000 <= top:
                self.milliseconds = True
                log.info("%s: timestamps are in milliseconds; converted to seconds", self.path)
        self.decided = True


_OUTSIDE = "is outside"  # "rating 10.0 is outside [0.5, 5.0]": the reason, and what out_of_range reads back


def out_of_range(reasons: pl.Series) -> pl.Series:
    """The rating each quarantine reason says is outside the range (``_validate``'s reason), null for every
    other reason."""
    return reasons.str.extract(rf"^rating (\S+) {_OUTSIDE} \[", 1).cast(pl.Float64, strict=False)


_PLAIN = "{}__plain"  # a text column cast as it is (``_with_plain_casts``)


def _with_plain_casts(raw: pl.DataFrame, dtypes: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """``raw`` with ``<col>__plain``: text column ``col`` cast to its dtype, for each column whose every value
    in the chunk casts as it is (the usual export: plain numbers, no padding, quotes or blanks). One cast then
    stands for the stripped text the checks would parse (``_text``: two string passes, and a pass to find what
    did not cast): a 10M-row CSV spent most of its 9.3 s staging there. The casts run once, side by side."""
    text = [c for c, dtype in dtypes.items() if c in raw.columns and raw.schema[c] == pl.String]
    if not text:
        return raw
    casts = raw.select(pl.col(c).cast(dtypes[c], strict=False).alias(_PLAIN.format(c)) for c in text)
    return raw.with_columns(s for s in casts.iter_columns() if s.null_count() == 0)


def _plain(raw: pl.DataFrame, col: str) -> pl.Expr | None:
    """Column ``col`` as ``_with_plain_casts`` cast it, or None where some value did not cast as it is."""
    name = _PLAIN.format(col)
    return pl.col(name) if name in raw.columns else None


def _leading_zero(plain: pl.Expr) -> pl.Expr:
    """``_LEADING_ZERO`` for text that casts to an integer as it is ("007"; not "0"): no pattern to match."""
    return plain.str.starts_with("0") & (plain.str.len_bytes() > 1)


def _id_checks(role: str, kind: IdType, raw: pl.DataFrame) -> tuple[pl.Expr, list[tuple[pl.Expr, pl.Expr]]]:
    name = f"{role}_id"
    text = _text(role)
    schema = raw.schema
    zeros = (
        f"{name} '{{}}' starts with a zero, which an integer id would drop (this warehouse's {role} ids are "
        "integers; a warehouse whose first file has such ids reads them as text)"
    )
    if kind == "int" and (fast := _plain(raw, role)) is not None:
        return fast, [
            (fast < 0, pl.format(f"{name} {{}} is negative", _shown(text))),
            (_leading_zero(pl.col(role)), pl.format(zeros, _shown(text))),
        ]
    plain = text.cast(pl.Int64, strict=False)
    # typed (Parquet), or text that is all plain integers (the usual export): one cast, no patterns to match
    if kind == "int" and (
        schema[role].is_integer() or not raw.select((plain.is_null() & text.is_not_null() & (text != "")).any()).item()
    ):
        value = pl.col(role).cast(pl.Int64, strict=False) if schema[role].is_integer() else plain
        missing = pl.col(role).is_null() if schema[role].is_integer() else text.is_null() | (text == "")
        return value, [
            (missing, pl.lit(f"missing {name}")),
            (value < 0, pl.format(f"{name} {{}} is negative", _shown(text))),
            (
                value.is_null(),
                pl.format(f"{name} '{{}}' does not fit a 64-bit integer", _shown(text)),
            ),
            *(
                []
                if schema[role].is_integer()
                else [(text.str.contains(_LEADING_ZERO), pl.format(zeros, _shown(text)))]
            ),
        ]
    checks: list[tuple[pl.Expr, pl.Expr]] = [(text.is_null() | (text == ""), pl.lit(f"missing {name}"))]
    if kind == "str":
        return text, checks
    if schema[role].is_integer():
        value = pl.col(role).cast(pl.Int64, strict=False)
    else:
        digits = text.str.replace(r"\.0+$", "").str.strip_prefix("+")
        value = pl.when(text.str.contains(_INT_ID)).then(digits.cast(pl.Int64, strict=False))
    checks += [
        (text.str.contains(r"^-[0-9]+(\.0+)?$") | (value < 0), pl.format(f"{name} {{}} is negative", _shown(text))),
        (text.str.contains(_LEADING_ZERO), pl.format(zeros, _shown(text))),
        (
            value.is_null(),
            pl.format(
                f"{name} '{{}}' is not an integer (this warehouse's {role} ids are 64-bit integers)", _shown(text)
            ),
        ),
    ]
    return value, checks


_SECONDS = "timestamp__seconds"  # a chunk's times with its dates parsed (``_dates_parsed``)


def _dates_parsed(raw: pl.DataFrame, text: pl.Expr, number: pl.Expr, seconds: pl.Expr) -> pl.DataFrame:
    """``raw`` with ``_SECONDS``: ``seconds`` where the time is a number, else what one of ``_DATE_FORMATS`` parses
    from its text. Each format is tried only on the rows no earlier one parsed, and first on a sample of them:
    a format that parses none of the sample goes last. (The formats are ISO-8601's variants: two that parse
    the same text give the same time, so their order does not change a result.) A Netflix-prize file, all
    dates: one format's pass over the chunk instead of twelve, and once per chunk, not once per check."""
    parts = raw.select(text.alias("t"), number.is_null().alias("todo"), seconds.alias("s"))
    t, secs = parts["t"], parts["s"]
    todo = parts["todo"] & t.is_not_null() & (t != "")

    def parse(values: pl.Series, f: str) -> pl.Series:
        return values.str.to_datetime(f, strict=False, time_zone="UTC").dt.epoch("s")

    rows = todo.arg_true()
    probe = t.gather(rows.head(256))
    hits = [f for f in _DATE_FORMATS if parse(probe, f).null_count() < probe.len()]
    for f in [*hits, *(f for f in _DATE_FORMATS if f not in hits)]:
        if rows.len() == 0:
            break
        whole = rows.len() == t.len()  # every row still to parse: no gather, no scatter
        parsed = parse(t if whole else t.gather(rows), f)
        secs = parsed if whole else secs.scatter(rows, parsed)
        todo = parsed.is_null() if whole else todo.scatter(rows, parsed.is_null())
        rows = todo.arg_true()
    return raw.with_columns(secs.alias(_SECONDS))


def _timestamp(rules: _FileRules, raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.Expr, list[tuple[pl.Expr, pl.Expr]]]:
    opts = rules.opts
    text = _text("timestamp")
    typed = raw.schema["timestamp"].is_numeric()  # Parquet: numbers already, no text to parse
    plain = None if typed else _plain(raw, "timestamp")
    number = pl.col("timestamp").cast(pl.Float64) if typed else text.cast(pl.Float64, strict=False)
    missing = pl.col("timestamp").is_null() if typed else text.is_null() | (text == "")
    if plain is not None:  # every value a number: none missing, no date to parse
        number, missing = plain, pl.lit(False)
    if rules.milliseconds:
        number = number / 1000
    seconds = number.floor().cast(pl.Int64, strict=False)
    # dates are parsed only in a chunk that has a timestamp which is not a number
    if not typed and plain is None and raw.select((number.is_null() & ~missing).any()).item():
        raw = _dates_parsed(raw, text, number, seconds)
        seconds = pl.col(_SECONDS)
    lo, hi = opts.timestamp_min, opts.ts_max()
    checks = [
        (missing, pl.lit("missing timestamp")),
        (seconds.is_null(), pl.format("timestamp '{}' is neither unix seconds nor an ISO-8601 date", _shown(text))),
        (
            (seconds < lo) | (seconds > hi),
            pl.format(
                f"timestamp {{}} is outside the plausible window [{_date(lo)}, {_date(hi)}] (set --timestamp-min for "
                "older data; milliseconds are converted only when all of a file's timestamps are)",
                _shown(text),
            ),
        ),
    ]
    return raw, seconds, checks


def _validate(raw: pl.DataFrame, rules: _FileRules) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(valid, quarantine)`` of one chunk; blank rows were dropped before."""
    opts, fmt = rules.opts, rules.fmt
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (pl.col("extra").is_not_null(), pl.lit("more fields than the first line has; check the delimiter")),
    ]
    values: dict[str, pl.Expr] = {}
    numbers: dict[str, pl.DataType] = {
        "rating" if fmt.feedback == "explicit" else "weight": pl.Float64(),
        "timestamp": pl.Float64(),
    }
    numbers.update({role: pl.Int64() for role in ("user", "item") if rules.id_types[role] == "int"})
    raw = _with_plain_casts(raw, numbers)
    for role in ("user", "item"):
        values[f"{role}_id"], more = _id_checks(role, rules.id_types[role], raw)
        checks += more
    if fmt.feedback == "explicit":
        typed = raw.schema["rating"].is_numeric()  # Parquet: numbers already, no text to parse
        plain = None if typed else _plain(raw, "rating")
        rating = pl.col("rating").cast(pl.Float64) if typed else _number("rating")
        missing = pl.col("rating").is_null() if typed else _text("rating").is_null() | (_text("rating") == "")
        if plain is not None:  # every value a number: none missing
            rating, missing = plain, pl.lit(False)
        checks += [
            (missing, pl.lit("missing rating")),
            (rating.is_null(), pl.format("rating '{}' is not a number", _shown(_text("rating")))),
            (~rating.is_finite(), pl.format("rating {} is not finite", _shown(_text("rating")))),
            (
                (rating < opts.rating_min) | (rating > opts.rating_max),
                pl.format(f"rating {{}} {_OUTSIDE} [{opts.rating_min}, {opts.rating_max}]", rating),
            ),
        ]
        values["rating"] = rating
    elif "weight" in raw.columns:
        weight, missing = _number("weight"), _text("weight").is_null() | (_text("weight") == "")
        if (plain := _plain(raw, "weight")) is not None:  # every value a number: none missing
            weight, missing = plain, pl.lit(False)
        checks += [
            (missing, pl.lit("missing weight")),
            (weight.is_null(), pl.format("weight '{}' is not a number", _shown(_text("weight")))),
            (
                ~weight.is_finite() | (weight <= 0),
                pl.format("weight {} is not a positive number", _shown(_text("weight"))),
            ),
        ]
        values["rating"] = weight
    else:
        values["rating"] = pl.lit(1.0)
    if "timestamp" in raw.columns:
        raw, values["timestamp"], more = _timestamp(rules, raw)
        checks += more
    else:
        values["timestamp"] = pl.lit(
            opts.default_timestamp if opts.default_timestamp is not None else int(time.time()), pl.Int64
        )
    # the conditions on every row (cheap); the reason texts (formatting a sample) only on the rows that fail one
    bad = pl.any_horizontal([cond.fill_null(False) for cond, _ in checks])
    # lazily: common subexpressions (the stripped text of a column, used by several checks) are computed once;
    # only the values are kept (not the chunk's text columns, which a filter would copy)
    parsed = raw.lazy().select(bad.alias("bad"), *[v.alias(k) for k, v in values.items()], "row_number").collect()
    failed = parsed["bad"]
    if failed.any():
        reason: Any = pl.when(checks[0][0]).then(checks[0][1])
        for cond, text in checks[1:]:
            reason = reason.when(cond).then(text)
        fields = [c for c in raw.columns if c[:1] == "c" and c[1:].isdigit()]  # a delimited line's (_parse_chunk)
        line = (
            pl.concat_str([pl.col(c).fill_null("") for c in fields], separator=fmt.separator).str.strip_chars_end(
                fmt.separator
            )
            if fields  # a Parquet row has no line: its fields, comma-separated, as the quarantine shows them
            else pl.concat_str([pl.col(r).cast(pl.String).fill_null("") for r in fmt.columns], separator=",")
        )
        quarantine = (
            raw.filter(failed)
            .select(
                "row_number",
                reason.otherwise(None).str.slice(0, 1000).alias("reason"),
                line.str.slice(0, RAW_MAX).fill_null("").alias("raw"),
            )
            .cast(QUARANTINE_SCHEMA)
        )
        parsed = parsed.filter(~failed)
    else:
        quarantine = pl.DataFrame(schema=QUARANTINE_SCHEMA)
    id_dtype = {"int": pl.Int64, "str": pl.String}
    valid = parsed.select(
        pl.col("user_id").cast(id_dtype[rules.id_types["user"]]),
        pl.col("item_id").cast(id_dtype[rules.id_types["item"]]),
        pl.col("rating").cast(pl.Float64),
        pl.col("timestamp").cast(pl.Int64),
        pl.col("row_number").cast(pl.Int64),
    )
    return valid, quarantine


def _check_fields(raw: pl.DataFrame, roles: list[str], path: Path, limit: int) -> None:
    for role in roles:
        if raw.schema[role] == pl.String:
            longest = raw.select(pl.col(role).str.len_bytes().max()).item()
            if longest is not None and longest > limit:
                raise RatingsFileError(
                    path,
                    f"has a {role} field longer than max_field_bytes ({limit:,} bytes)",
                    "Check the delimiter and the file, or raise --max-field-bytes if it is genuine",
                )


def _parse_chunk(
    data: bytes,
    fmt: SourceFormat,
    n_cols: int,
    positions: dict[str, int],
    first: bool,
    row_offset: int,
    path: Path,
    quoted: bool = False,
) -> pl.DataFrame:
    """Every role as a raw String column, plus ``row_number``, ``extra``, ``blank`` and the line's fields
    (``c0``, ``c1``, ...: a quarantined row's text is made from them, for those rows only, in ``_validate``).

    ``quoted``: honour CSV quotes (``sniff.opens_quoted_fields``). A chunk whose quotes polars cannot parse
    (a stray ``"``) is read again a line at a time, quotes honoured within the line (``_quoted_lines``): the
    stray quote costs its own line (quarantined with its reason), not the chunk or the file.
    """
    separator = fmt.separator
    if len(separator.encode()) != 1:
        data = data.replace(separator.encode(), _SEP_PLACEHOLDER.encode())
        separator = _SEP_PLACEHOLDER
    schema = {f"c{i}": pl.String for i in range(n_cols + 1)}  # one spare column catches extra fields
    skip = 1 if (first and fmt.has_header) else 0

    def read(quote_char: str | None) -> pl.DataFrame:
        return pl.read_csv(
            io.BytesIO(data),
            has_header=False,
            skip_rows=skip,
            separator=separator,
            schema=schema,
            missing_columns="insert",
            truncate_ragged_lines=True,
            encoding="utf8-lossy",
            quote_char=quote_char,
            raise_if_empty=False,
            comment_prefix=None,
        )

    try:
        try:
            frame = read('"' if quoted else None)
        except pl.exceptions.PolarsError as e:
            if not quoted:
                raise
            log.warning(
                "%s: rows after data row %d have quotes that do not pair up (%s); this part is read a line at a time",
                path,
                row_offset,
                sample(str(e).splitlines()[0], 80),
            )
            frame = _quoted_lines(data, separator, schema, skip)
    except pl.exceptions.PolarsError as e:
        raise RatingsFileError(
            path,
            f"is not a readable delimited file ({sample(str(e).splitlines()[0], 80)})",
            "Check the delimiter (--delimiter)",
        ) from None
    out = frame.select(
        *[pl.col(f"c{pos}").alias(role) for role, pos in positions.items()],
        pl.col(f"c{n_cols}").alias("extra"),
        *schema,
    ).with_columns(_blank_rows(frame))
    return out.with_row_index("row_number", offset=row_offset + 1).with_columns(pl.col("row_number").cast(pl.Int64))


def _blank_rows(frame: pl.DataFrame) -> pl.Series:
    """``blank``: the rows whose fields are all missing or white space. A row whose first field starts with a
    visible ASCII character is not blank; only the others (none, in the usual export) have every field
    stripped (five string passes per row were a quarter of a chunk's parse)."""
    first = pl.col(frame.columns[0])
    maybe = frame.select((first.is_null() | ~first.str.contains("^[!-~]")).alias("blank")).to_series()
    rows = maybe.arg_true()
    if rows.len() == 0:
        return maybe
    fields = [pl.col(c).is_null() | (pl.col(c).str.strip_chars() == "") for c in frame.columns]
    return maybe.scatter(rows, frame[rows].select(pl.all_horizontal(fields)).to_series())


def _quoted_lines(data: bytes, separator: str, schema: dict[str, Any], skip: int) -> pl.DataFrame:
    """One row per line, split by the ``csv`` module with quotes honoured inside the line only (a field left
    open ends with its line), shaped as ``_parse_chunk``'s polars read: missing fields null, the first field
    past the last column in the spare one. The slow path, for a chunk with unpaired quotes only."""
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    width = len(schema)
    columns: list[list[str | None]] = [[] for _ in range(width)]
    for line in lines[skip:]:
        fields = next(csv.reader([line.removesuffix("\r")], delimiter=separator, quotechar='"'), [])
        for c in range(width):
            columns[c].append(fields[c] if c < len(fields) else None)
    return pl.DataFrame(dict(zip(schema, columns, strict=True)), schema=schema)


def _skip_leading_blank_lines(data: bytes) -> bytes:
    start = 0
    while True:
        end = data.find(b"\n", start)
        line = data[start:] if end < 0 else data[start:end]
        if end < 0 or line.removeprefix(b"\xef\xbb\xbf").strip(b" \t\r"):
            return data[start:]
        start = end + 1


_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
_NOT_ASCII = bytes(range(128, 256))


class _Encoding:
    """A file's text encoding, decided at its first chunk that is not plain ASCII: UTF-8 when that chunk decodes
    as UTF-8, or mostly does (valid UTF-8 sequences hold at least half of its non-ASCII bytes; a stray byte
    reads as U+FFFD), else Latin-1 (Book-Crossing's ratings and the older MovieLens files), whose chunks are
    then re-encoded as UTF-8 before parsing. Read as UTF-8 with replacement characters, two ids that differ only
    in such a byte ("034545104\xe9", "034545104\xe8") became one."""

    def __init__(self, path: Path):
        self.path = path
        self.latin1: bool | None = None  # None: not decided (every chunk so far plain ASCII)

    def utf8(self, chunk: bytes) -> bytes:
        if self.latin1 is None and not chunk.isascii():
            try:
                chunk.decode("utf-8")
                self.latin1 = False
            except UnicodeDecodeError:  # Latin-1, unless UTF-8 with a few stray bytes (those read as U+FFFD)
                in_sequences = len(chunk) - len(_UTF8_SEQUENCE.sub(b"", chunk))
                not_ascii = len(chunk) - len(chunk.translate(None, _NOT_ASCII))
                self.latin1 = 2 * in_sequences < not_ascii  # valid UTF-8 sequences hold under half of them
                if self.latin1:
                    log.info("%s: not UTF-8; read as Latin-1", self.path)
        return chunk.decode("latin-1").encode("utf-8") if self.latin1 and not chunk.isascii() else chunk


def _items_from_blocks(frame: pl.DataFrame, block: str | None) -> tuple[pl.DataFrame, str | None]:
    """An item-blocks chunk (``sniff.item_blocks``): each row's ``item`` is the id of the last ``<id>:`` line
    above it (``block`` for the rows before the chunk's first one: its block began in an earlier chunk). The
    id lines become blank rows: not read as ratings, but counted, so row numbers stay line numbers.
    Returns the frame and the block the chunk ends in."""
    opened = pl.col("c0").str.extract(ITEM_LINE, 1)
    is_id_line = opened.is_not_null() & pl.col("c1").is_null()
    item = pl.when(is_id_line).then(opened).otherwise(None).forward_fill().fill_null(pl.lit(block, pl.String))
    frame = frame.with_columns(item.alias("item"), (pl.col("blank") | is_id_line).alias("blank"))
    last = frame["item"].drop_nulls()
    return frame, (last[-1] if last.len() else block)


def _delimited_chunks(reader: Reader, path: Path, opts: ReadOptions) -> Iterator[tuple[pl.DataFrame, SourceFormat]]:
    fmt: SourceFormat | None = None
    n_cols, positions, offset = 0, {}, 0
    encoding = _Encoding(path)
    block: str | None = None  # item-blocks: the item whose block the last chunk ended in
    for chunk in reader.line_chunks(quoted=opens_quoted_fields):
        chunk = encoding.utf8(chunk)
        first = fmt is None
        if first:
            chunk = _skip_leading_blank_lines(chunk)
            if not chunk.strip():
                continue
            fmt = detect_format(
                path,
                chunk,
                separator=opts.separator,
                has_header=opts.has_header,
                columns=dict(opts.columns),
                feedback=opts.feedback,
            )
            fields = split_line(chunk.split(b"\n", 1)[0], fmt.separator)
            header = fields if fmt.has_header else None
            for role, col in fmt.columns.items():
                if col == ITEM_FROM_BLOCK:
                    continue  # made from the block's id line (_items_from_blocks)
                if isinstance(col, int):
                    positions[role] = col
                elif header is not None and col in header:
                    positions[role] = header.index(col)
                else:
                    raise RatingsFileError(
                        path,
                        f"has no column {sample(str(col))!r} for the {role} (columns: "
                        f"{[sample(f, 24) for f in (header or [])[:12]]})",
                        "Fix --columns so each role names one of the file's columns",
                    )
            if fmt.feedback == "implicit":
                positions.pop("rating", None)
            n_cols = max(len(fields), max(positions.values()) + 1)
        assert fmt is not None
        frame = _parse_chunk(chunk, fmt, n_cols, positions, first, offset, path, reader.quoted)
        if fmt.kind == "item-blocks":
            frame, block = _items_from_blocks(frame, block)
        offset += frame.height
        yield frame, fmt
    if fmt is None:
        raise RatingsFileError(path, "is empty", "Deliver a file with at least one rating row")


def _parquet_chunks(path: Path, reader: Reader, opts: ReadOptions) -> Iterator[tuple[pl.DataFrame, SourceFormat]]:
    for _ in reader.raw_blocks():  # hashed from the bytes on disk; parsed from the same descriptor below
        pass
    try:
        parquet = pq.ParquetFile(os.fdopen(os.dup(reader.fd), "rb"))
    except (pa.ArrowException, OSError) as e:
        raise RatingsFileError(
            path, f"is not a readable Parquet file ({sample(str(e).splitlines()[0], 80)})", "Re-deliver the file"
        ) from None
    names = parquet.schema_arrow.names
    columns = rating_columns(names, dict(opts.columns), path)
    bad = [r for r in ("user", "item") if r not in columns] + [
        f"{r}={sample(str(c))!r}" for r, c in columns.items() if not (isinstance(c, str) and c in names)
    ]
    if bad:
        raise RatingsFileError(
            path,
            f"cannot find the columns for {', '.join(bad)} (columns: {[sample(n, 24) for n in names[:12]]})",
            "Pass a mapping such as --columns user=uid,item=movie,rating=stars,timestamp=ts",
        )
    feedback = resolve_feedback(path, columns, opts.feedback)
    if feedback == "implicit":
        columns.pop("rating", None)
    fmt = SourceFormat("parquet", columns=columns, feedback=feedback)
    offset = 0
    try:
        for batch in parquet.iter_batches(batch_size=1 << 20, columns=[str(c) for c in columns.values()]):
            frame = pl.from_arrow(batch)
            assert isinstance(frame, pl.DataFrame)
            out = (  # no "raw" column: a quarantined row's text is made from its fields (_validate)
                frame.select(
                    *[pl.col(str(col)).alias(role) for role, col in columns.items()],
                    pl.lit(None, pl.String).alias("extra"),
                    pl.lit(False).alias("blank"),
                )
                .with_row_index("row_number", offset=offset + 1)
                .with_columns(pl.col("row_number").cast(pl.Int64))
            )
            offset += out.height
            yield out, fmt
    except (pa.ArrowException, OSError) as e:
        raise RatingsFileError(
            path, f"is not a readable Parquet file ({sample(str(e).splitlines()[0], 80)})", "Re-deliver the file"
        ) from None
    if offset == 0:
        raise RatingsFileError(path, "has no rows", "Deliver a file with at least one rating row")


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """The staged columns worth a Parquet dictionary: the rating (a few distinct values) and string ids
    (each repeated once per rating). Integer ids, times and row numbers are mostly distinct: building a
    dictionary for them and then dropping it was half of the write (10M rows: 1.07 -> 0.54 s, and the
    file 154 -> 132 MB)."""
    strings = (pa.types.is_string, pa.types.is_large_string, getattr(pa.types, "is_string_view", lambda _: False))
    return [f.name for f in schema if f.name == "rating" or any(test(f.type) for test in strings)]


def stage_ratings(
    path: str | Path, valid_out: str | Path, quarantine_out: str | Path, opts: ReadOptions | None = None
) -> StagedRatings:
    """Read, validate and write one file: valid rows to ``valid_out``, quarantined rows to ``quarantine_out``
    (Parquet). Raises ``RatingsFileError`` when the file as a whole cannot be read (nothing is kept then)."""
    path, opts = Path(path), opts or ReadOptions()
    writers: dict[str, pq.ParquetWriter] = {}
    rules: _FileRules | None = None
    counts = [0, 0, 0]  # read, valid, quarantined
    fmt: SourceFormat | None = None

    def write(valid: pl.DataFrame, quarantine: pl.DataFrame) -> None:
        for name, frame, target in (("valid", valid, valid_out), ("quarantine", quarantine, quarantine_out)):
            table = frame.to_arrow()
            if name not in writers:
                dictionary = _dictionary_columns(table.schema) if name == "valid" else True
                writers[name] = pq.ParquetWriter(str(target), table.schema, use_dictionary=dictionary)
            writers[name].write_table(table)

    try:
        with Reader(path, opts.limits) as reader:
            chunks = (
                _parquet_chunks(path, reader, opts)
                if logical_name(path).endswith(PARQUET_SUFFIXES)
                else _delimited_chunks(reader, path, opts)
            )
            # a chunk is written on a second thread while the next one is read and validated (the write was
            # half of the time, on one core); at most two chunks wait, in order, on the one writer thread
            pending: deque[Future[None]] = deque()
            with ThreadPoolExecutor(1, thread_name_prefix="collabflow-stage-writer") as writer_thread:
                for raw, fmt in chunks:
                    raw = raw.filter(~pl.col("blank"))
                    if raw.height == 0:
                        continue
                    if rules is None:
                        rules = _FileRules(opts, fmt, path)
                        rules.decide(raw)
                    _check_fields(raw, [r for r in fmt.columns if r in raw.columns], path, opts.max_field_bytes)
                    valid, quarantine = _validate(raw, rules)
                    while len(pending) >= 2:
                        pending.popleft().result()  # a failed write raises here
                    pending.append(writer_thread.submit(write, valid, quarantine))
                    counts[0] += raw.height
                    counts[1] += valid.height
                    counts[2] += quarantine.height
                while pending:
                    pending.popleft().result()
            digest = reader.finish()
    except BaseException:
        for writer in writers.values():
            writer.close()
        for target in (valid_out, quarantine_out):
            Path(target).unlink(missing_ok=True)
        raise
    for writer in writers.values():
        writer.close()
    if rules is None or fmt is None:
        raise RatingsFileError(path, "is empty", "Deliver a file with at least one rating row")
    if "valid" not in writers:
        pl.DataFrame(
            schema={
                "user_id": pl.Int64,
                "item_id": pl.Int64,
                "rating": pl.Float64,
                "timestamp": pl.Int64,
                "row_number": pl.Int64,
            }
        ).write_parquet(valid_out)
    timestamps = ("milliseconds" if rules.milliseconds else "seconds") if "timestamp" in fmt.columns else "ingest time"
    return StagedRatings(digest, fmt.feedback, rules.id_types, counts[0], counts[1], counts[2], timestamps)


def latest_per_pair(valid: pl.DataFrame, feedback: str) -> pl.DataFrame:
    """One row per (user, item): the latest rating (ties: the later row), or the summed weights (implicit)."""
    if feedback == "implicit":
        return (
            valid.group_by("user_id", "item_id", maintain_order=True)
            .agg(pl.col("rating").sum(), pl.col("timestamp").max(), pl.col("row_number").min())
            .sort("row_number")
        )
    return (
        valid.sort(["user_id", "item_id", "timestamp", "row_number"])
        .unique(subset=["user_id", "item_id"], keep="last", maintain_order=True)
        .sort("row_number")
    )


def read_ratings(
    path: str | Path,
    *,
    separator: str | None = None,
    has_header: bool | None = None,
    columns: Mapping[str, str | int] | None = None,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    default_timestamp: int | None = None,
    feedback: Feedback = "auto",
    timestamp_min: int = TIMESTAMP_MIN,
) -> ParsedFile:
    """Read one whole file into memory (evaluation, benchmarks): ``stage_ratings`` then one row per pair."""
    opts = ReadOptions(
        separator=separator,
        has_header=has_header,
        columns=dict(columns or {}),
        feedback=feedback,
        rating_min=rating_min,
        rating_max=rating_max,
        default_timestamp=default_timestamp,
        timestamp_min=timestamp_min,
    )
    with tempfile.TemporaryDirectory(prefix="collabflow-read-") as tmp:
        staged = stage_ratings(path, Path(tmp) / "valid.parquet", Path(tmp) / "quarantine.parquet", opts)
        valid = pl.read_parquet(Path(tmp) / "valid.parquet")
        quarantine = (
            pl.read_parquet(Path(tmp) / "quarantine.parquet")
            if (Path(tmp) / "quarantine.parquet").exists()
            else pl.DataFrame(schema=QUARANTINE_SCHEMA)
        )
    ratings = latest_per_pair(valid, staged.feedback)
    return ParsedFile(ratings, quarantine, staged.rows_read, valid.height - ratings.height, staged.feedback)
