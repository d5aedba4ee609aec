"""Compressed sparse rows in plain numpy: each user's seen items, and positions of a block of rows."""

from __future__ import annotations

import numpy as np


def csr_order(rows: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, order)``: ``order`` lists the entries grouped by row (stable: input order within a row)."""
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, np.argsort(rows, kind="stable")


def csr_from_pairs(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, indices)`` of each user's seen items (duplicates allowed, harmless for masking)."""
    indptr, order = csr_order(users, n_users)
    return indptr, np.asarray(items, dtype=np.int64)[order]


def csr_positions(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For CSR rows ``rows``: ``(block_row, position)`` of every stored entry, without a Python loop."""
    lo, hi = indptr[rows], indptr[rows + 1]
    lengths = hi - lo
    total = int(lengths.sum())
    block_row = np.repeat(np.arange(rows.size, dtype=np.int64), lengths)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return block_row, starts + np.arange(total, dtype=np.int64)
