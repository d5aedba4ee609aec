"""Bayesian matrix factorisation by Gibbs sampling (Salakhutdinov & Mnih 2008), with biases.

The model is the book's ``r = mu + b_u + b_i + u . v`` with Gaussian noise of precision ``alpha``. Instead of
one weight decay picked by hand, every user's ``w_u = [b_u, u]`` has a Gaussian prior whose mean and precision
matrix are themselves sampled (Normal-Wishart hyperprior), and the same for items: the data sets the
regularisation. Each Gibbs pass draws, in closed form:

1. the user hyperparameters ``(m_U, Lambda_U) | W_U`` and the item ones likewise;
2. every user's ``w_u | items, alpha`` from ``N(P^-1 b, P^-1)`` with
   ``P = Lambda_U + alpha sum_j x_j x_j^T`` and ``b = Lambda_U m_U + alpha sum_j x_j (r_uj - mu - b_j)``,
   ``x_j = [1, v_j]``; then every item's ``w_i`` given the users (a fused numba kernel over runs of rows of even work);
3. the noise precision ``alpha | residuals`` from its Gamma posterior.

What is kept is the posterior mean of the factors over the passes after ``burn_in``: on MovieLens 100K it
predicts as well as averaging every sample's prediction (``bench/heldout.py``), and it is one small
``(n, 1 + k)`` table per side, scored like the dot model.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from .sparse import csr_order, row_runs

log = logging.getLogger(__name__)


@dataclass
class BayesFactors:
    """Posterior means: ``mu + user_bias[u] + item_bias[i] + user_factors[u] . item_factors[i]``."""

    mu: float
    user_bias: np.ndarray  # (n_users,) float64
    item_bias: np.ndarray  # (n_items,)
    user_factors: np.ndarray  # (n_users, k)
    item_factors: np.ndarray  # (n_items, k)
    noise_std: float  # 1 / sqrt(alpha), averaged over the kept passes


@njit(parallel=True, cache=True)
def _outer_products(other: np.ndarray, alpha: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``out[j]`` = the lower triangle of ``alpha x_j x_j^T`` packed column by column, ``x_j = [1, other[j, 1:]]``.

    Computed once per side and pass, so each rating only adds a row of ``out`` (contiguous: SIMD) instead of
    multiplying out the product again; its first ``d`` entries (column 0) are ``alpha x_j``, the weights of
    ``b``, contiguous too.
    """
    n, d = other.shape
    for j in prange(n):
        k = 0
        for c in range(d):
            for a in range(c, d):
                xa = alpha * (1.0 if a == 0 else other[j, a])
                out[j, k] = xa * (1.0 if c == 0 else other[j, c])
                k += 1


@njit(parallel=True, cache=True)
def _sample_rows(
    indptr: np.ndarray,
    cols: np.ndarray,
    ratings: np.ndarray,
    mu: float,
    other: np.ndarray,
    outer: np.ndarray,
    prior_prec: np.ndarray,
    prior_shift: np.ndarray,
    noise: np.ndarray,
    out: np.ndarray,
    runs: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Draw every row ``w = [bias, factors]`` of ``out`` from its Gaussian conditional (see module docstring).

    ``ratings`` are in CSR order; the target of entry p is its rating minus ``mu`` and the other side's bias
    ``other[j, 0]``; ``outer`` is ``_outer_products(other, alpha)``; ``prior_prec`` is ``Lambda`` packed like
    it and ``prior_shift = Lambda m``; ``noise`` holds one standard normal vector per row. ``runs``: the rows
    in runs of even work (``sparse.row_runs``), one per task; a row's draw does not depend on them.

    A row's entries are added four at a time (four ``outer`` rows summed, then added to ``P``): ``P`` stays in
    memory, and one update per entry waits on the last one's store (2x slower on ML-100K).
    """
    d = out.shape[1]
    m = prior_prec.size
    for run in prange(runs.size - 1):
        P = np.empty(m)  # packed lower triangle, column by column
        b = np.empty(d)
        L = np.empty((d, d))  # Cholesky factor of P (lower triangle written and read)
        inv = np.empty(d)  # 1 / L[a, a]
        y = np.empty(d)
        for r in range(runs[run], runs[run + 1]):
            P[:] = prior_prec
            b[:] = prior_shift
            p, end = indptr[r], indptr[r + 1]
            while p + 3 < end:
                j1, j2, j3, j4 = cols[p], cols[p + 1], cols[p + 2], cols[p + 3]
                t1 = ratings[p] - mu - other[j1, 0]
                t2 = ratings[p + 1] - mu - other[j2, 0]
                t3 = ratings[p + 2] - mu - other[j3, 0]
                t4 = ratings[p + 3] - mu - other[j4, 0]
                for a in range(d):
                    b[a] += (outer[j1, a] * t1 + outer[j2, a] * t2) + (outer[j3, a] * t3 + outer[j4, a] * t4)
                for k in range(m):
                    P[k] += (outer[j1, k] + outer[j2, k]) + (outer[j3, k] + outer[j4, k])
                p += 4
            while p < end:
                j = cols[p]
                t = ratings[p] - mu - other[j, 0]
                for a in range(d):
                    b[a] += outer[j, a] * t
                for k in range(m):
                    P[k] += outer[j, k]
                p += 1
            for c in range(d):  # Cholesky, column by column; column c of P starts at c d - c (c - 1) / 2
                at = c * d - c * (c - 1) // 2 - c
                s = P[at + c]
                for e in range(c):
                    s -= L[c, e] * L[c, e]
                L[c, c] = math.sqrt(s)
                inv[c] = 1.0 / L[c, c]
                for a in range(c + 1, d):
                    s = P[at + a]
                    for e in range(c):
                        s -= L[a, e] * L[c, e]
                    L[a, c] = s * inv[c]
            for a in range(d):  # L y = b
                s = b[a]
                for e in range(a):
                    s -= L[a, e] * y[e]
                y[a] = s * inv[a]
            for a in range(d - 1, -1, -1):  # L^T w = y + z: w = P^-1 b + L^-T z
                s = y[a] + noise[r, a]
                for e in range(a + 1, d):
                    s -= L[e, a] * out[r, e]
                out[r, a] = s * inv[a]


@njit(parallel=True, cache=True)
def _squared_residuals(
    indptr: np.ndarray, cols: np.ndarray, ratings: np.ndarray, mu: float, W: np.ndarray, other: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """Per row of ``W``: the sum of its squared residuals ``r - mu - w_b - o_b - w . o`` (one row per thread,
    each row's sum in CSR order, so the total does not depend on the thread count)."""
    n, d = W.shape
    sums = np.zeros(n)
    for r in prange(n):
        s = 0.0
        for p in range(indptr[r], indptr[r + 1]):
            j = cols[p]
            e = ratings[p] - mu - W[r, 0] - other[j, 0]
            for a in range(1, d):
                e -= W[r, a] * other[j, a]
            s += e * e
        sums[r] = s
    return sums


def _csr(rows: np.ndarray, cols: np.ndarray, ratings: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr, cols, ratings)``: the entries grouped by row."""
    indptr, order = csr_order(rows, n)
    return indptr, np.ascontiguousarray(cols[order], dtype=np.int64), np.ascontiguousarray(ratings[order])


def _column_packing(d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, columns)`` of a ``d x d`` lower triangle's entries, column by column: how ``_outer_products``
    packs its rows (``sym[_column_packing(d)]`` packs a symmetric matrix alike)."""
    upper = np.triu_indices(d)
    return upper[1], upper[0]


def _sample_hyper(rng: np.random.Generator, W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(m, Lambda) | W`` under a Normal-Wishart prior (beta0 = 2, W0 = I, nu0 = d, m0 = 0)."""
    n, d = W.shape
    beta0 = 2.0
    mean = W.mean(0)
    centred = W - mean
    beta = beta0 + n
    scale_inv = np.eye(d) + centred.T @ centred + (beta0 * n / beta) * np.outer(mean, mean)
    scale = np.linalg.inv(scale_inv)
    chol = np.linalg.cholesky((scale + scale.T) / 2)
    bartlett = np.zeros((d, d))  # Wishart(scale, dof) by Bartlett's decomposition
    dof = d + n
    for a in range(d):
        bartlett[a, a] = math.sqrt(rng.chisquare(dof - a))
        bartlett[a, :a] = rng.standard_normal(a)
    half = chol @ bartlett
    prec = half @ half.T
    m = (n * mean / beta) + np.linalg.solve(np.linalg.cholesky(beta * prec).T, rng.standard_normal(d))
    return m, prec


def fit_bayes(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    factors: int = 10,
    iterations: int = 200,
    burn_in: int = 50,
    seed: int = 42,
    init: BayesFactors | None = None,
) -> BayesFactors:
    """Gibbs-sample the model on the ratings; posterior means of the passes after ``burn_in``.

    ``init`` starts the chain from earlier factors (warm start: rows it lacks start random).
    Deterministic for a seed: one ``numpy`` generator draws every random number, in a fixed order.
    """
    if iterations <= burn_in:
        raise ValueError(f"bayes iterations ({iterations}) must exceed its burn-in ({burn_in})")
    rng = np.random.default_rng(seed)
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    r = np.asarray(ratings, np.float64)
    mu = float(r.mean()) if r.size else 0.0
    d = factors + 1
    by_user = _csr(users, items, r, n_users)
    by_item = _csr(items, users, r, n_items)
    user_runs, item_runs = row_runs(by_user[0], d), row_runs(by_item[0], d)  # a row's own draw: about d entries' work
    Wu = 0.1 * rng.standard_normal((n_users, d))
    Wi = 0.1 * rng.standard_normal((n_items, d))
    if init is not None:
        for W, bias, vec in ((Wu, init.user_bias, init.user_factors), (Wi, init.item_bias, init.item_factors)):
            if vec.shape[1] == factors:
                n = min(W.shape[0], vec.shape[0])
                W[:n, 0], W[:n, 1:] = bias[:n], vec[:n]
    alpha = 2.0
    tri = _column_packing(d)  # packed lower triangles, column by column
    outer = np.empty((max(n_users, n_items), d * (d + 1) // 2))
    sum_u, sum_i = np.zeros_like(Wu), np.zeros_like(Wi)
    noise_sum, kept = 0.0, 0
    t0 = time.perf_counter()
    for it in range(iterations):
        for W, other, (indptr, cols, ratings), runs in ((Wu, Wi, by_user, user_runs), (Wi, Wu, by_item, item_runs)):
            m, prec = _sample_hyper(rng, W)
            z = rng.standard_normal(W.shape)
            _outer_products(other, alpha, outer[: len(other)])
            _sample_rows(indptr, cols, ratings, mu, other, outer, prec[tri], prec @ m, z, W, runs)
        sse = float(_squared_residuals(*by_user, mu, Wu, Wi).sum())
        alpha = rng.gamma(1.0 + r.size / 2.0, 1.0 / (1.0 + 0.5 * sse))
        if it >= burn_in:
            sum_u += Wu
            sum_i += Wi
            noise_sum += 1.0 / math.sqrt(alpha)
            kept += 1
        if (it + 1) % 50 == 0 or it + 1 == iterations:
            elapsed = time.perf_counter() - t0
            log.info(
                "bayes: pass %d/%d, noise std %.4f (%.1fs, ETA %.0fs)",
                it + 1,
                iterations,
                1.0 / math.sqrt(alpha),
                elapsed,
                elapsed / (it + 1) * (iterations - it - 1),
            )
    mean_u, mean_i = sum_u / kept, sum_i / kept
    return BayesFactors(
        mu, mean_u[:, 0].copy(), mean_i[:, 0].copy(), mean_u[:, 1:].copy(), mean_i[:, 1:].copy(), noise_sum / kept
    )
