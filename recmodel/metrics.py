"""Rating and ranking metrics with exact definitions.

Ranking protocol (what every ``*_at_k`` here assumes):

* **candidates**: for each user, every item they did not rate in the training data; the model's list
  ``top[u]`` holds item indices from those candidates, best first, ``-1`` where a list is shorter;
* **relevant**: the user's held-out (test) items with rating >= a threshold (4 on a 5-star scale);
* user-averaged metrics are means over the users with at least one relevant item; users without
  relevant items cannot score and are left out (``n_users`` says how many were averaged).

Per user, with ``hit_r = 1`` when the item at rank ``r`` (1-based) is relevant and ``R`` relevant items:

* ``precision@k = sum_{r<=k} hit_r / k``  (divided by k even when the list is shorter);
* ``recall@k    = sum_{r<=k} hit_r / R``;
* ``hit_rate@k  = 1 if any hit_r else 0``;
* ``ndcg@k      = DCG / IDCG`` with ``DCG = sum_{r<=k} hit_r / log2(r + 1)`` and IDCG the DCG of a
  perfect list, ``sum_{r<=min(R,k)} 1 / log2(r + 1)``;
* ``map@k       = sum_{r<=k} hit_r * precision@r / min(R, k)``;
* ``coverage@k  = |distinct items in all top-k lists| / n_items`` over all users scored (a catalog
  metric, not averaged per user).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .sparse import csr_order


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Root mean squared error."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sqrt(np.mean(err**2))) if err.size else float("nan")


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean absolute error."""
    err = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.mean(np.abs(err))) if err.size else float("nan")


@njit(cache=True)
def _hits(top: np.ndarray, indptr: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:  # pragma: no cover
    """``hit[r, j]``: ``top[r, j]`` is one of row r's relevant items (``items[indptr[r]:indptr[r + 1]]``).
    Each row's relevant items are marked in one scratch array, its list is looked up, the marks are undone."""
    n_rows, width = top.shape
    hit = np.zeros((n_rows, width), np.bool_)
    mark = np.zeros(n_items, np.bool_)
    for r in range(n_rows):
        for p in range(indptr[r], indptr[r + 1]):
            mark[items[p]] = True
        for j in range(width):
            hit[r, j] = top[r, j] >= 0 and mark[top[r, j]]
        for p in range(indptr[r], indptr[r + 1]):
            mark[items[p]] = False
    return hit


def ranking_metrics(
    top: np.ndarray, relevant_users: np.ndarray, relevant_items: np.ndarray, k: int, n_items: int
) -> dict[str, float]:
    """All ranking metrics at cut-off ``k``.

    ``top`` is ``(n_users, >=k)`` item indices per user row (``-1`` = empty slot); ``relevant_users`` /
    ``relevant_items`` are the (row, item) pairs that count as relevant (rows index ``top``).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    top = np.asarray(top)[:, :k]
    n_rows = top.shape[0]
    width = top.shape[1]  # may be < k when the catalog is smaller than k
    relevant_users = np.asarray(relevant_users, dtype=np.int64)
    relevant_items = np.asarray(relevant_items, dtype=np.int64)
    rel_count = np.bincount(relevant_users, minlength=n_rows)[:n_rows]
    top = np.ascontiguousarray(top, dtype=np.int64)
    span = max(n_items, int(top.max()) + 1 if top.size else 0)
    inside = (relevant_users < n_rows) & (relevant_items >= 0) & (relevant_items < span)  # others never hit
    indptr, order = csr_order(relevant_users[inside], n_rows)
    hit = _hits(top, indptr, relevant_items[inside][order], span)
    hits = hit.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, width + 2))
    dcg = (hit * discounts).sum(axis=1)
    ideal_discounts = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = ideal_discounts[np.minimum(rel_count, k)]
    precision_at_r = np.cumsum(hit, axis=1) / np.arange(1, width + 1)
    ap = (precision_at_r * hit).sum(axis=1) / np.maximum(np.minimum(rel_count, k), 1)
    users = rel_count > 0
    covered = np.unique(top[top >= 0]).size
    if not users.any():
        nan = float("nan")
        return {
            f"precision_at_{k}": nan,
            f"recall_at_{k}": nan,
            f"ndcg_at_{k}": nan,
            f"map_at_{k}": nan,
            f"hit_rate_at_{k}": nan,
            f"coverage_at_{k}": covered / n_items,
            "n_users": 0,
        }
    return {
        f"precision_at_{k}": float(np.mean(hits[users] / k)),
        f"recall_at_{k}": float(np.mean(hits[users] / rel_count[users])),
        f"ndcg_at_{k}": float(np.mean(dcg[users] / idcg[users])),
        f"map_at_{k}": float(np.mean(ap[users])),
        f"hit_rate_at_{k}": float(np.mean(hits[users] > 0)),
        f"coverage_at_{k}": covered / n_items,
        "n_users": int(users.sum()),
    }
