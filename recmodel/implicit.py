"""Rankers trained on interactions (implicit feedback): iALS embeddings, EASE, popularity.

A model fitted to predict ratings ranks *below popularity* when it scores all unrated items (it
never learns which items a user is likely to pick at all). These models learn exactly that.

Interactions are weighted by rating: a rating >= ``relevance_threshold`` counts 1, a lower rating
``low_rating_weight`` (the user did pick the item, but liked it less).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .score import csr_positions

log = logging.getLogger(__name__)
_CHUNK = 1 << 21  # interactions per gather in the CG products: bounds memory at ML-25M scale


def interaction_weights(ratings: np.ndarray, relevance_threshold: float, low_rating_weight: float) -> np.ndarray:
    """1 for ratings >= ``relevance_threshold``, ``low_rating_weight`` below it."""
    return np.where(np.asarray(ratings) >= relevance_threshold, 1.0, low_rating_weight).astype(np.float32)


@dataclass
class FactorRanker:
    """Scores ``user_factors @ item_factors.T``; iALS and the dot rating model both rank this way."""

    user_factors: torch.Tensor
    item_factors: torch.Tensor

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_factors[users] @ self.item_factors.T


def _implicit_matvec(P: torch.Tensor, other: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                     weights: torch.Tensor, gram: torch.Tensor, reg: torch.Tensor) -> torch.Tensor:
    """``A_u p_u`` for every row u at once, with ``A_u = sum_i w_ui y_i y_i^T + gram + reg_u I``."""
    out = P @ gram + reg[:, None] * P
    for s in range(0, rows.numel(), _CHUNK):
        r, c = rows[s:s + _CHUNK], cols[s:s + _CHUNK]
        y = other[c]
        t = (y * P[r]).sum(dim=1) * weights[s:s + _CHUNK]
        out.index_add_(0, r, y * t[:, None])
    return out


def _solve_side(X: torch.Tensor, other: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, weights: torch.Tensor,
                counts: torch.Tensor, reg: float, unobserved_weight: float, cg_steps: int) -> torch.Tensor:
    """Conjugate-gradient steps from the current X towards the exact least-squares update (Takacs et al. 2011)."""
    gram = unobserved_weight * (other.T @ other)
    reg_rows = reg * (counts + unobserved_weight * other.shape[0])  # frequency-scaled (Rendle et al. 2021)
    b = torch.zeros_like(X)
    for s in range(0, rows.numel(), _CHUNK):
        b.index_add_(0, rows[s:s + _CHUNK], other[cols[s:s + _CHUNK]] * weights[s:s + _CHUNK, None])
    x = X.clone()
    r = b - _implicit_matvec(x, other, rows, cols, weights, gram, reg_rows)
    p = r.clone()
    rs = (r * r).sum(dim=1)
    for _ in range(cg_steps):
        Ap = _implicit_matvec(p, other, rows, cols, weights, gram, reg_rows)
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
    on_iteration: Callable[[int, float], None] | None = None,
) -> FactorRanker:
    """Implicit ALS: minimise over user factors ``x_u`` and item factors ``y_i``

        sum_{(u,i) observed} w_ui (1 - x_u.y_i)^2  +  a0 * sum_{all u,i} (x_u.y_i)^2
          + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2,   lambda_u = reg * (n_u + a0 * n_items)

    (``a0`` = ``unobserved_weight``: every unobserved pair is a weak negative). Alternating exact
    updates are replaced by ``cg_steps`` conjugate-gradient steps, vectorised over all users (items).
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    std = 0.1 / np.sqrt(factors)
    X = (torch.randn(n_users, factors, generator=gen) * std).to(device)
    Y = (torch.randn(n_items, factors, generator=gen) * std).to(device)
    u = torch.as_tensor(np.asarray(users, dtype=np.int64), device=device)
    i = torch.as_tensor(np.asarray(items, dtype=np.int64), device=device)
    w = torch.as_tensor(np.asarray(weights, dtype=np.float32), device=device)
    by_item = torch.argsort(i, stable=True)
    i_rows, u_cols, w_items = i[by_item], u[by_item], w[by_item]  # item-major copy: contiguous index_add
    n_u = torch.bincount(u, minlength=n_users).float()
    n_i = torch.bincount(i, minlength=n_items).float()
    t0 = time.perf_counter()
    for it in range(1, iterations + 1):
        X = _solve_side(X, Y, u, i, w, n_u, reg, unobserved_weight, cg_steps)
        Y = _solve_side(Y, X, i_rows, u_cols, w_items, n_i, reg, unobserved_weight, cg_steps)
        if on_iteration is not None:
            on_iteration(it, time.perf_counter() - t0)
    log.info("iALS: %d factors, %d iterations over %d interactions in %.2fs", factors, iterations, len(u),
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
