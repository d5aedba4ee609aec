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
