"""Reading and validating rating files (recmodel.io)."""

import gzip

import polars as pl
import pytest

from recmodel.io import RatingsFileError, list_rating_files, parse_column_mapping, read_ratings


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
    assert parsed.quarantine.height == 0 and reconciles(parsed)


def test_reads_ratings_dat_double_colon(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    assert read_ratings(path).ratings.select("user_id", "item_id", "rating").rows() == [(1, 1193, 5.0), (1, 661, 3.0)]


def test_reads_ratings_csv_with_header_and_half_stars(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\r\n1,296,5.0,1147880044\r\n1,306,3.5,1147868817\r\n")
    parsed = read_ratings(path)
    assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [(1, 296, 5.0), (1, 306, 3.5)]


def test_column_mapping_for_any_csv(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("stars,who,what,when,extra\n4,10,20,100,x\n2,11,21,101,y\n")
    parsed = read_ratings(path, columns=parse_column_mapping("user=who,item=what,rating=stars,timestamp=when"))
    assert parsed.ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [
        (10, 20, 4.0, 100),
        (11, 21, 2.0, 101),
    ]


def test_parquet_with_mapping_and_no_timestamp(tmp_path):
    path = tmp_path / "r.parquet"
    pl.DataFrame({"uid": [1, 2], "iid": [5, 6], "score": [4.0, 1.0]}).write_parquet(path)
    parsed = read_ratings(path, columns={"user": "uid", "item": "iid", "rating": "score"}, default_timestamp=77)
    assert parsed.ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [
        (1, 5, 4.0, 77),
        (2, 6, 1.0, 77),
    ]


def test_bad_rows_are_quarantined_with_row_and_reason(tmp_path):
    path = tmp_path / "u.data"
    lines = [
        "1\t1\t4\t100",  # 1 ok
        "2\t1\tabc\t100",  # 2 rating not a number
        "3\t1\t9\t100",  # 3 out of range
        "x\t1\t3\t100",  # 4 user not an integer
        "4\t-5\t3\t100",  # 5 negative item
        "5\t1\tnan\t100",  # 6 NaN rating
        "6\t1\t3",  # 7 missing timestamp
        "",  # 8 blank line
        "7\t1\t3\t100\t9",  # 9 extra field
        "8\t2\t5\t100",  # 10 ok
    ]
    path.write_text("\n".join(lines) + "\n")
    parsed = read_ratings(path, rating_min=1, rating_max=5)
    reasons = dict(parsed.quarantine.select("row_number", "reason").rows())
    assert set(reasons) == {2, 3, 4, 5, 6, 7, 8, 9}
    assert "not a number" in reasons[2] and "outside [1, 5]" in reasons[3]
    assert "user_id 'x'" in reasons[4] and "negative" in reasons[5] and "not finite" in reasons[6]
    assert reasons[7] == "missing timestamp" and reasons[8] == "blank line" and "more fields" in reasons[9]
    assert parsed.ratings["row_number"].to_list() == [1, 10]
    assert reconciles(parsed)


def test_duplicate_pairs_keep_latest_timestamp(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t1\t2\t300\n1\t1\t5\t100\n1\t1\t4\t300\n2\t2\t1\t5\n")
    parsed = read_ratings(path)
    assert parsed.ratings.select("user_id", "item_id", "rating").rows() == [(1, 1, 4.0), (2, 2, 1.0)]
    assert parsed.duplicates == 2 and reconciles(parsed)


def test_gzip_and_windows_line_endings(tmp_path):
    path = tmp_path / "u.data.gz"
    path.write_bytes(gzip.compress(b"1\t2\t3\t4\r\n5\t6\t4\t8\r\n"))
    assert read_ratings(path).ratings.select("user_id", "item_id", "rating", "timestamp").rows() == [
        (1, 2, 3.0, 4),
        (5, 6, 4.0, 8),
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
