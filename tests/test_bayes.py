"""Bayesian MF (Gibbs sampling), its blend with the dot model, and the rating boost of the lists."""

import numpy as np
import pytest
import torch

from recmodel.bayes import _column_packing, _csr, _outer_products, _sample_rows, _squared_residuals, fit_bayes
from recmodel.config import RankConfig, RunConfig, TrainConfig
from recmodel.evaluation import fit_bias
from recmodel.metrics import rmse
from recmodel.models import BayesBlend
from recmodel.persist import load_model, load_ranker, save_model, save_ranker
from recmodel.rankers import BoostedRanker, fit_ranker
from recmodel.ratings import Ratings
from recmodel.sparse import row_runs
from recmodel.splits import split_random
from recmodel.train import fit_rater

CPU = torch.device("cpu")


def planted(n_users=300, n_items=200, k=4, density=0.15, noise=0.3, seed=0) -> Ratings:
    """Ratings from known biases and rank-k factors plus Gaussian noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    U, V = rng.normal(0, 0.6, (n_users, k)), rng.normal(0, 0.6, (n_items, k))
    bu, bi = rng.normal(0, 0.3, n_users), rng.normal(0, 0.3, n_items)
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    r = 3.0 + bu[users] + bi[items] + (U[users] * V[items]).sum(1) + rng.normal(0, noise, users.size)
    return Ratings(
        users.astype(np.int64),
        items.astype(np.int64),
        r.astype(np.float32),
        np.zeros(users.size, np.int64),
        n_users,
        n_items,
    )


def test_gibbs_recovers_a_planted_model_to_the_noise_level():
    data = planted()
    train, test = split_random(data, 0.2, 0)
    post = fit_bayes(train.users, train.items, train.ratings, data.n_users, data.n_items, factors=4, seed=1)
    pred = (
        post.mu
        + post.user_bias[test.users]
        + post.item_bias[test.items]
        + (post.user_factors[test.users] * post.item_factors[test.items]).sum(1)
    )
    bias_only = fit_bias(train, RunConfig(rating_min=0, rating_max=5.5)).predict(test.users, test.items)
    assert rmse(pred, test.ratings) < 0.4  # the noise is 0.3; the structure is found
    assert rmse(pred, test.ratings) < 0.6 * rmse(bias_only, test.ratings)
    assert 0.25 < post.noise_std < 0.4  # the sampled noise level is the planted one


def test_gibbs_is_deterministic_for_a_seed_and_warm_starts_from_earlier_factors():
    data = planted(n_users=80, n_items=60, density=0.3)
    args = (data.users, data.items, data.ratings, data.n_users, data.n_items)
    a = fit_bayes(*args, factors=3, iterations=20, burn_in=5, seed=7)
    b = fit_bayes(*args, factors=3, iterations=20, burn_in=5, seed=7)
    c = fit_bayes(*args, factors=3, iterations=20, burn_in=5, seed=8)
    np.testing.assert_array_equal(a.user_factors, b.user_factors)
    assert not np.array_equal(a.user_factors, c.user_factors)
    warm = fit_bayes(*args, factors=3, iterations=3, burn_in=0, seed=9, init=a)
    cold = fit_bayes(*args, factors=3, iterations=3, burn_in=0, seed=9)
    fit = {
        name: rmse(
            p.mu
            + p.user_bias[data.users]
            + p.item_bias[data.items]
            + (p.user_factors[data.users] * p.item_factors[data.items]).sum(1),
            data.ratings,
        )
        for name, p in (("warm", warm), ("cold", cold))
    }
    assert fit["warm"] < fit["cold"], fit  # three passes from yesterday's factors beat three from scratch
    with pytest.raises(ValueError, match="burn-in"):
        fit_bayes(*args, iterations=5, burn_in=5)


@pytest.fixture(scope="module")
def blend():
    data = planted(n_users=120, n_items=90, density=0.25)
    train, valid = split_random(data, 0.2, 0)
    cfg = TrainConfig(rating_model="bayes", bayes_iterations=40, bayes_burn_in=10, n_factors=8, y_range=(0, 6.5))
    model, result = fit_rater(train, cfg, CPU, valid)
    return data, train, valid, cfg, model, result


def test_the_blend_beats_its_dot_half_and_every_path_predicts_the_same(blend, tmp_path):
    data, train, valid, cfg, model, result = blend
    assert isinstance(model, BayesBlend) and model.kind == "bayes"
    pred = model.predict(valid.users, valid.items)
    dot = model.dot.predict(valid.users, valid.items)
    assert rmse(pred, valid.ratings) < rmse(dot, valid.ratings)
    assert result.final.valid_rmse == pytest.approx(rmse(pred, valid.ratings), abs=1e-5)
    assert len(result.history) == cfg.epochs + 1  # the dot half's epochs, then the blend
    with torch.no_grad():
        forward = model(torch.as_tensor(valid.users), torch.as_tensor(valid.items)).double().numpy()
    np.testing.assert_allclose(forward, pred, atol=1e-5)
    lo, hi = float(train.ratings.min()), float(train.ratings.max())
    assert lo <= pred.min() and pred.max() <= hi  # within the ratings seen (and the dot half's range)
    # a made-up user placed exactly on a known user's vectors gets that user's predictions
    vec, bias = model.user_vectors()
    users = valid.users[:50]
    np.testing.assert_allclose(
        model.predict_for(vec.double().numpy()[users], bias.double().numpy()[users], valid.items[:50]),
        pred[:50],
        atol=1e-4,
    )
    # the ranker ranks by the Bayesian part: its product is the linear prediction
    U, V = model.as_ranker().factors()
    np.testing.assert_allclose(
        (U[valid.users] * V[valid.items]).sum(1).double().numpy(),
        model.linear(valid.users, valid.items) - float(model.mu),
        atol=1e-4,
    )
    path = save_model(tmp_path / "rater.safetensors", model, np.arange(data.n_users), np.arange(data.n_items), cfg)
    loaded = load_model(path).model
    np.testing.assert_array_equal(loaded.predict(valid.users, valid.items), pred)


def test_warm_start_keeps_the_configured_blend_weight(blend):
    data, train, valid, cfg, model, _ = blend
    model.weight.fill_(0.05)  # yesterday's tuned weight must not override today's setting
    again, _ = fit_rater(train, cfg, CPU, valid, init=model, epochs=1)
    assert float(again.weight) == cfg.bayes_weight


def test_the_rating_boost_adds_a_scaled_product_and_survives_a_round_trip(blend, tmp_path):
    data, train, valid, cfg, model, _ = blend
    rank = RankConfig(ranker="ials", rank_factors=8, rank_iterations=3, relevance_threshold=3.0)
    plain = fit_ranker(train, rank, CPU, 0, model)
    boosted = fit_ranker(train, rank.model_copy(update={"rating_boost": 0.5}), CPU, 0, model)
    assert isinstance(boosted, BoostedRanker) and boosted.coef > 0
    users = torch.arange(10)
    P, Q = model.as_ranker().factors()
    expected = plain.score_block(users).clone() + boosted.coef * (P[users] @ Q.T)
    torch.testing.assert_close(boosted.score_block(users), expected)
    U, V = boosted.factors()  # still a product, for the fused scorer
    torch.testing.assert_close(U[users] @ V.T, expected, rtol=1e-4, atol=1e-4)
    pairs_u, pairs_i = np.repeat(np.arange(10), 3), np.tile(np.arange(3), 10)
    np.testing.assert_allclose(
        boosted.score_pairs(pairs_u, pairs_i), expected.double().numpy()[pairs_u, pairs_i], rtol=1e-4, atol=1e-4
    )
    loaded = load_ranker(save_ranker(tmp_path / "ranker.safetensors", boosted))
    torch.testing.assert_close(loaded.score_block(users), boosted.score_block(users))
    # EASE has no product: scores are still the sum; a boosted ranker warm-starts iALS from its base factors
    ease = fit_ranker(train, rank.model_copy(update={"ranker": "ease", "rating_boost": 0.5}), CPU, 0, model)
    assert isinstance(ease, BoostedRanker) and ease.factors() is None
    again = fit_ranker(train, rank.model_copy(update={"rating_boost": 0.5}), CPU, 0, model, init=boosted)
    assert again.base.user_factors.shape == boosted.base.user_factors.shape


def test_a_gibbs_draw_is_the_closed_form_conditional():
    """One side's draw, written out in numpy: ``w = P^-1 b + L^-T z`` with ``P = L L^T`` (module docstring)."""
    rng = np.random.default_rng(3)
    n_rows, n_other, d, alpha, mu = 7, 9, 4, 1.7, 3.2
    rows = rng.integers(0, n_rows, 60)
    cols = rng.integers(0, n_other, 60)
    ratings = rng.uniform(1, 5, 60)
    other = rng.normal(0, 0.5, (n_other, d))
    half = rng.normal(0, 0.3, (d, d))
    prec, m = np.eye(d) + half @ half.T, rng.normal(0, 0.2, d)
    z = rng.standard_normal((n_rows, d))
    indptr, cols_csr, ratings_csr = _csr(rows, cols, ratings, n_rows)
    outer = np.empty((n_other, d * (d + 1) // 2))
    _outer_products(other, alpha, outer)
    drawn, alone = np.zeros((n_rows, d)), np.zeros((n_rows, d))
    csr, packed = (indptr, cols_csr, ratings_csr), prec[_column_packing(d)]
    _sample_rows(*csr, mu, other, outer, packed, prec @ m, z, drawn, row_runs(indptr, d, 3))
    _sample_rows(*csr, mu, other, outer, packed, prec @ m, z, alone, row_runs(indptr, d, 1))
    np.testing.assert_array_equal(drawn, alone)  # a row's draw does not depend on how the rows are split
    for r in range(n_rows):
        mine = rows == r
        x = np.column_stack([np.ones(mine.sum()), other[cols[mine], 1:]])
        target = ratings[mine] - mu - other[cols[mine], 0]
        P = prec + alpha * x.T @ x
        b = prec @ m + alpha * x.T @ target
        L = np.linalg.cholesky(P)
        np.testing.assert_allclose(drawn[r], np.linalg.solve(P, b) + np.linalg.solve(L.T, z[r]), rtol=1e-10)
    W = rng.normal(0, 0.5, (n_rows, d))
    resid = ratings - mu - W[rows, 0] - other[cols, 0] - (W[rows, 1:] * other[cols, 1:]).sum(1)
    sums = _squared_residuals(indptr, cols_csr, ratings_csr, mu, W, other)
    np.testing.assert_allclose(sums, np.bincount(rows, resid**2, n_rows), rtol=1e-12)


def test_a_blend_given_its_fitted_dot_half_is_the_blend_fitted_whole(blend):
    """The search hands the blend trial its climbed dot model (``fit_rater(dot_half=)``) instead of fitting the
    same dot model again: the blend and its history are the same."""
    data, train, valid, cfg, _, _ = blend
    model, result = fit_rater(train, cfg, CPU, valid)  # the fixture's model is changed by other tests
    dot = fit_rater(train, cfg.model_copy(update={"rating_model": "dot"}), CPU, valid)
    given, given_result = fit_rater(train, cfg, CPU, valid, dot_half=dot)
    np.testing.assert_array_equal(given.predict(valid.users, valid.items), model.predict(valid.users, valid.items))
    assert [h.valid_rmse for h in given_result.history] == [h.valid_rmse for h in result.history]


def test_the_weight_scan_predicts_as_the_blend_does_at_each_weight(blend):
    """``predict_at`` (both halves once, then each weight) gives ``predict``'s numbers at every weight."""
    data, train, valid, cfg, _, _ = blend
    model, _ = fit_rater(train, cfg, CPU, valid)
    weights = [0.0, 0.35, 1.0]
    scanned = list(model.predict_at(valid.users, valid.items, weights))
    for w, pred in zip(weights, scanned):
        model.weight.fill_(w)
        np.testing.assert_array_equal(pred, model.predict(valid.users, valid.items))
    assert not np.array_equal(scanned[0], scanned[2])
