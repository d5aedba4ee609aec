"""One behavioural suite every model passes: a checkerboard with the diagonal withheld.

Users and items fall in two groups (parity). Each user rates every item of their own group 5 except
the item with their own index (withheld), and a random half of the other group's items 1. The best
unseen item for user u is therefore item u: every ranker must put it first.
"""
import numpy as np
import pytest
import torch

from recmodel.config import RankConfig, TrainConfig
from recmodel.implicit import fit_ease
from recmodel.models import EmbeddingNN
from recmodel.pipeline import (NeuralRanker, Ratings, fit_ranker, fit_rater, predict, rating_ranker, recommend,
                               split_leave_last, split_random, split_temporal)

N = 40
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkerboard() -> Ratings:
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    for u in range(N):
        for i in range(N):
            if i % 2 == u % 2 and i != u:
                users.append(u), items.append(i), ratings.append(5.0)
            elif i % 2 != u % 2 and rng.random() < 0.5:
                users.append(u), items.append(i), ratings.append(1.0)
    n = len(users)
    return Ratings(np.array(users), np.array(items), np.array(ratings, np.float32), np.arange(n), N, N)


def first_choice(ranker, data):
    top = recommend(ranker, data, np.arange(N), 1)
    return top.items[:, 0]


@pytest.mark.parametrize("ranker", ["ials", "ease", "popularity_fails"])
def test_rankers_find_the_withheld_item(checkerboard, ranker):
    if ranker == "popularity_fails":  # the suite can fail: popularity cannot tell users apart
        first = first_choice(fit_ranker(checkerboard, RankConfig(ranker="popularity"), CPU, 0), checkerboard)
        assert (first == np.arange(N)).mean() < 0.6
        return
    cfg = RankConfig(ranker=ranker, rank_factors=8, rank_iterations=15)
    assert (first_choice(fit_ranker(checkerboard, cfg, CPU, 0), checkerboard) == np.arange(N)).all()


@pytest.mark.parametrize("rating_model", ["dot", "neural"])
def test_rating_models_find_the_withheld_item(checkerboard, rating_model):
    cfg = TrainConfig(rating_model=rating_model, n_factors=8, epochs=40, lr_max=3e-2, wd=0.01, batch_size=64,
                      nn_epochs=40, nn_lr_max=1e-2, nn_wd=0.01, nn_hidden=32, y_range=(0.5, 5.5))
    model, _ = fit_rater(checkerboard, cfg, CPU)
    assert (first_choice(rating_ranker(model), checkerboard) == np.arange(N)).mean() >= 0.95
    pred = predict(model, np.arange(N), np.arange(N))  # the withheld items are predicted high
    assert pred.mean() > 4.0


def test_neural_block_scores_equal_the_forward_pass():
    model = EmbeddingNN(7, 9, (0.0, 5.0), n_hidden=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    ranker = rating_ranker(model)
    assert isinstance(ranker, NeuralRanker)
    users, items = torch.arange(7).repeat_interleave(9), torch.arange(9).repeat(7)
    assert torch.allclose(ranker.score_block(torch.arange(7)).flatten(), model.logits(users, items), atol=1e-5)


def test_ease_has_a_zero_diagonal_and_refuses_huge_catalogs(checkerboard):
    ease = fit_ease(checkerboard.users, checkerboard.items, np.ones(len(checkerboard), np.float32), N, N, lam=10.0)
    assert torch.all(torch.diagonal(ease.B) == 0)
    with pytest.raises(ValueError, match="use ranker='ials'"):
        fit_ease(np.array([0]), np.array([0]), np.ones(1, np.float32), 1, 30_000)


def test_splits(checkerboard):
    r = checkerboard
    tr, te = split_random(r, 0.25, 1)
    assert len(tr) + len(te) == len(r) and len(te) == round(0.25 * len(r))
    tr, te = split_temporal(r, 0.25)
    assert te.timestamps.min() > tr.timestamps.max()
    tr, te = split_leave_last(r, 2)
    assert np.all(np.bincount(te.users, minlength=N) == 2)
    for u in range(N):  # the held-out ratings are each user's newest
        assert te.timestamps[te.users == u].min() > tr.timestamps[tr.users == u].max()


def test_similar_items_stay_in_their_group(checkerboard):
    from recmodel.similar import similar_items

    ranker = fit_ranker(checkerboard, RankConfig(ranker="ials", rank_factors=8, rank_iterations=15), CPU, 0)
    near = similar_items(ranker.item_factors, 5)
    assert (near.items != np.arange(N)[:, None]).all()  # never itself
    assert ((near.items % 2) == (np.arange(N)[:, None] % 2)).all()  # neighbours share the item's group
    assert np.all(np.diff(near.scores, axis=1) <= 0) and np.all(near.scores <= 1.0 + 1e-6)


def test_items_without_factors_get_no_neighbours():
    from recmodel.similar import similar_items

    factors = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 0.0], [0.0, 1.0]])
    near = similar_items(factors, 2)
    assert near.items[2].tolist() == [-1, -1] and 2 not in near.items
    assert near.items[0].tolist() == [1, 3]
