"""A corpus of malformed rating files, each with the outcome a user should get (issue 5).

Either the file loads with its bad rows quarantined (row number and reason), counts reconciling
exactly, or the run stops before touching anything with a message naming the file, the problem and
the fix.
"""

import gzip
import os

import polars as pl
import pytest

from recmodel.io import RatingsFileError, list_rating_files
from store.state import open_warehouse
from tests.store_helpers import ingest as ingest_file
from tests.store_helpers import state

T = b"874724710"  # a plausible timestamp (1997): the reader quarantines anything before 1995 or after tomorrow
GOOD = b"1\t10\t4\t" + T + b"\n2\t11\t3\t" + T + b"\n3\t12\t5\t" + T + b"\n"
ROW = b"4\t13\t3\t" + T + b"\n"  # a fourth valid row

# (case, file name, bytes, expected): expected is (loaded, quarantined, superseded) or an error substring.
# Since issue 12 the delimiter and the header are read from the content whatever the file is called, blank
# lines are not rows, and dates are timestamps: five cases that were refusals or quarantines before now load
# ("semicolons in u.data", "header in a MovieLens file", "blank lines", "a date as timestamp", "ratings.dat
# with commas"); "timestamp that is no time" keeps the quarantine of an unreadable timestamp.
CORPUS = [
    ("valid u.data", "u.data", GOOD, (3, 0, 0)),
    ("semicolons in u.data", "u.data", b"1;10;4;" + T + b"\n2;11;3;" + T + b"\n", (2, 0, 0)),
    ("one column only", "u.data", b"1\n2\n", "one field per line"),
    ("missing timestamp column", "u.data", b"1\t10\t4\n2\t11\t3\n", (2, 0, 0)),
    ("extra column everywhere", "u.data", b"1\t10\t4\t" + T + b"\tx\n2\t11\t3\t" + T + b"\ty\n", (2, 0, 0)),
    ("extra field on one row", "u.data", GOOD + b"4\t13\t2\t" + T + b"\tzz\n", (3, 1, 0)),
    ("missing field on one row", "u.data", GOOD + b"4\t13\n", (3, 1, 0)),
    ("header in a MovieLens file", "u.data", b"user\titem\trating\tts\n" + GOOD, (3, 0, 0)),
    ("csv without header", "ratings.csv", b"1,10,4," + T + b"\n2,11,3," + T + b"\n", (2, 0, 0)),
    ("csv with unknown header", "ratings.csv", b"who,what,stars\n1,10,4\n", "--columns"),
    ("non-numeric rating", "u.data", GOOD + b"4\t13\tgood\t" + T + b"\n", (3, 1, 0)),
    ("NaN rating", "u.data", GOOD + b"4\t13\tnan\t" + T + b"\n", (3, 1, 0)),
    ("infinite rating", "u.data", GOOD + b"4\t13\tinf\t" + T + b"\n5\t13\t-inf\t" + T + b"\n", (3, 2, 0)),
    ("rating above range", "u.data", GOOD + b"4\t13\t6\t" + T + b"\n", (3, 1, 0)),
    ("rating below range", "u.data", GOOD + b"4\t13\t0\t" + T + b"\n5\t13\t-1\t" + T + b"\n", (3, 2, 0)),
    ("negative user id", "u.data", GOOD + b"-4\t13\t3\t" + T + b"\n", (3, 1, 0)),
    ("huge item id", "u.data", GOOD + b"4\t99999999999999999999\t3\t" + T + b"\n", (3, 1, 0)),
    ("empty user id", "u.data", GOOD + b"\t13\t3\t" + T + b"\n", (3, 1, 0)),
    ("mixed id types", "u.data", GOOD + b"u4\t13\t3\t" + T + b"\n", (3, 1, 0)),
    ("fractional id", "u.data", GOOD + b"4.5\t13\t3\t" + T + b"\n", (3, 1, 0)),
    ("non-UTF-8 bytes", "u.data", GOOD + b"4\xff\xfe\t13\t3\t" + T + b"\n", (3, 1, 0)),
    ("truncated last line", "u.data", GOOD + b"4\t13", (3, 1, 0)),
    ("last line without newline", "u.data", GOOD.rstrip(b"\n"), (3, 0, 0)),
    ("Windows line endings", "u.data", GOOD.replace(b"\n", b"\r\n"), (3, 0, 0)),
    ("blank lines", "u.data", GOOD + b"\n\n" + ROW, (4, 0, 0)),
    ("a date as timestamp", "u.data", GOOD + b"4\t13\t3\t2020-01-01\n", (4, 0, 0)),
    ("timestamp that is no time", "u.data", GOOD + b"4\t13\t3\tyesterday\n", (3, 1, 0)),
    ("millisecond timestamp among seconds", "u.data", GOOD + b"4\t13\t3\t1700000000000\n", (3, 1, 0)),
    ("duplicate pairs", "u.data", GOOD + b"1\t10\t2\t874724800\n1\t10\t5\t874724600\n", (3, 0, 2)),
    ("0-byte file", "u.data", b"", "is empty"),
    ("only whitespace", "u.data", b"\n \n", "is empty"),
    ("gzip file", "u.data.gz", gzip.compress(GOOD), (3, 0, 0)),
    ("damaged gzip", "u.data.gz", gzip.compress(GOOD)[:20], "damaged gzip"),
    (
        "UTF-8 BOM and quotes",
        "ratings.csv",
        b'\xef\xbb\xbf"userId","movieId","rating","timestamp"\n"1","10","4.5","' + T + b'"\n',
        (1, 0, 0),
    ),
    ("random bytes", "ratings.csv", bytes(range(256)) * 4, "ratings.csv"),
    ("very long line", "u.data", GOOD + b"4\t" + b"9" * 5000 + b"\t3\t" + T + b"\n", (3, 1, 0)),
    ("ratings.dat with commas", "ratings.dat", b"1,10,4," + T + b"\n2,11,3," + T + b"\n", (2, 0, 0)),
]


@pytest.fixture
def warehouse(tmp_path):
    open_warehouse(tmp_path / "wh")
    return tmp_path / "wh"


def q(warehouse, sql):
    return state(warehouse, sql)


@pytest.mark.parametrize("case,name,content,expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_malformed_file(warehouse, tmp_path, case, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    if isinstance(expected, str):
        with pytest.raises(RatingsFileError) as err:
            ingest_file(warehouse, path, rating_min=1, rating_max=5)
        message = str(err.value)
        assert str(path) in message and expected in message
        assert q(warehouse, "select count(*) from ratings union all select count(*) from ingested_files") == [
            (0,),
            (0,),
        ]
        return
    report = ingest_file(warehouse, path, rating_min=1, rating_max=5)
    assert (report.rows_loaded, report.rows_quarantined, report.rows_superseded) == expected
    assert report.rows_read == sum(expected)  # reconciles exactly
    stored = q(warehouse, "select rows_read, rows_loaded, rows_quarantined, rows_superseded from ingested_files")
    assert stored == [(sum(expected), *expected)]
    quarantined = q(warehouse, "select row_number, reason from quarantine")
    assert len(quarantined) == expected[1] and all(n >= 1 and reason for n, reason in quarantined)


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 34


def test_parquet_with_wrong_types_and_missing_columns(warehouse, tmp_path):
    ok = tmp_path / "ratings.parquet"
    pl.DataFrame({"user_id": [1, 2], "item_id": [3, 4], "rating": ["4", "five"]}).write_parquet(ok)
    report = ingest_file(warehouse, ok, rating_min=1, rating_max=5)
    assert (report.rows_loaded, report.rows_quarantined) == (1, 1)
    bad = tmp_path / "other.parquet"
    pl.DataFrame({"user_id": [1], "item_id": [3]}).write_parquet(bad)  # interactions, in a warehouse of ratings
    with pytest.raises(RatingsFileError, match="has no rating column, but feedback=explicit"):
        ingest_file(warehouse, bad)
    not_parquet = tmp_path / "fake.parquet"
    not_parquet.write_bytes(b"not parquet at all")
    with pytest.raises(RatingsFileError, match="not a readable Parquet"):
        ingest_file(warehouse, not_parquet)


def test_folders_and_files_that_vanish(warehouse, tmp_path):
    empty = tmp_path / "inbox"
    empty.mkdir()
    with pytest.raises(RatingsFileError, match="folder holds no rating files"):
        list_rating_files(empty)
    (empty / "u.data").write_bytes(GOOD)
    listed = list_rating_files(empty)
    os.remove(listed[0])  # delivered, listed, then gone before the read
    with pytest.raises(RatingsFileError, match="disappeared"):
        ingest_file(warehouse, listed[0])
    with pytest.raises(RatingsFileError, match="is a folder"):
        ingest_file(warehouse, empty)
