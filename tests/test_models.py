"""Model-specific checks (the shared behavioural suite every model passes is tests/test_behaviour.py)."""

import numpy as np
import pytest
import torch

from recmodel.config import RankConfig
from recmodel.models import EmbeddingNN
from recmodel.rankers import NeuralRanker, ease_gram, fit_ease, fit_ranker, sparse_gram_pays
from recmodel.ratings import Ratings
from recmodel.sparse import csr_both_ways, csr_order
from recmodel.splits import split_leave_last, split_random, split_temporal

N = 40
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkerboard() -> Ratings:
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
    n = len(users)
    return Ratings(np.array(users), np.array(items), np.array(ratings, np.float32), np.arange(n), N, N)


def test_neural_block_scores_equal_the_forward_pass():
    model = EmbeddingNN(7, 9, (0.0, 5.0), n_hidden=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()
    ranker = model.as_ranker()
    assert isinstance(ranker, NeuralRanker)
    users, items = torch.arange(7).repeat_interleave(9), torch.arange(9).repeat(7)
    assert torch.allclose(ranker.score_block(torch.arange(7)).flatten(), model.logits(users, items), atol=1e-5)


def test_ease_has_a_zero_diagonal_and_refuses_huge_catalogs(checkerboard):
    ease = fit_ease(checkerboard.users, checkerboard.items, np.ones(len(checkerboard), np.float32), N, N, lam=10.0)
    assert torch.all(torch.diagonal(ease.B) == 0)
    with pytest.raises(ValueError, match="use ranker='ials'"):
        fit_ease(np.array([0]), np.array([0]), np.ones(1, np.float32), 1, 30_000)
    with pytest.raises(ValueError, match="raise ease_lambda"):  # an item nobody rated and no L2: singular
        fit_ease(np.array([0, 1]), np.array([0, 1]), np.ones(2, np.float32), 2, 3, lam=0.0)


def test_ease_gram_sparse_sum_equals_the_dense_product():
    rng = np.random.default_rng(3)
    n_users, n_items = 200, 150
    pairs = rng.choice(n_users * n_items, 900, replace=False)  # one entry per pair, as a snapshot's
    users, items = pairs // n_items, pairs % n_items
    weights = rng.choice(np.array([1.0, 0.37, 2.5], np.float32), pairs.size)
    X = np.zeros((n_users, n_items))
    X[users, items] = weights
    indptr, order = csr_order(users, n_users, items, n_items)
    csr = (indptr, items[order], weights[order], n_items)
    sparse, dense = ease_gram(*csr, sparse=True), ease_gram(*csr, sparse=False)
    np.testing.assert_allclose(sparse.numpy(), X.T @ X, rtol=1e-12)
    np.testing.assert_allclose(dense.numpy(), X.T @ X, rtol=1e-12)
    assert sparse_gram_pays(indptr, n_items)  # 3% of the pairs: sparse; 70% of them: dense (below)
    assert not sparse_gram_pays(np.arange(0, 40 * 700 + 1, 700), 1000)


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


def test_the_fused_cpu_ials_kernel_takes_the_torch_sparse_steps():
    """The CPU's numba kernel and the GPU's torch sparse products are one algorithm: same steps, same factors
    (to float32 rounding), with duplicate pairs and users or items without any interaction."""
    from recmodel import ials

    rng = np.random.default_rng(0)
    n_users, n_items, n, f = 120, 90, 2500, 12
    users, items = rng.integers(0, n_users - 5, n), rng.integers(0, n_items - 5, n)  # the last rows have none
    weights = (rng.random(n) + 0.5).astype(np.float32)
    X, Y = torch.randn(n_users, f) * 0.1, torch.randn(n_items, f) * 0.1
    counts = torch.as_tensor(np.bincount(users, minlength=n_users), dtype=torch.float32)
    R, _ = csr_both_ways(users, items, weights, n_users, n_items)
    sparse = ials.solve_side(X, Y, ials.torch_csr(R, n_users, n_items, CPU), counts, 0.05, 0.1, 3)
    fused = ials.solve_side_cpu(X, Y, R, counts, 0.05, 0.1, 3)
    torch.testing.assert_close(fused, sparse, rtol=1e-4, atol=1e-5)
    assert not torch.equal(fused, X)  # it did move
    a = ials.fit_factors(users, items, weights, n_users, n_items, factors=f, iterations=4, seed=1)
    b = ials.fit_factors(users, items, weights, n_users, n_items, factors=f, iterations=4, seed=1, torch_sparse=True)
    torch.testing.assert_close(a[0] @ a[1].T, b[0] @ b[1].T, rtol=1e-3, atol=1e-4)
    again = ials.fit_factors(users, items, weights, n_users, n_items, factors=f, iterations=4, seed=1)
    assert torch.equal(a[0], again[0])  # deterministic


def test_the_ials_kernel_gives_the_same_bits_with_or_without_its_row_buffer(monkeypatch):
    """Rows of up to ``ials.BUFFER_BYTES`` keep their gathered vectors for the CG steps, longer rows gather
    them again at each step: the same operations in the same order, so the same bits, whatever the cut,
    and at every call."""
    from recmodel import ials

    rng = np.random.default_rng(3)
    n_users, n_items, n, f = 300, 40, 6000, 16
    users, items = rng.integers(0, n_users, n), (rng.pareto(1.0, n) * 3).astype(np.int64) % n_items
    weights = (rng.random(n) + 0.5).astype(np.float32)
    X, Y = torch.randn(n_users, f) * 0.1, torch.randn(n_items, f) * 0.1
    counts = torch.as_tensor(np.bincount(items, minlength=n_items), dtype=torch.float32)
    _, R_t = csr_both_ways(users, items, weights, n_users, n_items)
    lengths = np.diff(R_t[0])
    assert lengths.min() < 100 < lengths.max()  # the cut below falls between rows
    whole = ials.solve_side_cpu(Y, X, R_t, counts, 0.05, 0.1, 3)
    for cut in (100, 0):  # rows of more than `cut` entries gather at each step
        monkeypatch.setattr(ials, "BUFFER_BYTES", 4 * f * cut)
        assert torch.equal(ials.solve_side_cpu(Y, X, R_t, counts, 0.05, 0.1, 3), whole), cut
    assert not torch.equal(whole, Y)
    # and again and again: scratch vectors that lay close together made LLVM take its scalar loops in some
    # calls and not others (ials.GAP), so at small widths one input gave two answers, alternately
    again = [ials.solve_side_cpu(Y, X, R_t, counts, 0.05, 0.1, 3) for _ in range(6)]
    assert all(torch.equal(a, whole) for a in again)


def test_a_search_reuses_a_part_fitted_with_the_same_settings_and_refits_on_any_change(checkerboard):
    """``fit_ranker(memo=)``: the hybrid's iALS and EASE parts are reused when their own settings are unchanged
    (a share or boost trial), refitted when they change, and a reused part scores exactly as a fresh fit."""
    memo: dict = {}
    users = torch.arange(checkerboard.n_users)
    base = RankConfig(ranker="hybrid", rank_factors=8, rank_iterations=5, ease_lambda=50.0)

    def scores(cfg: RankConfig, memo=None) -> torch.Tensor:
        return fit_ranker(checkerboard, cfg, CPU, 0, memo=memo).score_block(users)

    scores(base, memo)
    ials, ease = memo["ials"][1], memo["ease"][1]
    share = base.model_copy(update={"hybrid_ials_share": 0.75})
    assert torch.equal(scores(share, memo), scores(share))  # reused parts, same scores as from scratch
    assert memo["ials"][1] is ials and memo["ease"][1] is ease
    lam = base.model_copy(update={"ease_lambda": 10.0})
    assert torch.equal(scores(lam, memo), scores(lam))
    assert memo["ials"][1] is ials and memo["ease"][1] is not ease  # EASE refitted, iALS kept
    reg = lam.model_copy(update={"rank_reg": 0.5, "relevance_threshold": 3.0})
    assert torch.equal(scores(reg, memo), scores(reg))
    assert memo["ials"][1] is not ials
