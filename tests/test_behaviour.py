"""One behavioural suite that every ranker and every rating model passes (issue 14), like implicit's
RecommenderBaseTestMixin or LensKit's scorer tests.

Data: a checkerboard with the diagonal withheld. Users and items fall in two groups (parity); each user
rates every item of their own group 5 except the item with their own index, and a random half of the
other group's items 1. The best unseen item for user u is therefore item u.
"""

import numpy as np
import pytest
import torch

from recmodel.config import RankConfig, TrainConfig
from recmodel.persist import load_model, load_ranker, save_model, save_ranker
from recmodel.rankers import EaseRanker, FactorRanker, NeuralRanker, PopularityRanker, fit_ranker, pair_dots
from recmodel.ratings import Ratings
from recmodel.score import recommend
from recmodel.train import fit_rater

N = 40
CPU = torch.device("cpu")
RANKERS = ["ials", "ease", "popularity", "dot", "neural"]  # the last two: rating models ranking by prediction
RATERS = ["dot", "neural"]


@pytest.fixture(scope="module")
def board() -> Ratings:
    rng = np.random.default_rng(0)
    users, items, ratings = [], [], []
    for u in range(N):
        for i in range(N):
            if i % 2 == u % 2 and i != u:
                users.append(u)
                items.append(i)
                ratings.append(5.0)
            elif i % 2 != u % 2 and rng.random() < 0.5:
                users.append(u)
                items.append(i)
                ratings.append(1.0)
    return Ratings(np.array(users), np.array(items), np.array(ratings, np.float32), np.arange(len(users)), N, N)


def rater_config(kind: str) -> TrainConfig:
    return TrainConfig(
        rating_model=kind,
        n_factors=8,
        epochs=40,
        lr_max=3e-2,
        wd=0.01,
        batch_size=64,
        nn_epochs=40,
        nn_lr_max=1e-2,
        nn_wd=0.01,
        nn_hidden=32,
        y_range=(0.5, 5.5),
    )


@pytest.fixture(scope="module")
def raters(board):
    return {kind: fit_rater(board, rater_config(kind), CPU)[0] for kind in RATERS}


@pytest.fixture(scope="module")
def rankers(board, raters):
    out = {
        name: fit_ranker(board, RankConfig(ranker=name, rank_factors=8, rank_iterations=15), CPU, 0)
        for name in ("ials", "ease", "popularity")
    }
    out.update({kind: model.as_ranker() for kind, model in raters.items()})
    return out


def reference_lists(ranker, data: Ratings, top_n: int, exclude=()) -> list[list[int]]:
    """float64 scores from ``score_block``, seen and excluded items dropped, sorted (score desc, item asc)."""
    scores = ranker.score_block(torch.arange(data.n_users)).double().numpy()
    seen = set(zip(data.users.tolist(), data.items.tolist()))
    out = []
    for u in range(data.n_users):
        cands = [(-scores[u, i], i) for i in range(data.n_items) if (u, i) not in seen and i not in exclude]
        out.append([i for _, i in sorted(cands)[:top_n]])
    return out


def lists(top) -> list[list[int]]:
    return [[i for i in row if i >= 0] for row in top.items.tolist()]


@pytest.mark.parametrize("name", RANKERS)
def test_finds_the_withheld_item(rankers, board, name):
    if name == "popularity":  # the suite can fail: popularity cannot tell users apart
        first = recommend(rankers[name], board, np.arange(N), 1).items[:, 0]
        assert (first == np.arange(N)).mean() < 0.6
        return
    first = recommend(rankers[name], board, np.arange(N), 1).items[:, 0]
    assert (first == np.arange(N)).mean() >= (0.95 if name in RATERS else 1.0)


@pytest.mark.parametrize("name", RANKERS)
def test_lists_equal_the_float64_reference(rankers, board, name):
    top = recommend(rankers[name], board, np.arange(N), 7)
    assert lists(top) == reference_lists(rankers[name], board, 7)


@pytest.mark.parametrize("name", RANKERS)
def test_seen_items_never_listed_and_exact_length(rankers, board, name):
    top = recommend(rankers[name], board, np.arange(N), 5)
    seen = set(zip(board.users.tolist(), board.items.tolist()))
    assert (top.items >= 0).all() and all(len(set(row)) == 5 for row in top.items.tolist())
    assert not any((u, i) in seen for u, row in enumerate(top.items.tolist()) for i in row)
    assert np.all(np.diff(top.scores, axis=1) <= 0)


@pytest.mark.parametrize("name", RANKERS)
def test_short_lists_when_few_items_are_unseen(rankers, board, name):
    top = recommend(rankers[name], board, np.arange(N), N)  # every user has rated some items
    unseen = N - np.bincount(board.users, minlength=N)
    assert ((top.items >= 0).sum(axis=1) == unseen).all()
    assert np.isnan(top.scores[top.items < 0]).all()


@pytest.mark.parametrize("name", RANKERS)
def test_excluded_items_are_never_listed(rankers, board, name):
    excluded = np.array([0, 1, 2, 3, 17])
    top = recommend(rankers[name], board, np.arange(N), 6, exclude_items=excluded)
    assert not np.isin(top.items, excluded).any()
    assert lists(top) == reference_lists(rankers[name], board, 6, exclude=set(excluded.tolist()))


def tied(kind: str):
    """A ranker of each kind whose scores are all equal."""
    if kind == "factors":
        return FactorRanker(torch.zeros(N, 3), torch.zeros(N, 3))
    if kind == "ease":
        return EaseRanker(torch.zeros(N, N), np.zeros(N + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if kind == "popularity":
        return PopularityRanker(torch.ones(N), N)
    return NeuralRanker(torch.zeros(N, 4), torch.zeros(N, 4), torch.ones(4), torch.zeros(1))


@pytest.mark.parametrize("kind", ["factors", "ease", "popularity", "neural"])
def test_ties_break_by_item_index(board, kind):
    top = recommend(tied(kind), board, np.arange(N), 4)
    seen = set(zip(board.users.tolist(), board.items.tolist()))
    expected = [[i for i in range(N) if (u, i) not in seen][:4] for u in range(N)]
    assert lists(top) == expected


@pytest.mark.parametrize("kind", ["factors", "ease", "popularity", "neural"])
def test_nan_scores_are_refused(board, kind):
    ranker = tied(kind)
    for tensor in ranker.tensors().values():
        if tensor.is_floating_point():
            tensor.fill_(float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        recommend(ranker, board, np.arange(N), 3)


@pytest.mark.parametrize("name", RANKERS)
def test_save_load_round_trip(rankers, board, name, tmp_path):
    path = save_ranker(tmp_path / "r.safetensors", rankers[name])
    loaded = load_ranker(path)
    assert loaded.kind == rankers[name].kind
    assert lists(recommend(loaded, board, np.arange(N), 5)) == lists(recommend(rankers[name], board, np.arange(N), 5))


def test_unknown_kinds_are_errors_not_fallbacks(tmp_path):
    from safetensors.torch import save_file

    from recmodel.persist import RANKER_FORMAT

    path = tmp_path / "r.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata={"format": RANKER_FORMAT, "kind": "quantum", "metadata": "{}"})
    with pytest.raises(ValueError, match="unknown ranker kind 'quantum'"):
        load_ranker(path)


@pytest.mark.parametrize("name", RANKERS)
def test_unknown_user_indices_are_refused(rankers, board, name):
    with pytest.raises(ValueError, match="user indices"):
        recommend(rankers[name], board, np.array([0, N + 3]), 3)


# ---------------------------------------------------------------- rating models


@pytest.mark.parametrize("kind", RATERS)
def test_predict_equals_the_forward_pass(raters, kind):
    model = raters[kind]
    users, items = np.repeat(np.arange(N), N), np.tile(np.arange(N), N)
    with torch.no_grad():
        forward = model(torch.from_numpy(users), torch.from_numpy(items)).double().numpy()
    pred = model.predict(users, items)
    assert pred.dtype == np.float64 and np.allclose(pred, forward, atol=1e-5)
    lo, hi = model.y_range
    assert ((pred > lo) & (pred < hi)).all()


@pytest.mark.parametrize("kind", RATERS)
def test_rating_model_save_load_round_trip(raters, kind, tmp_path):
    model = raters[kind]
    cfg = rater_config(kind)
    path = save_model(tmp_path / "m.safetensors", model, np.arange(N) + 100, np.arange(N) + 500, cfg)
    saved = load_model(path)
    users, items = np.arange(N), np.arange(N)[::-1].copy()
    assert saved.model.kind == kind and np.array_equal(saved.model.predict(users, items), model.predict(users, items))


@pytest.mark.parametrize("kind", RATERS)
def test_rating_model_refuses_unknown_indices(raters, kind):
    with pytest.raises((ValueError, IndexError)):
        raters[kind].predict(np.array([N + 1]), np.array([0]))


def test_cold_user_prediction_equals_forward_for_a_known_users_vectors(raters):
    """``predict_for`` (the cold-start path) is the same formula as ``forward``."""
    model = raters["dot"]
    emb, bias = model.user_vectors()
    users, items = np.arange(N), np.arange(N)
    assert np.allclose(model.predict_for(emb.numpy()[users], bias.numpy()[users], items), model.predict(users, items))


def test_pair_dots_is_the_row_dot_product_and_each_pair_stands_alone():
    """``pair_dots`` (the published score's product) equals numpy's row by row, and a pair's value is bit for bit
    the same whatever other pairs share its call: scoring shards, cut anywhere, publish the same scores."""
    rng = np.random.default_rng(3)
    U, V = rng.standard_normal((50, 33)), rng.standard_normal((70, 33))
    users, items = rng.integers(0, 50, 5000), rng.integers(0, 70, 5000)
    out = pair_dots(U, V, users, items)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, np.einsum("pf,pf->p", U[users], V[items]), rtol=1e-12, atol=1e-12)
    order = rng.permutation(users.size)
    assert np.array_equal(pair_dots(U, V, users[order], items[order]), out[order])
    assert np.array_equal(pair_dots(U, V, users[123:124], items[123:124]), out[123:124])
    assert pair_dots(U, V, users[:0], items[:0]).shape == (0,)
    for bad_users, bad_items in (([50], [0]), ([0], [-1])):
        with pytest.raises(ValueError, match="indices must lie in"):
            pair_dots(U, V, np.array(bad_users), np.array(bad_items))
