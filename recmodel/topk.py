"""Exact top-k of score rows on the CPU, seen items masked, in one pass over each row (numba).

``torch.topk`` on a (users x 59k items) block costs more than the matrix product that made it, so at
ML-25M scale selection, not arithmetic, set the pace. This kernel reads each row once:

1. set the row's seen (and globally excluded) items to ``-inf`` in place;
2. fold the row into ``G = ceil(n / W)`` group maxima, group ``c`` being items ``c, c + G, c + 2G, ...``
   (an element-wise max of W slices: vectorises without horizontal reductions);
3. ``thr`` <= the k-th largest group maximum (a radix select, rounded down): k different groups each
   hold an item >= thr, so every top-k item is >= thr and lies in a group whose maximum is >= thr
   (about k of the G groups);
4. visit only those groups and keep items >= thr as 64-bit keys that sort as (score desc, item asc),
   so ties break by item index exactly as the float64 reference does; a sort of the survivors (about
   1.5 k) gives the ordered list.

Scores must not be NaN (the callers check the factors). ``-inf`` marks a masked item; a row with
fewer than k unmasked items is padded with item ``-1`` and score NaN.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

W = 32  # items per group: G = n / W group maxima per row (small enough to partition in microseconds)
# no 'ninf': -inf is our mask value; no NaN is the callers' contract, and it lets max() vectorise
_FASTMATH = {"nnan", "nsz", "reassoc"}


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _group_max(row: np.ndarray, G: int, out: np.ndarray) -> None:
    n = row.shape[0]
    for c in range(G):
        out[c] = row[c]
    for t in range(1, W):
        lo = t * G
        hi = min(lo + G, n)
        seg, acc = row[lo:hi], out[: hi - lo]  # slices: LLVM then sees two plain arrays and vectorises
        for c in range(seg.shape[0]):
            if seg[c] > acc[c]:
                acc[c] = seg[c]


@njit(nogil=True, cache=True)
def _ordered(bits: np.uint32) -> np.uint32:
    """float32 bits -> uint32 that sorts like the float (negatives reversed, sign bit flipped)."""
    return (bits ^ np.uint32(0xFFFFFFFF)) if bits & np.uint32(0x80000000) else (bits | np.uint32(0x80000000))


@njit(nogil=True, cache=True)
def _bar(values: np.ndarray, k: int, hist: np.ndarray) -> float:
    """A value with at least ``k`` of ``values`` >= it, and few more: the k-th largest rounded down to
    16 significant bits, found by a two-pass radix select (histograms of the top 8 bits, then the next
    8, of the order-preserving key). Branch-free counting: a quickselect's data-dependent branches
    mispredict on every new row (docs/scaling.md has the measurement)."""
    keys = values.view(np.uint32)
    prefix, above = np.uint32(0), 0
    for shift in (24, 16):
        hist[:] = 0
        for i in range(keys.shape[0]):
            key = _ordered(keys[i])
            # counts only keys that share the prefix chosen so far (all of them in the first pass)
            hist[(key >> np.uint32(shift)) & np.uint32(0xFF)] += (key >> np.uint32(shift + 8)) == (
                prefix >> np.uint32(shift + 8)
            )
        bucket = 255
        while above + hist[bucket] < k:
            above += hist[bucket]
            bucket -= 1
        prefix |= np.uint32(bucket) << np.uint32(shift)
    bits = (prefix ^ np.uint32(0x80000000)) if prefix & np.uint32(0x80000000) else (prefix ^ np.uint32(0xFFFFFFFF))
    bar = np.array([bits], dtype=np.uint32).view(np.float32)[0]
    return bar if bar == bar else -np.inf  # rounding -inf's key down lands on a NaN pattern


@njit(nogil=True, cache=True)
def _key(bits: np.uint32, j: int) -> np.uint64:
    """Ascending key = descending float32 value, then ascending index."""
    return (np.uint64(np.uint32(0xFFFFFFFF) - _ordered(bits)) << np.uint64(32)) | np.uint64(j)


@njit(nogil=True, cache=True)
def top_k_rows(
    scores: np.ndarray,
    bits: np.ndarray,
    rows: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    excluded: np.ndarray,
    k: int,
    out_items: np.ndarray,
    out_scores: np.ndarray,
) -> None:
    """For each row ``r`` of ``scores`` (user ``rows[r]``): its top-k unseen items into ``out_items[r]``.

    ``bits`` is ``scores.view(np.uint32)``. ``scores`` is modified (masked items become -inf).
    """
    b, n = scores.shape
    top_n = out_items.shape[1]
    G = (n + W - 1) // W
    group = np.empty(G, np.float32)
    hist = np.empty(256, np.int64)
    cap = 4 * k + W
    keys = np.empty(cap + W, np.uint64)
    neg_inf = np.float32(-np.inf)
    for r in range(b):
        s = scores[r]
        u = rows[r]
        for p in range(seen_indptr[u], seen_indptr[u + 1]):
            s[seen_indices[p]] = neg_inf
        for p in range(excluded.shape[0]):
            s[excluded[p]] = neg_inf
        _group_max(s, G, group)
        thr = neg_inf
        if G > k:
            thr = _bar(group, k, hist)  # type: ignore[assignment]  # numba unifies the float types
        m = 0
        for c in range(G):
            if group[c] >= thr:
                for t in range(W):
                    j = c + t * G
                    if j < n and s[j] >= thr:
                        keys[m] = _key(bits[r, j], j)
                        m += 1
                if m >= cap:  # many ties (or masked rows): keep the k best and raise the bar
                    best = np.partition(keys[:m], k - 1)[:k]
                    keys[:k] = best
                    m = k
                    thr = s[int(best.max() & np.uint64(0xFFFFFFFF))]
        ordered = np.sort(keys[:m])[:k]
        m = ordered.shape[0]
        for t in range(top_n):
            if t < m:
                j = int(ordered[t] & np.uint64(0xFFFFFFFF))
                v = s[j]
                if np.isfinite(v):
                    out_items[r, t] = j
                    out_scores[r, t] = v
                    continue
            out_items[r, t] = -1
            out_scores[r, t] = np.nan


@njit(parallel=True, cache=True)
def top_k_shared(
    order: np.ndarray,
    rows: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    banned: np.ndarray,
    parts: np.ndarray,
    out_items: np.ndarray,
) -> None:
    """Top-k unseen items when every user has the same scores (popularity): ``order`` is every item by
    (score desc, index asc), and user ``rows[r]`` gets the first ``out_items.shape[1]`` items of it that it
    has not seen and ``banned`` does not exclude (padded with ``-1``): the same lists as scoring each row,
    at ``O(seen + k)`` a user instead of ``O(n_items)``. ``parts``: the rows in runs of even work
    (``sparse.even_runs``), one per task, each with its own marks (the user's seen items, set and cleared
    again)."""
    k = out_items.shape[1]
    for part in prange(parts.size - 1):
        mark = banned.copy()
        for r in range(parts[part], parts[part + 1]):
            u = rows[r]
            for p in range(seen_indptr[u], seen_indptr[u + 1]):
                mark[seen_indices[p]] = True
            found, j = 0, 0
            while found < k and j < order.shape[0]:
                item = order[j]
                if not mark[item]:
                    out_items[r, found] = item
                    found += 1
                j += 1
            for t in range(found, k):
                out_items[r, t] = -1
            for p in range(seen_indptr[u], seen_indptr[u + 1]):
                mark[seen_indices[p]] = banned[seen_indices[p]]
