"""The synthetic MovieLens-shaped generator (recmodel.synth)."""

import polars as pl
import pytest

from recmodel import synth
from recmodel.io import read_ratings


def test_ml100k_shape_is_movielens_like_and_deterministic():
    a = synth.generate("ml-100k", seed=1)
    assert a.height == 100_000 and a["user_id"].n_unique() == 943 and a["item_id"].n_unique() <= 1682
    assert a.select(pl.struct("user_id", "item_id").n_unique()).item() == a.height  # distinct pairs
    per_user = a.group_by("user_id").len()["len"]
    assert per_user.min() >= 20 and per_user.max() > 10 * per_user.median() / 2  # heavy tail
    per_item = a.group_by("item_id").len()["len"].sort(descending=True)
    # Zipf-like: the top 1% of items take over 6x their uniform share (real ML-100K: 7.6%)
    assert per_item.head(17).sum() > 0.06 * a.height
    assert set(a["rating"].unique().to_list()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert a.equals(synth.generate("ml-100k", seed=1))
    assert not a.equals(synth.generate("ml-100k", seed=2))


@pytest.mark.parametrize("fmt", [f for f in synth.FORMATS if f != "hetrec"])
def test_written_files_read_back(tmp_path, fmt):
    frame = synth.generate(synth.custom_shape(50, 40, 800), seed=3)
    parsed = read_ratings(synth.write(frame, tmp_path, fmt))
    assert parsed.quarantine.height == 0
    assert (
        parsed.ratings.select("user_id", "item_id", "rating", "timestamp")
        .sort(["user_id", "item_id"])
        .equals(frame.sort(["user_id", "item_id"]))
    )


@pytest.mark.parametrize("fmt", ["parquet", "csv", "hetrec"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_implicit_files_read_back_as_implicit(tmp_path, fmt, string_ids):
    frame = synth.generate_implicit(synth.custom_shape(50, 40, 800), seed=3, string_ids=string_ids)
    path = synth.write(frame, tmp_path, fmt)
    parsed = read_ratings(
        path, columns={"user": "userID", "item": "artistID", "weight": "weight"} if fmt == "hetrec" else None
    )
    assert parsed.feedback == "implicit" and parsed.quarantine.height == 0
    got = parsed.ratings.sort(["user_id", "item_id"])
    want = frame.sort(["user_id", "item_id"])
    assert got["user_id"].to_list() == want["user_id"].to_list()
    assert got["item_id"].to_list() == want["item_id"].to_list()
    assert got["rating"].to_list() == want["weight"].cast(float).to_list()  # the weight is what counts


def test_implicit_data_is_seeded_heavy_tailed_and_tasteful():
    a = synth.generate_implicit("ml-100k", seed=1)
    assert a.equals(synth.generate_implicit("ml-100k", seed=1))
    assert a.height == 100_000 and a.select(pl.struct("user_id", "item_id").n_unique()).item() == a.height
    w = a["weight"]
    assert w.min() >= 1 and w.quantile(0.5) <= 3 and w.max() > 100 * w.quantile(0.5)  # heavy tail
    strings = synth.generate_implicit("ml-100k", seed=1, string_ids=True)
    assert strings["user_id"].dtype == pl.String and strings["item_id"].str.starts_with("SKU-").all()
    assert strings["user_id"].n_unique() == a["user_id"].n_unique()


def test_bad_requests():
    with pytest.raises(ValueError, match="unknown shape"):
        synth.generate("ml-1b")
    with pytest.raises(ValueError, match="cannot fit"):
        synth.custom_shape(2, 2, 100)


def test_taste_decides_what_users_rate():
    """Users pick items by taste as well as popularity, so a personal ranker beats popularity."""
    import torch

    from recmodel.config import RankConfig
    from recmodel.evaluation import ranking_report
    from recmodel.rankers import fit_popularity, fit_ranker
    from recmodel.ratings import index_frames
    from recmodel.splits import split_random

    (r,), _, _ = index_frames(synth.generate("ml-100k", seed=1))
    train, test = split_random(r, 0.2, 42)
    ials = ranking_report(fit_ranker(train, RankConfig(), torch.device("cpu"), 42), train, test, 10, 4.0)
    popular = ranking_report(fit_popularity(train.items, train.n_items, train.n_users), train, test, 10, 4.0)
    assert ials["ndcg_at_10"] > 1.2 * popular["ndcg_at_10"]


def test_large_shapes_give_ids_in_arrival_order_popular_items_mostly_first():
    """ML-10M/25M-shaped ids have gaps and follow arrival, the popular items mostly first (as real movieIds do):
    the first half of the catalog by id holds most of the ratings, for both kinds of feedback."""
    import dataclasses

    shape = dataclasses.replace(synth.custom_shape(2000, 1500, 60_000, half_stars=True), sparse_item_ids=True)
    for frame in (synth.generate(shape, seed=3), synth.generate_implicit(shape, seed=3)):
        per_item = frame.group_by("item_id").len().sort("item_id")["len"].to_numpy()
        assert per_item[: per_item.size // 2].sum() > 0.7 * frame.height
        assert frame["item_id"].max() > 1.5 * frame["item_id"].n_unique()  # gaps
    plain = synth.generate(synth.custom_shape(2000, 1500, 60_000), seed=3)  # small shapes: ids 1..n, no order
    per_item = plain.group_by("item_id").len().sort("item_id")["len"].to_numpy()
    assert per_item[: per_item.size // 2].sum() < 0.6 * plain.height
