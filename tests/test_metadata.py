"""Item and user metadata files are read like rating files: row by row, bad rows quarantined with a reason."""

import polars as pl
import pytest

from recmodel.io import Limits, RatingsFileError, read_items, read_users


def test_user_features_that_are_not_finite_numbers_are_quarantined(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text(
        "user_id,age,job\n"
        "1,24,writer\n"
        "2,inf,artist\n"  # the value that used to reject every later night
        "3,NaN,doctor\n"
        "4,31,engineer,extra\n"  # ragged: one field too many
        '5,"40,nurse\n'  # a stray quote must not swallow the lines after it
        "6,,student\n"  # a missing feature is allowed (it is encoded as the mean)
        "7,52,\n"
        "x8,33,clerk\n"  # not an integer id
    )
    users, bad = read_users(path)
    assert users["user_id"].to_list() == [1, 6, 7]
    assert users.schema["age"] == pl.Float64 and users["age"].to_list() == [24.0, None, 52.0]
    reasons = dict(zip(bad["row_number"].to_list(), bad["reason"].to_list(), strict=True))
    assert sorted(reasons) == [2, 3, 4, 5, 8]
    assert reasons[2] == "age 'inf' is not a finite number"
    assert reasons[3] == "age 'NaN' is not a finite number"
    assert "field count" in reasons[4] and "field count" in reasons[5]
    assert "user_id 'x8'" in reasons[8]
    assert bad["raw"].to_list()[0] == "2,inf,artist"


def test_movielens_user_and_item_files(tmp_path):
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|old|M|writer|32067\n")
    users, bad = read_users(tmp_path / "u.user")
    assert users.columns == ["user_id", "age", "gender", "occupation", "zip"]
    assert users["zip"].to_list() == ["8", "9"]  # a region, not a person's address
    assert bad["reason"].to_list() == ["age 'old' is not a finite number"]

    def line(item: str, title: str, *genres: int) -> bytes:
        flags = "|".join("1" if g in genres else "0" for g in range(19))
        return f"{item}|{title}|01-Jan-1995||http://x|{flags}\n".encode("latin-1")

    (tmp_path / "u.item").write_bytes(  # the older MovieLens files are latin-1
        line("1", "Toy Story (1995)", 3, 4, 5) + line("2", "Cité des enfants perdus, La (1995)", 8) + line("three", "x")
    )
    items, bad = read_items(tmp_path / "u.item")
    assert items["item_id"].to_list() == [1, 2]
    assert items["title"].to_list() == ["Toy Story (1995)", "Cité des enfants perdus, La (1995)"]
    assert items["genres"].to_list() == ["Animation|Children's|Comedy", "Drama"]
    assert bad["row_number"].to_list() == [3] and "item_id 'three'" in bad["reason"][0]


def test_item_files_with_a_header_and_string_ids(tmp_path):
    path = tmp_path / "products.tsv"
    path.write_text("ref\tproduct_name\tcategory\nSKU-1\tKettle\tkitchen, home\nSKU-2\tLamp\thome\n\tNo id\tx\n")
    items, bad = read_items(path, {"item": "ref"}, id_type="str")
    assert items.rows() == [("SKU-1", "Kettle", "kitchen|home"), ("SKU-2", "Lamp", "home")]
    assert bad["reason"].to_list() == ["missing item_id"]
    with pytest.raises(RatingsFileError, match="--item-columns"):
        read_items(path, id_type="str")  # no id column it can recognise: say how to name it


def test_metadata_files_are_read_within_the_limits(tmp_path):  # links: test_data.py, for every reader
    long = tmp_path / "long.csv"
    long.write_text("user_id,bio\n1," + "x" * 5000 + "\n")
    with pytest.raises(RatingsFileError, match="longer than"):
        read_users(long, limits=Limits(max_line_bytes=1000))
