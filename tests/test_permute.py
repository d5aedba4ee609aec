"""recmodel.permute: a seeded permutation on every core (the dot model's shuffle, the validation split)."""

from __future__ import annotations

import collections
import itertools

import numba
import numpy as np
import pytest

from recmodel.permute import BUCKET, CHUNK, permutation


@pytest.mark.parametrize("n", [0, 1, 2, 7, BUCKET - 1, BUCKET, BUCKET + 1, 2 * CHUNK + 3])
def test_every_position_exactly_once(n):
    p = permutation(n, 12345)
    assert p.dtype == np.int64
    assert np.array_equal(np.sort(p), np.arange(n))


def test_the_key_and_n_alone_decide_not_the_threads():
    n = 3 * CHUNK + 11  # several chunks and many buckets
    first = permutation(n, 42)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        alone = permutation(n, 42)
    finally:
        numba.set_num_threads(threads)
    assert np.array_equal(first, alone)
    assert np.array_equal(first, permutation(n, 42 + (1 << 64)))  # keys are taken mod 2**64
    assert not np.array_equal(first, permutation(n, 43))
    assert np.array_equal(permutation(5, -1), permutation(5, (1 << 64) - 1))


def test_all_orders_of_four_equally_likely():
    """One bucket: Fisher-Yates. 24 orders over 24,000 keys, a chi-squared test at 23 degrees of freedom
    (its 0.999 quantile is 49.7)."""
    seen = collections.Counter(tuple(permutation(4, key)) for key in range(24_000))
    assert set(seen) == set(itertools.permutations(range(4)))
    expected = 24_000 / 24
    chi2 = sum((count - expected) ** 2 / expected for count in seen.values())
    assert chi2 < 49.7, chi2


def test_positions_uniform_across_buckets():
    """Several buckets: where position 0 and the last position land is uniform over the whole output
    (chi-squared over 10 bins, 9 degrees of freedom: 0.999 quantile 27.9), and the two land independently
    of each other's bucket."""
    n, draws = 3 * BUCKET + 5, 3000
    first = np.empty(draws, np.int64)
    last = np.empty(draws, np.int64)
    for key in range(draws):
        p = permutation(n, key)
        first[key] = np.flatnonzero(p == 0)[0]
        last[key] = np.flatnonzero(p == n - 1)[0]
    for where in (first, last):
        counts = np.histogram(where, bins=10, range=(0, n))[0]
        chi2 = ((counts - draws / 10) ** 2 / (draws / 10)).sum()
        assert chi2 < 27.9, counts
    assert abs(np.mean(first < last) - 0.5) < 0.05  # 3 sigma at 3000 draws is 0.027


def test_refuses_a_negative_size():
    with pytest.raises(ValueError, match="n must be >= 0"):
        permutation(-1, 0)


def test_validation_split_is_a_seeded_share_in_the_ratings_order():
    from recmodel.ratings import Ratings
    from recmodel.splits import validation_split

    rng = np.random.default_rng(0)
    n = 2 * CHUNK + 17
    r = Ratings(rng.integers(0, 500, n), np.arange(n), rng.random(n).astype(np.float32), np.zeros(0, np.int64), 500, n)
    train, valid = validation_split(r, 0.2, 7)
    assert len(valid) == round(n * 0.2) and len(train) + len(valid) == n
    # every rating in exactly one part, each part in the ratings' order (item k is rating k here)
    assert np.all(np.diff(train.items) > 0) and np.all(np.diff(valid.items) > 0)
    assert np.array_equal(np.sort(np.concatenate([train.items, valid.items])), np.arange(n))
    assert np.array_equal(r.users[valid.items], valid.users) and np.array_equal(r.ratings[train.items], train.ratings)
    timed = Ratings(r.users, r.items, r.ratings, np.arange(n), 500, n)  # with times: numpy's gathers, the same parts
    assert np.array_equal(validation_split(timed, 0.2, 7)[1].items, valid.items)
    again, other = validation_split(r, 0.2, 7)[1], validation_split(r, 0.2, 8)[1]
    assert np.array_equal(again.items, valid.items) and not np.array_equal(other.items, valid.items)
