"""Compressed sparse rows in plain numpy: each user's seen items, and positions of a block of rows."""

from __future__ import annotations

import numba
import numpy as np
from numba import njit


@njit(cache=True)
def _offsets(keys: np.ndarray, n_keys: int) -> np.ndarray:  # pragma: no cover - compiled
    """``indptr`` of the entries grouped by key: where each key's group starts (a counting sort's first pass)."""
    indptr = np.zeros(n_keys + 1, np.int64)
    for k in range(keys.size):
        indptr[keys[k] + 1] += 1
    for r in range(n_keys):
        indptr[r + 1] += indptr[r]
    return indptr


@njit(cache=True)
def _counting_sort(keys: np.ndarray, n_keys: int, order: np.ndarray, identity: bool) -> tuple[np.ndarray, np.ndarray]:
    """Stable counting sort of positions by their key: the positions are ``order`` (a permutation of
    ``0..n-1``: every entry once) or ``0..n-1`` when ``identity``. ``(indptr, sorted positions)``, in
    O(n + n_keys)."""
    n = keys.size if identity else order.size
    indptr = _offsets(keys, n_keys)  # every entry once, in whatever order: the same counts
    fill = indptr[:-1].copy()
    out = np.empty(n, np.int64)
    for k in range(n):
        p = k if identity else order[k]
        r = keys[p]
        out[fill[r]] = p
        fill[r] += 1
    return indptr, out


def checked_indices(values: np.ndarray, n: int, what: str) -> np.ndarray:
    """``values`` as a contiguous integer array, refused unless every one lies in ``[0, n)`` (the compiled
    kernels index with them unchecked)."""
    values = np.ascontiguousarray(values)
    if values.dtype.kind not in "iu":
        raise TypeError(f"{what} must be integers, not {values.dtype}")
    if values.size and (int(values.min()) < 0 or int(values.max()) >= n):
        raise ValueError(f"{what} must lie in [0, {n}), got {int(values.min())}..{int(values.max())}")
    return values


def csr_order(
    rows: np.ndarray, n_rows: int, cols: np.ndarray | None = None, n_cols: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(indptr, order)``: ``order`` lists the entries grouped by row, in input order within a row, or with
    ``cols`` in column order within a row (then the order ``np.lexsort((cols, rows))`` gives). Counting sorts
    (one pass per key), not comparison sorts: a few times faster at tens of millions of entries."""
    rows = checked_indices(rows, n_rows, "row indices")
    if cols is None:
        return _counting_sort(rows, n_rows, np.empty(0, np.int64), True)
    _, by_col = _counting_sort(checked_indices(cols, n_cols, "column indices"), n_cols, np.empty(0, np.int64), True)
    return _counting_sort(rows, n_rows, by_col, False)


@njit(cache=True)
def _group(
    keys: np.ndarray, n_keys: int, carry: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Stable counting sort of the entries by ``keys``, moving ``carry`` and ``values`` with them: ``(indptr,
    carry grouped, values grouped)``. Writes the grouped columns directly (no order array, no gathers)."""
    n = keys.size
    indptr = _offsets(keys, n_keys)
    fill = indptr[:-1].copy()
    out_carry = np.empty(n, np.int64)
    out_values = np.empty(n, values.dtype)
    for k in range(n):
        q = fill[keys[k]]
        out_carry[q] = carry[k]
        out_values[q] = values[k]
        fill[keys[k]] = q + 1
    return indptr, out_carry, out_values


def row_of_entry(indptr: np.ndarray) -> np.ndarray:
    """Each stored entry's row index, from a CSR's ``indptr``."""
    return np.repeat(np.arange(indptr.size - 1, dtype=np.int64), np.diff(indptr))


CSR = tuple[np.ndarray, np.ndarray, np.ndarray]


def csr_both_ways(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int) -> tuple[CSR, CSR]:
    """``(indptr, indices, values)`` grouped by row (columns ascending in a row) and grouped by column (rows
    ascending in a column), ``values`` as float32; duplicates keep their input order. The same arrays as
    ``csr_order`` with ``cols`` gives each way, in three counting passes instead of four and without
    gathering through an order array (iALS builds both at every fit)."""
    rows, cols = checked_indices(rows, n_rows, "row indices"), checked_indices(cols, n_cols, "column indices")
    values = np.ascontiguousarray(values, np.float32)
    col_ptr, rows_by_col, values_by_col = _group(cols, n_cols, rows, values)  # input order within a column
    by_row = _group(rows_by_col, n_rows, row_of_entry(col_ptr), values_by_col)  # columns ascending in a row
    del rows_by_col, values_by_col  # at most ~40 bytes an entry alive at once, as two csr_order calls held
    return by_row, transpose_csr(by_row, n_cols)


def transpose_csr(matrix: CSR, n_cols: int) -> CSR:
    """The same entries grouped by column, rows ascending in a column (duplicates in their stored order): the
    CSR of the transpose, in one counting pass."""
    indptr, indices, values = matrix
    return _group(checked_indices(indices, n_cols, "column indices"), n_cols, row_of_entry(indptr), values)


def even_runs(cumulative: np.ndarray, runs: int = 0) -> np.ndarray:
    """Boundaries ``b`` (``runs + 1`` of them) of runs of consecutive rows ``b[k]..b[k+1]`` with about equal
    work, where ``cumulative`` (length ``n_rows + 1``, from 0, non-decreasing) is the work before each row
    (e.g. a CSR's ``indptr`` plus a cost per row). numba splits a ``prange`` into equal counts of iterations,
    one share per thread; over rows of a skewed catalog (popular items first) one thread got most of the
    work. A ``prange`` over even runs keeps every thread busy. ``runs`` defaults to 4 per numba thread."""
    runs = runs or 4 * numba.get_num_threads()
    targets = np.linspace(0.0, float(cumulative[-1]), runs + 1)
    bounds = np.searchsorted(cumulative, targets, side="left").astype(np.int64)
    bounds[0], bounds[-1] = 0, cumulative.size - 1
    return bounds


def row_runs(indptr: np.ndarray, row_cost: float, runs: int = 0) -> np.ndarray:
    """``even_runs`` of a CSR's rows, a row's work being its entries plus ``row_cost`` (in entries)."""
    return even_runs(indptr + row_cost * np.arange(indptr.size, dtype=np.float64), runs)


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
