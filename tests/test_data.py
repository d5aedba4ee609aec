"""Reading and validating rating and interaction files (recmodel.io): formats as teams export them
(issue 12) and input that is odd or hostile (issue 13)."""

import gzip
import os

import polars as pl
import pytest

from recmodel.io import (
    Limits,
    RatingsFileError,
    ReadOptions,
    list_rating_files,
    parse_column_mapping,
    read_items,
    read_ratings,
    read_users,
)
from recmodel.io.ratings_file import stage_ratings

T = 874_724_710  # a plausible timestamp (1997): the reader quarantines anything before 1995 or after tomorrow


def reconciles(parsed):
    return parsed.rows_read == parsed.ratings.height + parsed.quarantine.height + parsed.duplicates


def test_reads_movielens_udata(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    parsed = read_ratings(path)
    assert parsed.ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [
        (196, 242, 3.0, 881250949),
        (186, 302, 3.0, 891717742),
        (22, 377, 1.0, 878887116),
    ]
    assert parsed.feedback == "explicit" and parsed.quarantine.height == 0 and reconciles(parsed)


def test_reads_ratings_dat_double_colon(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    assert read_ratings(path).ratings.select("user_id", "item_id", "rating").rows() == [(1, 1193, 5.0), (1, 661, 3.0)]


def test_reads_ratings_csv_with_header_and_half_stars(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\r\n1,296,5.0,1147880044\r\n1,306,3.5,1147868817\r\n")
    parsed = read_ratings(path)
    assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [(1, 296, 5.0), (1, 306, 3.5)]


@pytest.mark.parametrize(
    "name,sep", [("data.txt", ";"), ("u.data", ","), ("ratings.dat", "\t"), ("x.csv", "|"), ("export.tsv", "::")]
)
def test_the_delimiter_comes_from_the_content_not_the_name(tmp_path, name, sep):
    path = tmp_path / name
    path.write_text(f"user_id{sep}item_id{sep}rating\n\n1{sep}10{sep}4\n\n2{sep}11{sep}3\n")  # blank lines too
    parsed = read_ratings(path)
    assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [(1, 10, 4.0), (2, 11, 3.0)]
    assert parsed.quarantine.height == 0 and parsed.rows_read == 2  # blank lines are not rows


@pytest.mark.parametrize("header", ["userID\tartistID\tweight", "user_id\titem_id\tcount", "customer_id\tsku\tqty"])
def test_counts_make_implicit_feedback(tmp_path, header):
    path = tmp_path / "user_artists.dat"
    path.write_text(f"{header}\n2\t51\t13883\n2\t52\t11690\n3\t51\t5\n2\t51\t7\n")
    parsed = read_ratings(path)
    assert parsed.feedback == "implicit"
    assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [
        (2, 51, 13890.0),
        (2, 52, 11690.0),
        (3, 51, 5.0),
    ]  # events add up


def test_user_item_pairs_alone_are_interactions(tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text("user_id,item_id\nalice,B00X12\nbob,B00Y34\nalice,B00X12\ncarol,0042\n")
    parsed = read_ratings(path)
    assert parsed.feedback == "implicit" and parsed.ratings.schema["user_id"] == pl.String
    rows = parsed.ratings.select("user_id", "item_id", "rating").rows()
    assert rows == [("alice", "B00X12", 2.0), ("bob", "B00Y34", 1.0), ("carol", "0042", 1.0)]  # kept as given


def test_explicit_is_required_when_asked_for(tmp_path):
    path = tmp_path / "interactions.csv"
    path.write_text("user_id,item_id\n1,2\n")
    with pytest.raises(RatingsFileError, match="feedback=explicit"):
        read_ratings(path, feedback="explicit")


def test_ids_as_pandas_exports_them_and_string_ids(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(f"user_id,item_id,rating,timestamp\n196.0,242.0,3,{T}\n7,8,4,{T}\n")
    assert read_ratings(path).ratings.select("user_id", "item_id").rows() == [(196, 242), (7, 8)]
    path.write_text(f"user_id,item_id,rating,timestamp\nu-1,B0001,3,{T}\nu-2,B0002,4,{T}\n")
    parsed = read_ratings(path)
    assert parsed.ratings.schema["item_id"] == pl.String and parsed.ratings["item_id"].to_list() == ["B0001", "B0002"]


def test_ids_that_start_with_a_zero_are_codes_not_numbers(tmp_path):
    """An ISBN-like ASIN (0001527665) or a zero-padded article code is text: as an integer it would lose its
    zeros, and 0013 and 13 would become one item."""
    path = tmp_path / "ratings_Books.csv"
    items = ["0001527665", "1527665", "1400079276", "0002005018", "0013", "13"]
    path.write_text("".join(f"A{u},{item},5.0,{T}\n" for u, item in enumerate(items)))
    parsed = read_ratings(path)
    assert parsed.ratings.schema["item_id"] == pl.String and parsed.ratings["item_id"].to_list() == items
    assert parsed.ratings.schema["user_id"] == pl.String and parsed.quarantine.height == 0
    # a warehouse whose ids are integers already: such an id is quarantined, padded or not, never merged
    opts = ReadOptions(id_types={"user": "int", "item": "int"})
    for line in ("7\t007\t4", "7\t 0013 \t4"):
        path = tmp_path / "u.data"
        path.write_text(f"7\t13\t4\t{T}\n{line}\t{T}\n")
        stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
        assert pl.read_parquet(tmp_path / "v.parquet")["item_id"].to_list() == [13]
        (reason,) = pl.read_parquet(tmp_path / "q.parquet")["reason"]
        assert "starts with a zero" in reason and "integers" in reason


def test_dates_iso_times_and_milliseconds(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(
        "user_id,item_id,rating,timestamp\n1,1,4,2020-01-02\n2,1,4,2020-01-02T03:04:05Z\n"
        "3,1,4,2020-01-02 03:04:05\n4,1,4,1577934245\n"
    )
    assert read_ratings(path).ratings["timestamp"].to_list() == [1577923200, 1577934245, 1577934245, 1577934245]
    path.write_text("user_id,item_id,rating,timestamp\n1,1,4,1700000000000\n2,1,4,1700000001000\n")
    assert read_ratings(path).ratings["timestamp"].to_list() == [1700000000, 1700000001]  # all ms: converted


def test_dates_of_every_format_in_one_chunk_past_the_sample(tmp_path):
    """Date formats are tried first where a sample of the chunk's dates parses; the others still run, on what
    is left: a format that first appears after 300 plain dates is parsed as well."""
    path = tmp_path / "r.csv"
    late = ["2020-01-02T03:04:05Z", "2020/01/02", "2020-01-02 03:04", "1577934245", "not a date"]
    rows = [f"{u},1,4,2020-01-02" for u in range(300)] + [f"{300 + k},1,4,{v}" for k, v in enumerate(late)]
    path.write_text("user_id,item_id,rating,timestamp\n" + "\n".join(rows) + "\n")
    parsed = read_ratings(path)
    times = dict(parsed.ratings.select("user_id", "timestamp").rows())
    assert times[0] == times[299] == times[301] == 1577923200
    assert (times[300], times[302], times[303]) == (1577934245, 1577934240, 1577934245)
    assert parsed.quarantine["reason"].to_list() == [
        "timestamp 'not a date' is neither unix seconds nor an ISO-8601 date"
    ]


def test_implausible_timestamps_are_quarantined(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text(f"user_id,item_id,rating,timestamp\n1,1,4,{T}\n1,2,4,1700000000000\n1,3,4,100\n1,4,4,4102444800\n")
    parsed = read_ratings(path)
    assert parsed.ratings["item_id"].to_list() == [1]  # the millisecond one cannot supersede anything forever
    assert all("outside the plausible window" in r for r in parsed.quarantine["reason"])
    assert read_ratings(path, timestamp_min=0).quarantine.height == 2  # an older window lets 100 in


def test_the_one_other_id_column_is_the_item(tmp_path):
    """Headers as public datasets write them: the item is whatever the catalogue holds (anime, jokes)."""
    for header in ("user_id,anime_id,rating", "userId,jokeId,rating"):
        path = tmp_path / "ratings.csv"
        path.write_text(f"{header}\n1,20,4\n2,21,5\n")
        parsed = read_ratings(path, default_timestamp=T)
        assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [(1, 20, 4.0), (2, 21, 5.0)]
    frame = pl.DataFrame({"profile_id": [5, 6], "item_id": [7, 8], "rating": [3.0, 4.0]})
    frame.write_parquet(tmp_path / "r.parquet")  # the user too, and from Parquet
    assert read_ratings(tmp_path / "r.parquet", default_timestamp=T).ratings["user_id"].to_list() == [5, 6]
    for header in ("user_id,anime_id,studio_id,rating", "user_id,transaction_id,rating", "a_id,b_id,rating"):
        path.write_text(f"{header}\n1,20,4,4\n")  # two candidates, none, or both roles missing: never a guess
        with pytest.raises(RatingsFileError, match="cannot tell which column holds the (item|user)"):
            read_ratings(path, default_timestamp=T)


def test_space_separated_files_as_epinions_and_filmtrust_ship_them(tmp_path):
    path = tmp_path / "ratings.txt"
    path.write_text("1 1 2.0\r\n1 2 4.0\r\n22 3 3.5\r\n")
    parsed = read_ratings(path, default_timestamp=T)
    assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [(1, 1, 2.0), (1, 2, 4.0), (22, 3, 3.5)]
    path.write_text("1  1 2\n1  2 4\n")  # runs of spaces (aligned columns) are not guessed
    with pytest.raises(RatingsFileError, match="single space"):
        read_ratings(path)


def test_decimal_commas_as_european_exports_write_them(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(f"user;item;rating;timestamp\n1;2;4,5;{T}\n2;3;3;{T}\n3;4;4,5,1;{T}\n")
    parsed = read_ratings(path)
    assert parsed.ratings.select("user_id", "rating").rows() == [(1, 4.5), (2, 3.0)]
    assert parsed.quarantine["reason"].to_list() == ["rating '4,5,1' is not a number"]
    path.write_text('user,item,plays\n1,2,"2,5"\n2,3,4\n')  # quoted in a comma-separated file; weights too
    assert read_ratings(path, default_timestamp=T).ratings["rating"].to_list() == [2.5, 4.0]


def test_a_latin1_file_keeps_its_ids_apart(tmp_path):
    """Book-Crossing's ratings are Latin-1: ISBNs that differ only in an accented byte stay two items, and
    their text is the character the file meant (read as UTF-8, both were one replacement character)."""
    path = tmp_path / "BX-Book-Ratings.csv"
    rows = [
        '"User-ID";"ISBN";"Book-Rating"',
        '"1";"034545104X";"5"',
        '"2";"03454510\xe9";"4"',
        '"3";"03454510\xe8";"3"',
    ]
    path.write_bytes("\n".join(rows).encode("latin-1") + b"\n")
    parsed = read_ratings(path, default_timestamp=T)
    assert parsed.ratings["item_id"].to_list() == ["034545104X", "03454510\xe9", "03454510\xe8"]
    path.write_bytes("\n".join(rows).encode("utf-8") + b"\n")  # the same text in UTF-8 reads the same
    assert read_ratings(path, default_timestamp=T).ratings["item_id"].to_list() == parsed.ratings["item_id"].to_list()
    stray = "\n".join(rows).encode("utf-8") + b'\n"4";"0345\xff";"2"\n'  # UTF-8 with one stray byte: still UTF-8
    path.write_bytes(stray)
    items = read_ratings(path, default_timestamp=T).ratings["item_id"].to_list()
    assert items[:3] == parsed.ratings["item_id"].to_list() and items[3] == "0345\ufffd"


def test_the_netflix_prize_layout_item_blocks_across_chunks(tmp_path):
    """combined_data_*.txt: an ``<item>:`` line opens each item's block of ``user,rating,date`` lines. Blocks
    run across chunk boundaries; row numbers stay line numbers; the rows read are the ratings."""
    lines, expected = [], []
    for item in range(1, 301):  # 3.5 MB: four chunks of the reader's 1 MB blocks
        lines.append(f"{item}:")
        for k in range(500):
            user = (item * 7919 + k * 104729) % 50_000
            lines.append(f"{user},{1 + (user + item) % 5},2005-0{1 + k % 9}-1{k % 10}")
            expected.append((user, item, float(1 + (user + item) % 5), len(lines)))
    lines.insert(300, "oops,3,2005-01-01")  # inside item 2's block: quarantined with its line number
    expected = [(u, i, r, n + (n > 300)) for u, i, r, n in expected]
    path = tmp_path / "combined_data_1.txt"
    path.write_text("\n".join(lines) + "\n")
    opts = ReadOptions(limits=Limits(chunk_bytes=16 << 10))  # a chunk a block read: blocks cross their ends
    stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
    got = pl.read_parquet(tmp_path / "v.parquet").select("user_id", "item_id", "rating", "row_number")
    assert sorted(got.rows()) == sorted(expected)
    assert pl.read_parquet(tmp_path / "q.parquet").select("row_number", "raw").rows() == [(301, "oops,3,2005-01-01")]


def test_column_mapping_for_any_csv(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(f"stars,who,what,when,extra\n4,10,20,{T},x\n2,11,21,{T + 1},y\n")
    parsed = read_ratings(path, columns=parse_column_mapping("user=who,item=what,rating=stars,timestamp=when"))
    assert parsed.ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [
        (10, 20, 4.0, T),
        (11, 21, 2.0, T + 1),
    ]


def test_parquet_with_mapping_and_no_timestamp(tmp_path):
    path = tmp_path / "r.parquet"
    pl.DataFrame({"uid": [1, 2], "iid": [5, 6], "score": [4.0, 1.0]}).write_parquet(path)
    parsed = read_ratings(path, columns={"user": "uid", "item": "iid", "rating": "score"}, default_timestamp=T)
    assert parsed.ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [(1, 5, 4.0, T), (2, 6, 1.0, T)]


def test_typed_parquet_rows_are_checked_like_text_rows(tmp_path):
    """Parquet columns arrive typed (no text to parse): the same checks, reasons and raw fields in quarantine."""
    path = tmp_path / "typed.parquet"
    pl.DataFrame(
        {
            "user_id": [1, -2, None, 4, 5, 6],
            "item_id": [10, 11, 12, 13, 14, 15],
            "rating": [4.0, 3.0, 5.0, None, 9.0, 1.0],
            "timestamp": [T, T, T, T, T, None],
        }
    ).write_parquet(path)
    parsed = read_ratings(path, rating_min=1, rating_max=5)
    assert parsed.ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [(1, 10, 4.0, T)]
    reasons = dict(parsed.quarantine.select("row_number", "reason").iter_rows())
    assert reasons[2] == "user_id -2 is negative"
    assert reasons[3] == "missing user_id"
    assert reasons[4] == "missing rating"
    assert reasons[5].startswith("rating 9.0 is outside [1")
    assert reasons[6] == "missing timestamp"
    assert parsed.quarantine.filter(pl.col("row_number") == 2)["raw"].item() == f"-2,11,3.0,{T}"
    huge = tmp_path / "huge.parquet"
    ids = pl.Series([1, 2**63 + 7], dtype=pl.UInt64)
    pl.DataFrame({"user_id": ids, "item_id": [1, 2], "rating": [4.0, 4.0], "timestamp": [T, T]}).write_parquet(huge)
    parsed = read_ratings(huge, rating_min=1, rating_max=5)
    assert parsed.ratings.height == 1
    assert parsed.quarantine["reason"].item() == f"user_id '{2**63 + 7}' does not fit a 64-bit integer"


def test_bad_rows_are_quarantined_with_row_and_reason(tmp_path):
    path = tmp_path / "u.data"
    lines = [
        f"1\t1\t4\t{T}",  # 1 ok
        f"2\t1\tabc\t{T}",  # 2 rating not a number
        f"3\t1\t9\t{T}",  # 3 out of range
        f"x\t1\t3\t{T}",  # 4 user not an integer
        f"4\t-5\t3\t{T}",  # 5 negative item
        f"5\t1\tnan\t{T}",  # 6 NaN rating
        "6\t1\t3",  # 7 missing timestamp
        "",  # 8 blank line: not a row
        f"7\t1\t3\t{T}\t9",  # 9 extra field
        f"8\t2\t5\t{T}",  # 10 ok
        " \t  ",  # 11 white space only: not a row
        "\u3000\t\u00a0",  # 12 the same, in wider spaces
        f"9\t3\t4\t{T}",  # 13 ok
    ]
    path.write_text("\n".join(lines) + "\n")
    parsed = read_ratings(path, rating_min=1, rating_max=5)
    reasons = dict(parsed.quarantine.select("row_number", "reason").rows())
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 9}
    assert "not a number" in reasons[2] and "outside [1, 5]" in reasons[3]
    assert "user_id 'x'" in reasons[4] and "negative" in reasons[5] and "not finite" in reasons[6]
    assert reasons[7] == "missing timestamp" and "more fields" in reasons[9]
    shown = dict(parsed.quarantine.select("row_number", "raw").rows())  # the line as the file has it
    assert shown[4] == lines[3] and shown[7] == lines[6] and shown[9] == lines[8]
    assert parsed.ratings["row_number"].to_list() == [1, 10, 13]
    assert parsed.rows_read == 10 and reconciles(parsed)


def test_duplicate_pairs_keep_latest_timestamp(tmp_path):
    path = tmp_path / "u.data"
    path.write_text(f"1\t1\t2\t{T + 300}\n1\t1\t5\t{T + 100}\n1\t1\t4\t{T + 300}\n2\t2\t1\t{T + 5}\n")
    parsed = read_ratings(path)
    assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [(1, 1, 4.0), (2, 2, 1.0)]
    assert parsed.duplicates == 2 and reconciles(parsed)


def test_gzip_and_windows_line_endings(tmp_path):
    path = tmp_path / "u.data.gz"
    path.write_bytes(gzip.compress(f"1\t2\t3\t{T}\r\n5\t6\t4\t{T + 8}\r\n".encode()))
    assert read_ratings(path).ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [
        (1, 2, 3.0, T),
        (5, 6, 4.0, T + 8),
    ]


@pytest.mark.parametrize("content,problem", [(b"", "is empty"), (b"\n\n", "is empty")])
def test_empty_file_is_a_clear_error(tmp_path, content, problem):
    path = tmp_path / "u.data"
    path.write_bytes(content)
    with pytest.raises(RatingsFileError, match=problem) as err:
        read_ratings(path)
    assert str(path) in str(err.value)


def test_unknown_header_asks_for_a_mapping(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(RatingsFileError, match="--columns"):
        read_ratings(path)


def test_mapping_to_a_missing_column_names_it(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("u,i,r\n1,2,3\n")
    with pytest.raises(RatingsFileError, match="no column 'stars'"):
        read_ratings(path, columns=parse_column_mapping("user=u,item=i,rating=stars"))


def test_bad_mapping_spec():
    with pytest.raises(ValueError, match="role=column"):
        parse_column_mapping("person=u")
    assert parse_column_mapping("user=userID,item=artistID,weight=weight") == {
        "user": "userID",
        "item": "artistID",
        "weight": "weight",
    }


def test_folder_lists_rating_files_only(tmp_path):
    (tmp_path / "b.csv").write_text("x")
    (tmp_path / "a.data").write_text("x")
    (tmp_path / "notes.md").write_text("x")
    (tmp_path / ".hidden.csv").write_text("x")
    assert [p.name for p in list_rating_files(tmp_path)] == ["a.data", "b.csv"]
    with pytest.raises(RatingsFileError, match="is a folder"):
        read_ratings(tmp_path)
    with pytest.raises(RatingsFileError, match="no such file"):
        list_rating_files(tmp_path / "missing")


# ---------------------------------------------------------------- hostile input (issue 13)


@pytest.mark.parametrize("read", [read_ratings, read_users, read_items], ids=["ratings", "users", "items"])
def test_links_are_never_followed_and_nothing_leaks(tmp_path, read):
    secret = tmp_path / "credentials"
    secret.write_text("user_id,AWS_SECRET_ACCESS_KEY=abcd1234\n1,x\n")
    link = tmp_path / "ratings.csv"
    link.symlink_to(secret)
    with pytest.raises(RatingsFileError) as err:
        read(link)
    assert "symbolic link" in str(err.value) and "abcd1234" not in str(err.value)
    environ = tmp_path / "environ.csv"
    environ.symlink_to("/proc/self/environ")
    with pytest.raises(RatingsFileError, match="symbolic link"):
        read(environ)


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_fifos_devices_and_folders_are_refused(tmp_path, kind):
    path = tmp_path / "ratings.csv"
    if kind == "fifo":
        os.mkfifo(path)  # opening it must not hang
    elif kind == "device":
        path = tmp_path / "zero.csv"
        os.symlink("/dev/zero", path)  # and by its own name, /dev/zero:
        with pytest.raises(RatingsFileError, match="a device, not a regular file"):
            read_ratings("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(RatingsFileError, match="not a regular file|symbolic link|is a folder"):
        read_ratings(path)


def test_reasons_quote_a_short_escaped_sample_only(tmp_path):
    path = tmp_path / "u.data"
    huge = "9" * 20_000
    path.write_text(f"1\t1\t4\t{T}\n2\t1\t{huge}\x07\t{T}\n3\t1\t4\t{T}\n")
    parsed = read_ratings(path)
    reason = parsed.quarantine["reason"][0]
    assert len(reason) < 120 and "\x07" not in reason and "9" * 41 not in reason
    assert len(parsed.quarantine["raw"][0]) <= 500


def test_limits_refuse_a_file_before_it_fills_memory(tmp_path):
    bomb = tmp_path / "u.data.gz"
    bomb.write_bytes(gzip.compress(b"1\t1\t4\t" + b"7" * (5 << 20) + b"\n"))  # 5 MB line in a few KB
    opts = ReadOptions(limits=Limits(max_line_bytes=1 << 20))
    with pytest.raises(RatingsFileError, match="longer than max_line_bytes"):
        stage_ratings(bomb, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
    with pytest.raises(RatingsFileError, match="larger than max_file_bytes"):
        stage_ratings(
            bomb,
            tmp_path / "v.parquet",
            tmp_path / "q.parquet",
            ReadOptions(limits=Limits(max_line_bytes=8 << 20, max_file_bytes=1 << 20)),
        )
    wide = tmp_path / "wide.data"
    wide.write_text(f"1\t{'8' * 70_000}\t4\t{T}\n2\t2\t4\t{T}\n")
    with pytest.raises(RatingsFileError, match="longer than max_field_bytes"):
        stage_ratings(wide, tmp_path / "v.parquet", tmp_path / "q.parquet", ReadOptions(max_field_bytes=1 << 16))
    assert not (tmp_path / "v.parquet").exists()  # nothing kept from a refused file


@pytest.mark.parametrize("chunk_bytes", [1 << 10, 64 << 10])
def test_a_line_of_max_line_bytes_is_read_and_one_byte_more_refused(tmp_path, chunk_bytes):
    """The limit is on each line, wherever it sits among short ones and chunk boundaries."""
    limit = 300
    short = "".join(f"{u}\t{u % 7}\t4\t{T}\n" for u in range(2_000))
    for extra, refused in ((0, False), (1, True)):
        line = f"1\t2\t4\t{T}\t"
        path = tmp_path / "u.data"
        path.write_text(short + line + "x" * (limit - len(line) + extra) + "\n" + short)
        opts = ReadOptions(limits=Limits(chunk_bytes=chunk_bytes, max_line_bytes=limit))
        if refused:
            with pytest.raises(RatingsFileError, match="longer than max_line_bytes"):
                stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
        else:
            staged = stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
            assert (staged.rows_read, staged.rows_quarantined) == (4_001, 1)  # the long line: more fields


def test_a_path_is_a_path_never_a_pattern(tmp_path):
    (tmp_path / "ratings1.parquet").write_bytes(b"")
    pl.DataFrame({"user_id": [1], "item_id": [2], "rating": [4.0]}).write_parquet(tmp_path / "ratings1.parquet")
    bracket = tmp_path / "ratings[1].parquet"
    pl.DataFrame({"user_id": [7, 8], "item_id": [9, 9], "rating": [5.0, 5.0]}).write_parquet(bracket)
    assert read_ratings(bracket, default_timestamp=T).ratings["user_id"].to_list() == [7, 8]


def test_big_files_are_read_in_bounded_chunks(tmp_path):
    path = tmp_path / "u.data"
    rows = "".join(f"{u}\t{u % 97}\t{1 + u % 5}\t{T + u}\n" for u in range(20_000))
    path.write_text(rows)
    opts = ReadOptions(limits=Limits(chunk_bytes=64 << 10))  # many chunks, row numbers continue across them
    staged = stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
    valid = pl.read_parquet(tmp_path / "v.parquet")
    assert staged.rows_read == staged.rows_valid == 20_000 and valid["row_number"].to_list() == list(range(1, 20_001))


def test_a_file_refused_after_chunks_were_written_leaves_nothing(tmp_path):
    """Chunks are written on a second thread while the next is read: a refusal that comes later in the file
    (here a line past max_line_bytes after 20,000 good rows), or a write that fails, leaves no staged file."""
    path = tmp_path / "u.data"
    good = "".join(f"{u}\t{u % 97}\t{1 + u % 5}\t{T + u}\n" for u in range(20_000))
    path.write_text(good + "1\t1\t4\t" + "7" * (2 << 20) + "\n")
    opts = ReadOptions(limits=Limits(chunk_bytes=64 << 10, max_line_bytes=1 << 20))
    with pytest.raises(RatingsFileError, match="longer than max_line_bytes"):
        stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
    assert not (tmp_path / "v.parquet").exists() and not (tmp_path / "q.parquet").exists()
    path.write_text(good)
    with pytest.raises(OSError):  # the writer thread's error reaches the caller
        stage_ratings(path, tmp_path / "v.parquet", tmp_path / "gone" / "q.parquet", opts)
    assert not (tmp_path / "v.parquet").exists()


def _quoted_export(n: int, line_breaks: bool = True) -> tuple[str, list[tuple[str, str, float]]]:
    """A CSV as pandas or a database writes it when a text column holds commas, quotes and line breaks."""
    rows, expected = ["user_id,title,item_id,rating,timestamp"], []
    for u in range(n):
        said = f'"He said ""{u}""' + ("\nand left" if line_breaks else ", and left") + '"'
        title = f'"Dune, Part {u % 3}"' if u % 4 == 0 else said if u % 4 == 1 else "Plain"
        rows.append(f'"U{u}",{title},I{u % 97},{1 + u % 5},{T + u}')
        expected.append((f"U{u}", f"I{u % 97}", float(1 + u % 5)))
    return "\n".join(rows) + "\n", expected


def test_a_csv_that_quotes_commas_quotes_and_line_breaks_is_read_record_by_record(tmp_path):
    """RFC 4180 quoting (a text column with commas, doubled quotes and line breaks) in a file of several
    chunks: every record is one row with its own ids; a chunk never ends inside a quoted field."""
    path = tmp_path / "export.csv"
    text, expected = _quoted_export(60_000)
    path.write_text(text)
    assert path.stat().st_size > 2 << 20  # read in 1 MB blocks: chunks end at a block's last record
    opts = ReadOptions(limits=Limits(chunk_bytes=64 << 10))
    staged = stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", opts)
    valid = pl.read_parquet(tmp_path / "v.parquet")
    assert staged.rows_read == staged.rows_valid == 60_000
    assert valid.select("user_id", "item_id", "rating").rows() == expected
    assert valid["row_number"].to_list() == list(range(1, 60_001))


def test_a_stray_quote_in_a_quoted_csv_costs_its_line_not_the_file(tmp_path):
    """One unmatched ``"`` in a quoted file: polars cannot parse that chunk with quotes, so it is read a line at
    a time, quotes honoured within each line: the stray quote's line is quarantined with a reason, every
    other row loads, and counts reconcile."""
    text, expected = _quoted_export(3_000, line_breaks=False)
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if i > 1_000 and "Plain" in line)
    lines[at] = lines[at].replace(",Plain,", ',"Plain,')  # opens a quote that never closes
    path = tmp_path / "export.csv"
    path.write_text("".join(lines))
    staged = stage_ratings(path, tmp_path / "v.parquet", tmp_path / "q.parquet", ReadOptions())
    valid = pl.read_parquet(tmp_path / "v.parquet")
    quarantine = pl.read_parquet(tmp_path / "q.parquet")
    assert staged.rows_read == valid.height + quarantine.height == 3_000
    assert quarantine["row_number"].to_list() == [at] and quarantine["reason"][0]
    assert valid.select("user_id", "item_id", "rating").rows() == expected[: at - 1] + expected[at:]


def test_plain_number_columns_take_one_cast_and_reach_the_same_verdicts(tmp_path):
    """A chunk whose ids, ratings and times all cast as they are skips the stripped-text parsing
    (``_plain``); padding every field with a space forces that parsing. Both give the same rows and the
    same reasons (negative ids, a rating out of range or not finite, an implausible time)."""
    rows = [(1, 10, "4.5", T), (-2, 11, "3", T), (3, -12, "2", T), (4, 13, "7", T), (5, 14, "3", T * 100)]
    rows += [(6, 15, "inf", T), (7, 16, "NaN", T), (8, 17, "1", T + 1)]
    plain, padded = tmp_path / "plain.csv", tmp_path / "padded.csv"
    plain.write_text("".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    padded.write_text("".join(f" {u}, {i}, {r}, {t}\n" for u, i, r, t in rows))
    a, b = read_ratings(plain), read_ratings(padded)
    assert a.ratings.drop("row_number").equals(b.ratings.drop("row_number")) and a.ratings.height == 2
    assert a.quarantine.select("row_number", "reason").equals(b.quarantine.select("row_number", "reason"))
    assert a.quarantine["reason"].to_list()[:2] == ["user_id -2 is negative", "item_id -12 is negative"]
