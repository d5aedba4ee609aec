"""Train/test splits of one set of ratings: seeded random, temporal, and each user's latest; and the night's
own validation split."""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .permute import permutation
from .ratings import Ratings


def random_split(n: int, valid_pct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, valid)``: a seeded random ``valid_pct`` share goes to validation."""
    perm = np.random.default_rng(seed).permutation(n)
    valid = np.zeros(n, dtype=bool)
    valid[perm[: int(round(n * valid_pct))]] = True
    return np.flatnonzero(~valid), np.flatnonzero(valid)  # both sorted, without sorting


@njit(parallel=True, cache=True)
def _parts(
    valid: np.ndarray, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """``users``, ``items`` and ``ratings`` where ``valid`` is False, then where it is True, each in order,
    counted and copied over ``chunks`` consecutive shares in parallel (the fresh pages are touched on every
    core: most of the time of a one-thread gather at 10M ratings)."""
    n = valid.size
    before = np.zeros(chunks + 1, np.int64)  # valid entries before each chunk
    for c in prange(chunks):
        k = 0
        for p in range(c * n // chunks, (c + 1) * n // chunks):
            k += valid[p]
        before[c + 1] = k
    before = np.cumsum(before)
    n_valid = before[chunks]
    tu, ti, tr = (
        np.empty(n - n_valid, users.dtype),
        np.empty(n - n_valid, items.dtype),
        np.empty(n - n_valid, ratings.dtype),
    )
    vu, vi, vr = np.empty(n_valid, users.dtype), np.empty(n_valid, items.dtype), np.empty(n_valid, ratings.dtype)
    for c in prange(chunks):
        lo = c * n // chunks
        v, t = before[c], lo - before[c]
        for p in range(lo, (c + 1) * n // chunks):
            if valid[p]:
                vu[v], vi[v], vr[v] = users[p], items[p], ratings[p]
                v += 1
            else:
                tu[t], ti[t], tr[t] = users[p], items[p], ratings[p]
                t += 1
    return tu, ti, tr, vu, vi, vr


def validation_split(r: Ratings, valid_pct: float, seed: int) -> tuple[Ratings, Ratings]:
    """The part a night trains on and its validation part: a seeded random ``valid_pct`` of the ratings,
    each part in the ratings' order.

    Drawn with ``permute.permutation`` and taken on every core (``random_split``'s one-thread numpy
    permutation and its gathers took 0.9 s of an ML-10M night); the test splits that measure accuracy
    (``split_random``, the benches, the evaluate flow) keep numpy's draws, so every recorded number stays
    comparable."""
    n = len(r)
    valid = np.zeros(n, dtype=np.bool_)
    valid[permutation(n, seed)[: int(round(n * valid_pct))]] = True
    if r.timestamps.size:  # a night's ratings come without their times; with them, numpy's gathers
        return r.take(~valid), r.take(valid)
    tu, ti, tr, vu, vi, vr = _parts(valid, r.users, r.items, r.ratings, max(1, min(64, n >> 16)))
    return (
        Ratings(tu, ti, tr, r.timestamps, r.n_users, r.n_items, r.feedback),
        Ratings(vu, vi, vr, r.timestamps, r.n_users, r.n_items, r.feedback),
    )


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
