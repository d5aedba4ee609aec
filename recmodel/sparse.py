"""Compressed sparse rows in plain numpy: each user's seen items, and positions of a block of rows."""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _chunk_starts(
    keys: np.ndarray, n_keys: int, positions: np.ndarray, identity: bool, chunks: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """A stable counting sort's first pass, over ``chunks`` consecutive shares of the entries in parallel:
    ``(indptr, start)``, ``indptr`` where each key's group starts, ``start[c, key]`` where chunk ``c``'s
    entries of ``key`` start (groups in key order, within a group the chunks in order: input order). The
    entries are ``positions`` (every one of ``0..n-1`` once), or ``0..n-1`` themselves when ``identity``."""
    n = keys.size if identity else positions.size
    counts = np.zeros((chunks, n_keys), np.int64)
    for c in prange(chunks):
        for k in range(c * n // chunks, (c + 1) * n // chunks):
            counts[c, keys[k if identity else positions[k]]] += 1
    indptr = np.empty(n_keys + 1, np.int64)
    total = 0
    for r in range(n_keys):
        indptr[r] = total
        for c in range(chunks):
            here = counts[c, r]
            counts[c, r] = total
            total += here
    indptr[n_keys] = total
    return indptr, counts


def _chunks(n: int, n_keys: int) -> int:
    """How many shares the counting sorts split ``n`` entries into: enough for the threads, at most 16,
    and only while the ``chunks x n_keys`` table of counts stays small next to the entries."""
    return int(max(1, min(16, numba.get_num_threads() * 4, n // max(1, 4 * n_keys))))


@njit(parallel=True, cache=True)
def _counting_sort(
    keys: np.ndarray, n_keys: int, order: np.ndarray, identity: bool, chunks: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Stable counting sort of positions by their key: the positions are ``order`` (a permutation of
    ``0..n-1``: every entry once) or ``0..n-1`` when ``identity``. ``(indptr, sorted positions)``, in
    O(n + n_keys), over ``chunks`` shares in parallel (the same result for any number)."""
    n = keys.size if identity else order.size
    indptr, fill = _chunk_starts(keys, n_keys, order, identity, chunks)
    out = np.empty(n, np.int64)
    for c in prange(chunks):
        for k in range(c * n // chunks, (c + 1) * n // chunks):
            p = k if identity else order[k]
            r = keys[p]
            out[fill[c, r]] = p
            fill[c, r] += 1
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
        return _counting_sort(rows, n_rows, np.empty(0, np.int64), True, _chunks(rows.size, n_rows))
    cols = checked_indices(cols, n_cols, "column indices")
    _, by_col = _counting_sort(cols, n_cols, np.empty(0, np.int64), True, _chunks(cols.size, n_cols))
    return _counting_sort(rows, n_rows, by_col, False, _chunks(rows.size, n_rows))


@njit(parallel=True, cache=True)
def _group(
    keys: np.ndarray, n_keys: int, carry: np.ndarray, values: np.ndarray, chunks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Stable counting sort of the entries by ``keys``, moving ``carry`` and ``values`` with them: ``(indptr,
    carry grouped, values grouped)``. Writes the grouped columns directly (no order array, no gathers), over
    ``chunks`` shares in parallel (the same result for any number)."""
    n = keys.size
    indptr, fill = _chunk_starts(keys, n_keys, keys, True, chunks)
    out_carry = np.empty(n, np.int64)
    out_values = np.empty(n, values.dtype)
    for c in prange(chunks):
        for k in range(c * n // chunks, (c + 1) * n // chunks):
            r = keys[k]
            q = fill[c, r]
            out_carry[q] = carry[k]
            out_values[q] = values[k]
            fill[c, r] = q + 1
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
    col_ptr, rows_by_col, values_by_col = _group(cols, n_cols, rows, values, _chunks(cols.size, n_cols))
    # columns ascending in a row (the input order within a column, above)
    by_row = _group(rows_by_col, n_rows, row_of_entry(col_ptr), values_by_col, _chunks(rows.size, n_rows))
    del rows_by_col, values_by_col  # at most ~40 bytes an entry alive at once, as two csr_order calls held
    return by_row, transpose_csr(by_row, n_cols)


def transpose_csr(matrix: CSR, n_cols: int) -> CSR:
    """The same entries grouped by column, rows ascending in a column (duplicates in their stored order): the
    CSR of the transpose, in one counting pass."""
    indptr, indices, values = matrix
    indices = checked_indices(indices, n_cols, "column indices")
    return _group(indices, n_cols, row_of_entry(indptr), values, _chunks(indices.size, n_cols))


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
