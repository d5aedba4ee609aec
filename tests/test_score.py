"""Blocked top-N scoring against a brute-force float64 reference (recmodel.score)."""

import numpy as np
import pytest
import torch

from recmodel.score import brute_force_top_n, top_n_shared, top_n_unseen, top_n_unseen_blocks
from recmodel.sparse import csr_from_pairs


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


def run(uf, itf, users, items, top_n, memory_mb=1, block_users=None, engine="auto"):
    indptr, indices = csr_from_pairs(users, items, uf.shape[0])
    return top_n_unseen(
        torch.from_numpy(uf),
        torch.from_numpy(itf),
        indptr,
        indices,
        top_n,
        memory_mb=memory_mb,
        block_users=block_users,
        engine=engine,
    )


@pytest.mark.parametrize("engine", ["numba", "torch"])
@pytest.mark.parametrize("integer", [False, True])
@pytest.mark.parametrize("users_per_block", [1, 5, 1000])
def test_blocked_equals_brute_force(integer, users_per_block, engine):
    uf, itf, users, items = random_case(3, integer=integer)
    top = run(uf, itf, users, items, top_n=10, block_users=users_per_block, engine=engine)
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
    top_n_unseen_blocks(
        lambda b: sizes.append(b.numel()) or torch.zeros(b.numel(), 1000),
        1000,
        np.zeros(5001, np.int64),
        np.zeros(0, np.int64),
        3,
        np.arange(5000),
        memory_mb=1,
    )
    assert max(sizes) * 1000 * 8 <= 2**20 and sum(sizes) == 5000


def reference(uf, itf, users, items, top_n, excluded=()):
    """float64 scores, seen and excluded items removed, order (score desc, item asc)."""
    scores = uf.astype(np.float64) @ itf.astype(np.float64).T
    scores[users, items] = -np.inf
    scores[:, list(excluded)] = -np.inf
    out = []
    for row in scores:
        order = np.lexsort((np.arange(row.size), -row))[:top_n]
        out.append([int(i) for i in order if np.isfinite(row[i])])
    return out


@pytest.mark.parametrize("engine", ["numba", "torch"])
@pytest.mark.parametrize("integer", [False, True])
def test_large_catalog_prunes_exactly(engine, integer):
    """Catalogs much wider than 32 x top_n take the grouped-maximum pruning path of the CPU kernel; with
    integer factors many scores tie across groups and at the top-N boundary."""
    uf, itf, users, items = random_case(11, n_users=40, n_items=4000, d=4, density=0.05, integer=integer)
    excluded = [7, 100, 3999]
    indptr, indices = csr_from_pairs(users, items, uf.shape[0])
    top = top_n_unseen(
        torch.from_numpy(uf),
        torch.from_numpy(itf),
        indptr,
        indices,
        25,
        memory_mb=1,
        engine=engine,
        exclude_items=np.array(excluded),
    )
    assert [[i for i in row if i >= 0] for row in top.items.tolist()] == reference(uf, itf, users, items, 25, excluded)


@pytest.mark.parametrize("engine", ["numba", "torch"])
def test_generic_scorer_matches_factor_path(engine):
    """top_n_unseen_blocks (any scorer) and top_n_unseen (fused factor tiles) give the same lists."""
    uf, itf, users, items = random_case(12, n_users=30, n_items=3000, d=5, density=0.1, integer=True)
    indptr, indices = csr_from_pairs(users, items, uf.shape[0])
    U, V = torch.from_numpy(uf), torch.from_numpy(itf)
    a = top_n_unseen_blocks(lambda b: U[b] @ V.T, 3000, indptr, indices, 40, np.arange(30), memory_mb=1, engine=engine)
    b = top_n_unseen(U, V, indptr, indices, 40, engine="numba")
    assert np.array_equal(a.items, b.items)
    assert np.allclose(a.scores, b.scores)


def test_all_equal_scores_force_repeated_compaction():
    """Every score equal: each candidate passes the bar, the kernel's buffer overflows again and again;
    the result must still be the lowest unseen item indices."""
    n = 5000
    uf, itf = np.ones((3, 2), np.float32), np.zeros((n, 2), np.float32)
    users, items = np.array([0, 0, 1]), np.array([0, 2, 4999])
    top = run(uf, itf, users, items, top_n=30, engine="numba")
    assert top.items[0].tolist() == [1] + list(range(3, 32))
    assert top.items[2].tolist() == list(range(30))


def test_nearly_everything_seen():
    """A user who has rated all but 3 items of a wide catalog gets exactly those 3, padded with -1."""
    n = 3000
    rng = np.random.default_rng(0)
    uf, itf = rng.normal(size=(2, 4)).astype(np.float32), rng.normal(size=(n, 4)).astype(np.float32)
    items = np.setdiff1d(np.arange(n), [5, 1500, 2999])
    top = run(uf, itf, np.zeros(items.size, np.int64), items, top_n=10, engine="numba")
    assert sorted(top.items[0, :3].tolist()) == [5, 1500, 2999] and (top.items[0, 3:] == -1).all()
    assert np.isnan(top.scores[0, 3:]).all() and (top.items[1] >= 0).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shared_scores_give_the_lists_of_scoring_every_row(seed):
    """Popularity (one score row for everyone) is read off one global order (``top_n_shared``): the same
    items, ties (many equal counts) and padding (a user who has seen all but 2 items, an excluded item) as
    the product path scoring every user's row."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 300, 500
    counts = rng.integers(0, 6, n_items).astype(np.float32)  # few distinct values: ties everywhere
    mask = rng.random((n_users, n_items)) < 0.2
    mask[7] = True
    mask[7, [3, 499]] = False
    users, items = np.nonzero(mask)
    indptr, indices = csr_from_pairs(users, items, n_users)
    excluded = np.array([i for i in (int(np.argmax(counts)), 11) if i not in (3, 499)])
    wanted = rng.permutation(n_users)[:200]
    wanted = np.concatenate([[7], wanted[wanted != 7]])
    shared = top_n_shared(torch.from_numpy(counts), indptr, indices, 12, wanted, excluded)
    U, V = torch.ones(n_users, 1), torch.from_numpy(counts)[:, None]
    scored = top_n_unseen(U, V, indptr, indices, 12, users=wanted, exclude_items=excluded, engine="numba")
    assert np.array_equal(shared.users, scored.users) and np.array_equal(shared.items, scored.items)
    assert np.array_equal(shared.scores, scored.scores, equal_nan=True)
    assert sorted(shared.items[0, :2].tolist()) == [3, 499] and (shared.items[0, 2:] == -1).all()


def test_nan_factors_are_refused():
    uf, itf, users, items = random_case(0)
    uf[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        run(uf, itf, users, items, top_n=5)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_csr_order_is_the_stable_grouping_and_the_row_then_column_order(dtype):
    """The counting sorts give exactly what the comparison sorts give: rows grouped in input order
    (``argsort(kind="stable")``), or by row then column (``lexsort``), duplicates and empty rows included."""
    from recmodel.sparse import csr_order

    rng = np.random.default_rng(5)
    rows, cols = rng.integers(0, 40, 3000).astype(dtype), rng.integers(0, 25, 3000).astype(dtype)
    indptr, order = csr_order(rows, 45)
    assert np.array_equal(order, np.argsort(rows, kind="stable"))
    assert np.array_equal(indptr, np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=45))]))
    indptr2, order2 = csr_order(rows, 45, cols, 25)
    assert np.array_equal(order2, np.lexsort((cols, rows))) and np.array_equal(indptr2, indptr)
    assert csr_order(np.zeros(0, dtype), 3)[0].tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"\[0, 39\)"):
        csr_order(rows, 39)  # a row index past the end is refused, never written out of bounds
    with pytest.raises(ValueError, match="column"):
        csr_order(rows, 45, cols - 1, 25)


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_csr_both_ways_is_the_row_then_column_and_the_column_then_row_grouping(dtype):
    """iALS's two CSR matrices from three counting passes: exactly the ``lexsort`` groupings each way, values
    moved with their entries, duplicates in input order, empty rows and columns included."""
    from recmodel.sparse import csr_both_ways

    rng = np.random.default_rng(6)
    rows, cols = rng.integers(0, 40, 3000).astype(dtype), rng.integers(0, 25, 3000).astype(dtype)
    values = rng.standard_normal(3000)  # float64 in, float32 out
    by_row, by_col = csr_both_ways(rows, cols, values, 45, 27)
    for (indptr, indices, vals), (major, minor, n) in ((by_row, (rows, cols, 45)), (by_col, (cols, rows, 27))):
        order = np.lexsort((minor, major))
        assert np.array_equal(indptr, np.concatenate([[0], np.cumsum(np.bincount(major, minlength=n))]))
        assert indices.dtype == np.int64 and np.array_equal(indices, minor[order])
        assert vals.dtype == np.float32 and np.array_equal(vals, values.astype(np.float32)[order])
    empty = csr_both_ways(np.zeros(0, dtype), np.zeros(0, dtype), np.zeros(0), 2, 3)
    assert empty[0][0].tolist() == [0, 0, 0] and empty[1][0].tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="column"):
        csr_both_ways(rows, cols, values, 45, 20)


def test_even_runs_split_skewed_rows_into_runs_of_about_equal_work():
    """A ``prange`` over ``row_runs`` keeps both threads busy on a catalog whose popular items come first: every
    row in exactly one run, in order, and no run holds more than its share plus one row's work."""
    from recmodel.sparse import even_runs, row_runs

    degrees = (5000 / np.arange(1, 2001) ** 1.1).astype(np.int64)  # popular first, a long tail of empty rows
    indptr = np.concatenate([[0], np.cumsum(degrees)])
    for runs, row_cost in ((8, 3.0), (5, 0.0), (1, 10.0), (64, 1.0)):
        bounds = row_runs(indptr, row_cost, runs)
        assert bounds.size == runs + 1 and bounds[0] == 0 and bounds[-1] == degrees.size
        assert np.all(np.diff(bounds) >= 0)
        work = degrees + row_cost
        per_run = np.array([work[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])
        assert per_run.sum() == work.sum() and per_run.max() <= work.sum() / runs + work.max()
    assert even_runs(np.zeros(4), 3).tolist() == [0, 0, 0, 3]  # no work: every row still in a run
