"""Train/test splits of one set of ratings: seeded random, temporal, and each user's latest."""

from __future__ import annotations

import numpy as np

from .ratings import Ratings


def random_split(n: int, valid_pct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, valid)``: a seeded random ``valid_pct`` share goes to validation."""
    perm = np.random.default_rng(seed).permutation(n)
    valid = np.zeros(n, dtype=bool)
    valid[perm[: int(round(n * valid_pct))]] = True
    return np.flatnonzero(~valid), np.flatnonzero(valid)  # both sorted, without sorting


def _need_times(r: Ratings) -> None:
    if len(r) and r.timestamps.size != len(r):
        raise ValueError(
            "these ratings were loaded without their timestamps: load them with timestamps to split by time"
        )


def split_random(r: Ratings, test_pct: float, seed: int) -> tuple[Ratings, Ratings]:
    """A seeded random ``test_pct`` of all ratings is the test part."""
    train, test = random_split(len(r), test_pct, seed)
    return r.take(train), r.take(test)


def split_temporal(r: Ratings, test_pct: float) -> tuple[Ratings, Ratings]:
    """The latest ``test_pct`` of ratings by timestamp (one global cut) is the test part."""
    _need_times(r)
    order = np.lexsort((np.arange(len(r)), r.timestamps))
    n_test = int(round(len(r) * test_pct))
    return r.take(np.sort(order[: len(r) - n_test])), r.take(np.sort(order[len(r) - n_test :]))


def split_leave_last(r: Ratings, n: int) -> tuple[Ratings, Ratings]:
    """Each user's ``n`` latest ratings are the test part; users with ``n`` or fewer ratings stay in train."""
    _need_times(r)
    order = np.lexsort((np.arange(len(r)), -r.timestamps, r.users))  # per user, newest first
    counts = np.bincount(r.users, minlength=r.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(r)) - starts[r.users[order]]
    to_test = (rank < n) & (counts[r.users[order]] > n)
    return r.take(np.sort(order[~to_test])), r.take(np.sort(order[to_test]))
