"""Metric definitions against hand-computed values (recmodel.metrics)."""

import math

import numpy as np
import pytest

from recmodel.metrics import mae, ranking_metrics, rmse


def test_rmse_and_mae_by_hand():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(math.sqrt(4 / 3))
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)


def test_ranking_metrics_by_hand():
    # user 0: list [5, 1, 7], relevant {1, 7, 9}; user 1: list [2, 3, 4], relevant {4}
    top = np.array([[5, 1, 7], [2, 3, 4]])
    m = ranking_metrics(top, np.array([0, 0, 0, 1]), np.array([1, 7, 9, 4]), k=3, n_items=10)
    d = lambda r: 1 / math.log2(r + 1)  # noqa: E731
    ndcg0 = (d(2) + d(3)) / (d(1) + d(2) + d(3))
    ndcg1 = d(3) / d(1)
    assert m["ndcg_at_3"] == pytest.approx((ndcg0 + ndcg1) / 2)
    assert m["precision_at_3"] == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert m["recall_at_3"] == pytest.approx((2 / 3 + 1 / 1) / 2)
    assert m["hit_rate_at_3"] == 1.0
    ap0 = (1 / 2 + 2 / 3) / 3  # hits at ranks 2 and 3, min(R=3, k=3)
    ap1 = (1 / 3) / 1
    assert m["map_at_3"] == pytest.approx((ap0 + ap1) / 2)
    assert m["coverage_at_3"] == pytest.approx(6 / 10)
    assert m["n_users"] == 2


def test_perfect_ranking_scores_one():
    top = np.array([[3, 4, 0], [1, 2, 0]])
    m = ranking_metrics(top, np.array([0, 0, 1, 1]), np.array([3, 4, 1, 2]), k=2, n_items=5)
    assert m["ndcg_at_2"] == m["map_at_2"] == m["recall_at_2"] == m["precision_at_2"] == m["hit_rate_at_2"] == 1.0


def test_k_larger_than_catalog_and_short_lists():
    top = np.array([[2, 0, -1]])  # a 3-item catalog; user has seen item 1
    m = ranking_metrics(top, np.array([0]), np.array([0]), k=5, n_items=3)
    assert m["precision_at_5"] == pytest.approx(1 / 5)  # divided by k, as documented
    assert m["ndcg_at_5"] == pytest.approx((1 / math.log2(3)) / 1.0)
    assert m["coverage_at_5"] == pytest.approx(2 / 3)


def test_users_without_relevant_items_are_left_out():
    top = np.array([[1, 2], [1, 2]])
    m = ranking_metrics(top, np.array([0]), np.array([1]), k=2, n_items=4)
    assert m["n_users"] == 1 and m["ndcg_at_2"] == 1.0
    empty = ranking_metrics(top, np.array([], dtype=np.int64), np.array([], dtype=np.int64), k=2, n_items=4)
    assert empty["n_users"] == 0 and math.isnan(empty["ndcg_at_2"])
    with pytest.raises(ValueError, match="k must be"):
        ranking_metrics(top, np.array([0]), np.array([1]), k=0, n_items=4)


def test_ranking_metrics_equal_a_per_user_loop_over_sets():
    """Random lists (empty slots, repeated relevant pairs, users with none) against the definitions written as
    a plain loop over each user's set of relevant items."""
    rng = np.random.default_rng(11)
    for _ in range(50):
        n_rows, n_items, k = int(rng.integers(1, 30)), int(rng.integers(2, 25)), int(rng.integers(1, 8))
        top = rng.integers(-1, n_items, (n_rows, int(rng.integers(1, 10))))
        users, items = rng.integers(0, n_rows, 80), rng.integers(0, n_items, 80)
        m = ranking_metrics(top, users, items, k, n_items)
        ndcg, recall, hits_any = [], [], []
        for r in range(n_rows):
            relevant = set(items[users == r].tolist())
            count = int((users == r).sum())  # R counts every pair given (a night's pairs are distinct)
            if not count:
                continue
            hit = [t >= 0 and t in relevant for t in top[r, :k].tolist()]
            dcg = sum(1 / math.log2(j + 2) for j, h in enumerate(hit) if h)
            ndcg.append(dcg / sum(1 / math.log2(j + 2) for j in range(min(count, k))))
            recall.append(sum(hit) / count)
            hits_any.append(any(hit))
        assert m["n_users"] == len(ndcg)
        if ndcg:
            assert m[f"ndcg_at_{k}"] == pytest.approx(np.mean(ndcg))
            assert m[f"recall_at_{k}"] == pytest.approx(np.mean(recall))
            assert m[f"hit_rate_at_{k}"] == pytest.approx(np.mean(hits_any))


def test_validation_metrics_on_a_sample_of_users_are_those_users_metrics():
    """``max_users``: a seeded sample of users with a relevant test rating is scored; the metrics are
    exactly the full report's restricted to them, the same sample for every ranker, and nothing changes
    when the sample would hold everyone."""
    import torch

    from recmodel import synth
    from recmodel.evaluation import ranking_report
    from recmodel.rankers import fit_popularity
    from recmodel.ratings import index_frames
    from recmodel.splits import split_random

    (r,), _, _ = index_frames(synth.generate("ml-100k", seed=1))
    train, test = split_random(r, 0.2, 42)
    popular = fit_popularity(train.items, train.n_items, train.n_users, torch.device("cpu"))
    full = ranking_report(popular, train, test, 10, 4.0)
    assert ranking_report(popular, train, test, 10, 4.0, max_users=100_000, seed=1) == full
    sample = ranking_report(popular, train, test, 10, 4.0, max_users=200, seed=1)
    assert sample["n_users"] == 200 and sample == ranking_report(popular, train, test, 10, 4.0, max_users=200, seed=1)
    assert sample != ranking_report(popular, train, test, 10, 4.0, max_users=200, seed=2)
    # the same numbers as the full report's, restricted to the sampled users (by hand, from the test part)
    rng = np.random.default_rng(1)
    liked_users = np.unique(test.users[test.ratings >= 4.0])
    chosen = np.sort(rng.choice(liked_users[np.isin(liked_users, train.users)], size=200, replace=False))
    keep = np.isin(test.users, chosen)
    restricted = type(test)(
        test.users[keep], test.items[keep], test.ratings[keep], test.timestamps[keep], test.n_users, test.n_items
    )
    by_hand = ranking_report(popular, train, restricted, 10, 4.0)
    assert by_hand["ndcg_at_10"] == pytest.approx(sample["ndcg_at_10"])
    assert by_hand["recall_at_10"] == pytest.approx(sample["recall_at_10"])


def test_bias_only_is_the_alternating_shrunk_means():
    """Bias-only (the floor of every rating model): each round, every item's residual mean shrunk by
    ``reg_item``, then every user's by ``reg_user``; written here with numpy's weighted bincount."""
    from recmodel.baselines import fit_bias_only

    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 50, 4000), rng.integers(0, 30, 4000)
    ratings = (rng.integers(1, 6, 4000) + 0.3 * (users % 3) - 0.2 * (items % 4)).astype(np.float64)
    mu = ratings.mean()
    bu, bi = np.zeros(52), np.zeros(30)
    n_u, n_i = np.bincount(users, minlength=52), np.bincount(items, minlength=30)
    for _ in range(7):
        bi = np.bincount(items, ratings - mu - bu[users], minlength=30) / (4.0 + n_i)
        bu = np.bincount(users, ratings - mu - bi[items], minlength=52) / (6.0 + n_u)
    fitted = fit_bias_only(users, items, ratings, 52, 30, reg_user=6.0, reg_item=4.0, iterations=7, rating_range=(1, 5))
    np.testing.assert_allclose(fitted.user_bias, bu, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fitted.item_bias, bi, rtol=1e-12, atol=1e-12)
    assert fitted.mu == pytest.approx(mu) and fitted.user_bias[50:].tolist() == [0.0, 0.0]  # unrated users: 0
    assert fitted.predict(users, items).min() >= 1 and fitted.predict(users, items).max() <= 5
