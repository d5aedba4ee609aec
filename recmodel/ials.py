"""Implicit ALS (Hu, Koren, Volinsky 2008) with conjugate-gradient steps (Takacs et al. 2011).

Minimise over user factors ``x_u`` and item factors ``y_i``

    sum_{(u,i) observed} w_ui (1 - x_u.y_i)^2  +  a0 * sum_{all u,i} (x_u.y_i)^2
      + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2,   lambda_u = reg * (n_u + a0 * n_items)

``a0`` (``unobserved_weight``) makes every unobserved pair a weak negative; the L2 strength is scaled
by each row's count (Rendle et al. 2021, "Revisiting the performance of iALS"). Alternating exact
updates are replaced by ``cg_steps`` conjugate-gradient steps from the current factors, vectorised over
all users (items) at once.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch

log = logging.getLogger(__name__)


def csr(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int, device: torch.device
) -> torch.Tensor:
    """A torch CSR matrix from (row, col, value) triples (any order)."""
    order = np.lexsort((cols, rows))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use two stable kernels only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(np.asarray(cols, np.int64)[order]),
            torch.from_numpy(np.asarray(values, np.float32)[order]),
            (n_rows, n_cols),
            check_invariants=False,
        ).to(device)


def _implicit_matvec(
    P: torch.Tensor, other: torch.Tensor, R: torch.Tensor, gram: torch.Tensor, reg: torch.Tensor
) -> torch.Tensor:
    """``A_u p_u`` for every row u at once, with ``A_u = sum_i w_ui y_i y_i^T + gram + reg_u I``.

    The sum is a sampled product then a sparse product: ``t_ui = w_ui (p_u . y_i)`` only where ``R``
    has entries (SDDMM), then ``sum_i t_ui y_i`` (SpMM), instead of gathering y_i per entry.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = torch.sparse.sampled_addmm(R, P, other.T, beta=0.0)
        t = torch.sparse_csr_tensor(
            R.crow_indices(), R.col_indices(), t.values() * R.values(), R.shape, check_invariants=False
        )
        return torch.sparse.mm(t, other) + P @ gram + reg[:, None] * P


def solve_side(
    X: torch.Tensor,
    other: torch.Tensor,
    R: torch.Tensor,
    counts: torch.Tensor,
    reg: float,
    unobserved_weight: float,
    cg_steps: int,
) -> torch.Tensor:
    """``cg_steps`` conjugate-gradient steps from the current X towards the exact least-squares update."""
    gram = unobserved_weight * (other.T @ other)
    reg_rows = reg * (counts + unobserved_weight * other.shape[0])  # frequency-scaled L2
    x = X.clone()
    # residual b - A x with b = sum_i w_ui y_i in one pass: sum_i w_ui (1 - x_u.y_i) y_i - (gram + reg_u) x_u
    # (one sparse product fewer than forming b and A x apart; the sparse products are most of iALS' time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        t = torch.sparse.sampled_addmm(R, x, other.T, beta=0.0)
        t = torch.sparse_csr_tensor(
            R.crow_indices(), R.col_indices(), R.values() * (1.0 - t.values()), R.shape, check_invariants=False
        )
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


def fit_factors(
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    factors: int = 128,
    reg: float = 0.025,
    unobserved_weight: float = 0.1,
    iterations: int = 10,
    cg_steps: int = 3,
    seed: int = 42,
    device: torch.device | str = "cpu",
    on_iteration: Callable[[int, float], None] | None = None,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """User and item factors ``(X, Y)`` (see the module docstring for the objective).

    ``init`` (yesterday's ``(X, Y)``, same width) seeds the rows it has; new users and items start fresh.
    """
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    std = 0.1 / np.sqrt(factors)
    X = (torch.randn(n_users, factors, generator=gen) * std).to(device)
    Y = (torch.randn(n_items, factors, generator=gen) * std).to(device)
    if init is not None and init[0].shape[1] == factors:
        nu, ni = min(n_users, init[0].shape[0]), min(n_items, init[1].shape[0])
        X[:nu], Y[:ni] = init[0][:nu].to(device), init[1][:ni].to(device)
    elif init is not None:
        log.info(
            "iALS warm start: yesterday's factors have %d columns, not %d; starting fresh", init[0].shape[1], factors
        )
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    R = csr(users, items, weights, n_users, n_items, device)
    R_t = csr(items, users, weights, n_items, n_users, device)
    n_u = torch.as_tensor(np.bincount(users, minlength=n_users), dtype=torch.float32, device=device)
    n_i = torch.as_tensor(np.bincount(items, minlength=n_items), dtype=torch.float32, device=device)
    t0 = time.perf_counter()
    for it in range(1, iterations + 1):
        X = solve_side(X, Y, R, n_u, reg, unobserved_weight, cg_steps)
        Y = solve_side(Y, X, R_t, n_i, reg, unobserved_weight, cg_steps)
        elapsed = time.perf_counter() - t0
        if len(users) >= 1_000_000:  # a long fit says how far it is (the UI shows these lines)
            log.info(
                "iALS pass %d/%d over %d interactions (%.0f interactions/s, ETA %.0fs)",
                it,
                iterations,
                len(users),
                it * len(users) / elapsed,
                elapsed / it * (iterations - it),
            )
        if on_iteration is not None:
            on_iteration(it, elapsed)
    log.info(
        "iALS: %d factors, %d iterations over %d interactions in %.2fs",
        factors,
        iterations,
        len(users),
        time.perf_counter() - t0,
    )
    return X, Y
