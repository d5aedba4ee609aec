"""Rankers trained on interactions (implicit feedback): iALS embeddings, EASE, popularity.

A model fitted to predict ratings ranks *below popularity* when it scores all unrated items (it
never learns which items a user is likely to pick at all). These models learn exactly that.

Interactions are weighted by rating: a rating >= ``relevance_threshold`` counts 1, a lower rating
``low_rating_weight`` (the user did pick the item, but liked it less).
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from .score import BlockProduct, csr_positions

log = logging.getLogger(__name__)


def interaction_weights(ratings: np.ndarray, relevance_threshold: float, low_rating_weight: float) -> np.ndarray:
    """1 for ratings >= ``relevance_threshold``, ``low_rating_weight`` below it."""
    return np.where(np.asarray(ratings) >= relevance_threshold, 1.0, low_rating_weight).astype(np.float32)


@dataclass
class FactorRanker:
    """Scores ``user_factors @ item_factors.T``; iALS and the dot rating model both rank this way."""

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    _product: BlockProduct | None = field(default=None, init=False, repr=False, compare=False)

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a block of users; the returned tensor is reused by the next call (see BlockProduct)."""
        if self._product is None:
            self._product = BlockProduct(self.user_factors, self.item_factors)
        return self._product(users)


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int,
         device: torch.device) -> torch.Tensor:
    """A torch CSR matrix from (row, col, value) triples (any order)."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use two stable kernels only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr), torch.from_numpy(np.asarray(cols, np.int64)[order]),
            torch.from_numpy(np.asarray(values, np.float32)[order]), (n_rows, n_cols), check_invariants=False,
        ).to(device)


def _implicit_matvec(P: torch.Tensor, other: torch.Tensor, R: torch.Tensor, gram: torch.Tensor,
                     reg: torch.Tensor) -> torch.Tensor:
    """``A_u p_u`` for every row u at once, with ``A_u = sum_i w_ui y_i y_i^T + gram + reg_u I``.

    The sum is a sampled product then a sparse product: ``t_ui = w_ui (p_u . y_i)`` only where ``R``
    has entries (SDDMM), then ``sum_i t_ui y_i`` (SpMM) -- 30x faster than gathering y_i per entry.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = torch.sparse.sampled_addmm(R, P, other.T, beta=0.0)
        t = torch.sparse_csr_tensor(R.crow_indices(), R.col_indices(), t.values() * R.values(), R.shape,
                                    check_invariants=False)
        return torch.sparse.mm(t, other) + P @ gram + reg[:, None] * P


def _solve_side(X: torch.Tensor, other: torch.Tensor, R: torch.Tensor, counts: torch.Tensor, reg: float,
                unobserved_weight: float, cg_steps: int) -> torch.Tensor:
    """Conjugate-gradient steps from the current X towards the exact least-squares update (Takacs et al. 2011)."""
    gram = unobserved_weight * (other.T @ other)
    reg_rows = reg * (counts + unobserved_weight * other.shape[0])  # frequency-scaled (Rendle et al. 2021)
    x = X.clone()
    # residual b - A x with b = sum_i w_ui y_i in one pass: sum_i w_ui (1 - x_u.y_i) y_i - (gram + reg_u) x_u
    # (one sparse product fewer than forming b and A x apart; the sparse products are most of iALS' time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = torch.sparse.sampled_addmm(R, x, other.T, beta=0.0)
        t = torch.sparse_csr_tensor(R.crow_indices(), R.col_indices(), R.values() * (1.0 - t.values()), R.shape,
                                    check_invariants=False)
        r = torch.sparse.mm(t, other) - x @ gram - reg_rows[:, None] * x
    p = r.clone()
    rs = (r * r).sum(dim=1)
    for _ in range(cg_steps):
        Ap = _implicit_matvec(p, other, R, gram, reg_rows)
        alpha = rs / (p * Ap).sum(dim=1).clamp_min(1e-20)
        x += alpha[:, None] * p
        r -= alpha[:, None] * Ap
        rs_new = (r * r).sum(dim=1)
        p = r + (rs_new / rs.clamp_min(1e-20))[:, None] * p
        rs = rs_new
    return x


def fit_ials(
    users: np.ndarray, items: np.ndarray, weights: np.ndarray, n_users: int, n_items: int, *,
    factors: int = 128, reg: float = 0.025, unobserved_weight: float = 0.1, iterations: int = 10,
    cg_steps: int = 3, seed: int = 42, device: torch.device | str = "cpu",
    on_iteration: Callable[[int, float], None] | None = None, init: FactorRanker | None = None,
) -> FactorRanker:
    """Implicit ALS: minimise over user factors ``x_u`` and item factors ``y_i``

        sum_{(u,i) observed} w_ui (1 - x_u.y_i)^2  +  a0 * sum_{all u,i} (x_u.y_i)^2
          + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2,   lambda_u = reg * (n_u + a0 * n_items)

    (``a0`` = ``unobserved_weight``: every unobserved pair is a weak negative). Alternating exact
    updates are replaced by ``cg_steps`` conjugate-gradient steps, vectorised over all users (items).
    ``init`` (yesterday's factors, same width) seeds the rows it has; new users and items start fresh.
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    std = 0.1 / np.sqrt(factors)
    X = (torch.randn(n_users, factors, generator=gen) * std).to(device)
    Y = (torch.randn(n_items, factors, generator=gen) * std).to(device)
    if init is not None and init.user_factors.shape[1] == factors:
        nu, ni = min(n_users, init.user_factors.shape[0]), min(n_items, init.item_factors.shape[0])
        X[:nu], Y[:ni] = init.user_factors[:nu].to(device), init.item_factors[:ni].to(device)
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    R = _csr(users, items, weights, n_users, n_items, device)
    R_t = _csr(items, users, weights, n_items, n_users, device)
    n_u = torch.as_tensor(np.bincount(users, minlength=n_users), dtype=torch.float32, device=device)
    n_i = torch.as_tensor(np.bincount(items, minlength=n_items), dtype=torch.float32, device=device)
    t0 = time.perf_counter()
    for it in range(1, iterations + 1):
        X = _solve_side(X, Y, R, n_u, reg, unobserved_weight, cg_steps)
        Y = _solve_side(Y, X, R_t, n_i, reg, unobserved_weight, cg_steps)
        elapsed = time.perf_counter() - t0
        if len(users) >= 1_000_000:  # a long fit says how far it is (the UI shows these lines)
            log.info("iALS pass %d/%d over %d interactions (%.0f interactions/s, ETA %.0fs)", it, iterations,
                     len(users), it * len(users) / elapsed, elapsed / it * (iterations - it))
        if on_iteration is not None:
            on_iteration(it, elapsed)
    log.info("iALS: %d factors, %d iterations over %d interactions in %.2fs", factors, iterations, len(users),
             time.perf_counter() - t0)
    return FactorRanker(X, Y)


@dataclass
class EaseRanker:
    """EASE (Steck 2019): ``scores = X_u B``, B the closed-form item-item matrix with a zero diagonal."""

    B: torch.Tensor  # (n_items, n_items)
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    seen_weights: np.ndarray

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        X = _dense_rows(self.seen_indptr, self.seen_indices, self.seen_weights, users.cpu().numpy(), self.B.shape[0])
        return X.to(self.B.device) @ self.B


def _dense_rows(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, rows: np.ndarray, n_cols: int) -> torch.Tensor:
    """Rows of a CSR matrix as a dense float32 tensor (b, n_cols)."""
    block_row, pos = csr_positions(indptr, rows)
    X = torch.zeros(rows.size, n_cols)
    X[torch.from_numpy(block_row), torch.from_numpy(indices[pos])] = torch.from_numpy(values[pos])
    return X


def fit_ease(users: np.ndarray, items: np.ndarray, weights: np.ndarray, n_users: int, n_items: int, *,
             lam: float = 400.0, device: torch.device | str = "cpu", max_items: int = 20_000) -> EaseRanker:
    """``B = I - P diag(1/diag(P))``, ``P = (X^T X + lam I)^-1``: one dense n_items^2 inverse, so only for
    catalogs up to ``max_items`` (20k items = 3.2 GB in float64)."""
    if n_items > max_items:
        raise ValueError(f"EASE needs a dense {n_items}x{n_items} inverse; above {max_items} items use ranker='ials'")
    order = np.lexsort((items, users))
    users, items, weights = np.asarray(users)[order], np.asarray(items)[order], np.asarray(weights, np.float32)[order]
    counts = np.bincount(users, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    items = items.astype(np.int64)
    G = torch.zeros(n_items, n_items, dtype=torch.float64, device=device)
    chunk = max(1, (1 << 26) // max(n_items, 1))  # X^T X from dense row chunks, 64M values at a time
    for s in range(0, n_users, chunk):
        X = _dense_rows(indptr, items, weights, np.arange(s, min(s + chunk, n_users)), n_items).double().to(device)
        G += X.T @ X
    G += lam * torch.eye(n_items, dtype=torch.float64, device=device)
    P = torch.linalg.inv(G)
    B = -P / torch.diagonal(P)[None, :]
    B.fill_diagonal_(0.0)
    return EaseRanker(B.float(), indptr, items, weights)


@dataclass
class PopularityRanker:
    """Everyone gets the most-interacted items they have not seen: the baseline to beat."""

    counts: torch.Tensor  # (n_items,)

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts[None, :].expand(users.numel(), -1).clone()


def fit_popularity(items: np.ndarray, n_items: int, device: torch.device | str = "cpu") -> PopularityRanker:
    return PopularityRanker(torch.as_tensor(np.bincount(items, minlength=n_items).astype(np.float32), device=device))
