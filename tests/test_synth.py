"""The synthetic MovieLens-shaped generator (recmodel.synth)."""
import polars as pl
import pytest

from recmodel import synth
from recmodel.data import read_ratings


def test_ml100k_shape_is_movielens_like_and_deterministic():
    a = synth.generate("ml-100k", seed=1)
    assert a.height == 100_000 and a["user_id"].n_unique() == 943 and a["item_id"].n_unique() <= 1682
    assert a.select(pl.struct("user_id", "item_id").n_unique()).item() == a.height  # distinct pairs
    per_user = a.group_by("user_id").len()["len"]
    assert per_user.min() >= 20 and per_user.max() > 10 * per_user.median() / 2  # heavy tail
    per_item = a.group_by("item_id").len()["len"].sort(descending=True)
    assert per_item.head(17).sum() > 0.08 * a.height  # top 1% of items take a large share (Zipf-like)
    assert set(a["rating"].unique().to_list()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert a.equals(synth.generate("ml-100k", seed=1))
    assert not a.equals(synth.generate("ml-100k", seed=2))


@pytest.mark.parametrize("fmt", synth.FORMATS)
def test_written_files_read_back(tmp_path, fmt):
    frame = synth.generate(synth.custom_shape(50, 40, 800), seed=3)
    parsed = read_ratings(synth.write(frame, tmp_path, fmt))
    assert parsed.quarantine.height == 0
    assert parsed.ratings.select("user_id", "item_id", "rating", "timestamp").sort(["user_id", "item_id"]).equals(
        frame.sort(["user_id", "item_id"]))


def test_bad_requests():
    with pytest.raises(ValueError, match="unknown shape"):
        synth.generate("ml-1b")
    with pytest.raises(ValueError, match="cannot fit"):
        synth.custom_shape(2, 2, 100)
