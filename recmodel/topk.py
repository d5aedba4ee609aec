"""Exact top-k of score rows on the CPU, seen items masked, in one pass over each row (numba).

``torch.topk`` on a (users x 59k items) block costs more than the matrix product that made it, so at
ML-25M scale selection, not arithmetic, set the pace. This kernel reads each row once:

1. set the row's seen (and globally excluded) items to ``-inf`` in place;
2. fold the row into ``G = ceil(n / W)`` group maxima, group ``c`` being items ``c, c + G, c + 2G, ...``
   (an element-wise max of W slices: vectorises without horizontal reductions);
3. ``thr`` = the k-th largest group maximum: k different groups each hold an item >= thr, so every
   top-k item is >= thr and lies in a group whose maximum is >= thr (about k of the G groups);
4. visit only those groups and keep items >= thr as 64-bit keys that sort as (score desc, item asc),
   so ties break by item index exactly as the float64 reference does; a sort of the survivors (about
   1.5 k) gives the ordered list.

Scores must not be NaN (the callers check the factors). ``-inf`` marks a masked item; a row with
fewer than k unmasked items is padded with item ``-1`` and score NaN.
"""
from __future__ import annotations

import numpy as np
from numba import njit

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
        seg, acc = row[lo:hi], out[:hi - lo]  # slices: LLVM then sees two plain arrays and vectorises (5x)
        for c in range(seg.shape[0]):
            if seg[c] > acc[c]:
                acc[c] = seg[c]


@njit(nogil=True, cache=True)
def _kth_largest(values: np.ndarray, k: int, scratch: np.ndarray) -> float:
    """The k-th largest (1-based) of ``values``: quickselect (Hoare, median of three) in ``scratch``.
    Twice as fast as numba's ``np.partition``, which copies and sorts more than it needs."""
    n = values.shape[0]
    for i in range(n):
        scratch[i] = values[i]
    lo, hi, target = 0, n - 1, k - 1  # target: position in descending order
    while lo < hi:
        mid = (lo + hi) >> 1
        x, y, z = scratch[lo], scratch[mid], scratch[hi]
        if x < y:
            x, y = y, x
        if y < z:
            y, z = z, y
        if x < y:
            x, y = y, x
        pivot = y
        i, j = lo, hi
        while i <= j:
            while scratch[i] > pivot:
                i += 1
            while scratch[j] < pivot:
                j -= 1
            if i <= j:
                scratch[i], scratch[j] = scratch[j], scratch[i]
                i += 1
                j -= 1
        if target <= j:  # [lo, j] >= pivot >= [i, hi]; between them, == pivot
            hi = j
        elif target >= i:
            lo = i
        else:
            return pivot
    return scratch[lo]


@njit(nogil=True, cache=True)
def _key(bits: np.uint32, j: int) -> np.uint64:
    """Ascending key = descending float32 value, then ascending index (IEEE bits made order-preserving)."""
    ordered = (bits ^ np.uint32(0xFFFFFFFF)) if bits & np.uint32(0x80000000) else (bits | np.uint32(0x80000000))
    return (np.uint64(np.uint32(0xFFFFFFFF) - ordered) << np.uint64(32)) | np.uint64(j)


@njit(nogil=True, cache=True)
def top_k_rows(scores: np.ndarray, bits: np.ndarray, rows: np.ndarray, seen_indptr: np.ndarray,
               seen_indices: np.ndarray, excluded: np.ndarray, k: int,
               out_items: np.ndarray, out_scores: np.ndarray) -> None:
    """For each row ``r`` of ``scores`` (user ``rows[r]``): its top-k unseen items into ``out_items[r]``.

    ``bits`` is ``scores.view(np.uint32)``. ``scores`` is modified (masked items become -inf).
    """
    b, n = scores.shape
    top_n = out_items.shape[1]
    G = (n + W - 1) // W
    group = np.empty(G, np.float32)
    scratch = np.empty(G, np.float32)
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
            thr = _kth_largest(group, k, scratch)
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
