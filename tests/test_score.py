"""Blocked top-N scoring against a brute-force float64 reference (recmodel.score)."""
import numpy as np
import pytest
import torch

from recmodel.score import brute_force_top_n, csr_from_pairs, top_n_unseen, top_n_unseen_blocks


def random_case(seed, n_users=37, n_items=53, d=6, density=0.3, integer=False):
    rng = np.random.default_rng(seed)
    if integer:  # small integers make many exact ties, in float32 and float64 alike
        uf = rng.integers(-2, 3, (n_users, d)).astype(np.float32)
        itf = rng.integers(-2, 3, (n_items, d)).astype(np.float32)
    else:
        uf = rng.normal(size=(n_users, d)).astype(np.float32)
        itf = rng.normal(size=(n_items, d)).astype(np.float32)
    mask = rng.random((n_users, n_items)) < density
    users, items = np.nonzero(mask)
    return uf, itf, users, items


def run(uf, itf, users, items, top_n, memory_mb=1, block_users=None):
    indptr, indices = csr_from_pairs(users, items, uf.shape[0])
    return top_n_unseen(torch.from_numpy(uf), torch.from_numpy(itf), indptr, indices, top_n, memory_mb=memory_mb,
                        block_users=block_users)


@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("users_per_block", [1, 5, 1000])
def test_blocked_equals_brute_force(integer, users_per_block):
    uf, itf, users, items = random_case(3, integer=integer)
    top = run(uf, itf, users, items, top_n=10, block_users=users_per_block)
    expected = brute_force_top_n(uf, itf, set(zip(users.tolist(), items.tolist())), 10)
    got = [[i for i in row if i >= 0] for row in top.items.tolist()]
    assert got == expected


def test_seen_items_never_recommended_and_exactly_top_n():
    uf, itf, users, items = random_case(5, density=0.5)
    top = run(uf, itf, users, items, top_n=8, memory_mb=1)
    seen = set(zip(users.tolist(), items.tolist()))
    assert (top.items >= 0).all()  # every user has >= 8 unseen items here
    assert not any((u, i) in seen for u, row in enumerate(top.items.tolist()) for i in row)
    assert all(len(set(row)) == 8 for row in top.items.tolist())
    assert np.all(np.diff(top.scores, axis=1) <= 0)


def test_users_with_few_unseen_items_get_shorter_lists():
    uf, itf, _, _ = random_case(1, n_users=3, n_items=5)
    users = np.array([0, 0, 0, 0, 1])
    items = np.array([0, 1, 2, 3, 4])
    top = run(uf, itf, users, items, top_n=3, memory_mb=1)
    assert top.items[0].tolist() == [4, -1, -1] and np.isnan(top.scores[0, 1:]).all()
    assert (top.items[1] >= 0).all() and (top.items[2] >= 0).all()


def test_top_n_larger_than_catalog():
    uf, itf, users, items = random_case(2, n_users=4, n_items=6, density=0.0)
    top = run(uf, itf, users, items, top_n=10, memory_mb=1)
    assert top.items.shape == (4, 10) and (top.items[:, :6] >= 0).all() and (top.items[:, 6:] == -1).all()


def test_all_ties_break_by_item_index():
    uf = np.zeros((2, 3), np.float32)
    itf = np.zeros((7, 3), np.float32)
    top = run(uf, itf, np.array([0]), np.array([2]), top_n=4, memory_mb=1)
    assert top.items.tolist() == [[0, 1, 3, 4], [0, 1, 2, 3]]


def test_rejects_contradictory_arguments():
    uf, itf, users, items = random_case(0)
    indptr, indices = csr_from_pairs(users, items, uf.shape[0])
    with pytest.raises(ValueError, match="top_n"):
        top_n_unseen(torch.from_numpy(uf), torch.from_numpy(itf), indptr, indices, 0)
    with pytest.raises(ValueError, match="factor sizes"):
        top_n_unseen(torch.from_numpy(uf), torch.from_numpy(itf[:, :2]), indptr, indices, 3)


def test_block_size_respects_budget():
    sizes = []
    top_n_unseen_blocks(lambda b: sizes.append(b.numel()) or torch.zeros(b.numel(), 1000), 1000,
                        np.zeros(5001, np.int64), np.zeros(0, np.int64), 3, np.arange(5000), memory_mb=1)
    assert max(sizes) * 1000 * 8 <= 2**20 and sum(sizes) == 5000
