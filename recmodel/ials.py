"""Implicit ALS (Hu, Koren, Volinsky 2008) with conjugate-gradient steps (Takacs et al. 2011).

Minimise over user factors ``x_u`` and item factors ``y_i``

    sum_{(u,i) observed} w_ui (1 - x_u.y_i)^2  +  a0 * sum_{all u,i} (x_u.y_i)^2
      + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2,   lambda_u = reg * (n_u + a0 * n_items)

``a0`` (``unobserved_weight``) makes every unobserved pair a weak negative; the L2 strength is scaled
by each row's count (Rendle et al. 2021, "Revisiting the performance of iALS"). Alternating exact
updates are replaced by ``cg_steps`` conjugate-gradient steps from the current factors, vectorised over
all users (items) at once.

Two implementations of the same steps: on the CPU one fused numba kernel walks each row's entries in
CSR order (a task per run of rows of even work, float32, no intermediate tensors; as implicit's CPU solver does);
on a GPU the steps are vectorised torch sparse products over all rows at once.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from numba import njit, prange

from .sparse import CSR, csr_both_ways, row_runs

log = logging.getLogger(__name__)


def torch_csr(matrix: CSR, n_rows: int, n_cols: int, device: torch.device) -> torch.Tensor:
    """A torch CSR matrix (the GPU path's) from numpy ``(indptr, indices, values)``."""
    indptr, indices, data = matrix
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use two stable kernels only
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(indices),
            torch.from_numpy(data),
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


# Floats between the kernel's scratch vectors. LLVM vectorises a loop that writes one vector and reads another
# only after a run-time check that they lie far enough apart (a vector width times its unrolling, up to 256
# bytes); otherwise it takes the scalar loop, whose sums round differently. Vectors allocated one after the
# other, each f floats, lay closer than that for small f (f <= 24 seen), by how each thread's allocator
# placed them: the same inputs gave different bits from run to run. In one block, GAP apart (and GAP from
# the block's ends, so from the factor rows too), they never do.
GAP = 64
BUFFER_BYTES = 64 << 20  # per task: a row's gathered vectors for its CG steps (rows longer than this gather anew)


@njit(inline="always", fastmath=True)
def _add_product(Ap: np.ndarray, p: np.ndarray, y: np.ndarray, w: np.float32) -> None:  # pragma: no cover
    """``Ap += w (p.y) y``: one entry's term of ``A p``."""
    d = np.float32(0.0)
    for a in range(p.size):
        d += p[a] * y[a]
    coef = w * d
    for a in range(p.size):
        Ap[a] += coef * y[a]


@njit(parallel=True, fastmath=True, cache=True)
def _cg_rows(
    indptr: np.ndarray,
    indices: np.ndarray,
    weights: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    gram: np.ndarray,
    reg_rows: np.ndarray,
    cg_steps: int,
    runs: np.ndarray,
    max_buffered: int,
) -> None:  # pragma: no cover - compiled
    """``solve_side``'s steps for every row of ``X`` in place: ``A_u = sum_i w_ui y_i y_i^T + gram + reg_u I``,
    ``b_u = sum_i w_ui y_i``, conjugate gradients from the current ``x_u``. One run of rows of even work per
    task (``sparse.row_runs``: popular items come first), with its own scratch vectors; each row's arithmetic
    does not depend on the runs (same result on any number of threads).

    The residual's pass gathers the row's ``y_i`` (random rows of ``Y``) into a contiguous buffer, and the CG
    steps read them from there in order: an item's users are more than the caches hold, and streaming them
    beats gathering them again at each step. Rows of more than ``max_buffered`` entries gather at each step.
    Same operations in the same order either way: the same bits."""
    f = X.shape[1]
    for run in prange(runs.size - 1):
        longest = 0
        for u in range(runs[run], runs[run + 1]):
            longest = max(longest, indptr[u + 1] - indptr[u])
        # one block: r, p, Ap and the buffer, GAP floats apart and from whatever lies before or after it
        n_buf = min(longest, max_buffered)
        stride = f + GAP  # a vector and the gap after it
        work = np.empty(GAP + 3 * stride + n_buf * f + GAP, dtype=np.float32)
        r = work[GAP : GAP + f]
        p = work[GAP + stride : GAP + stride + f]
        Ap = work[GAP + 2 * stride : GAP + 2 * stride + f]
        buf = work[GAP + 3 * stride : GAP + 3 * stride + n_buf * f].reshape((n_buf, f))
        for u in range(runs[run], runs[run + 1]):
            x = X[u]
            lam = reg_rows[u]
            start, end = indptr[u], indptr[u + 1]
            buffered = end - start <= max_buffered
            for a in range(f):  # r = b - A x = sum_i w_ui (1 - x.y_i) y_i - gram x - reg_u x
                s = np.float32(0.0)
                for c in range(f):
                    s += gram[a, c] * x[c]
                r[a] = -s - lam * x[a]
            for k in range(start, end):
                y = Y[indices[k]]
                if buffered:
                    b = buf[k - start]
                    for a in range(f):
                        b[a] = y[a]
                d = np.float32(0.0)
                for a in range(f):
                    d += x[a] * y[a]
                coef = weights[k] * (np.float32(1.0) - d)
                for a in range(f):
                    r[a] += coef * y[a]
            rs = np.float32(0.0)
            for a in range(f):
                p[a] = r[a]
                rs += r[a] * r[a]
            for _ in range(cg_steps):
                for a in range(f):  # Ap = (gram + reg_u I) p + sum_i w_ui (p.y_i) y_i
                    s = np.float32(0.0)
                    for c in range(f):
                        s += gram[a, c] * p[c]
                    Ap[a] = s + lam * p[a]
                if buffered:
                    for k in range(start, end):
                        _add_product(Ap, p, buf[k - start], weights[k])
                else:
                    for k in range(start, end):
                        _add_product(Ap, p, Y[indices[k]], weights[k])
                pap = np.float32(0.0)
                for a in range(f):
                    pap += p[a] * Ap[a]
                alpha = rs / max(pap, np.float32(1e-20))
                rs_new = np.float32(0.0)
                for a in range(f):
                    x[a] += alpha * p[a]
                    r[a] -= alpha * Ap[a]
                    rs_new += r[a] * r[a]
                beta = rs_new / max(rs, np.float32(1e-20))
                for a in range(f):
                    p[a] = r[a] + beta * p[a]
                rs = rs_new


def solve_side_cpu(
    X: torch.Tensor,
    other: torch.Tensor,
    R: tuple[np.ndarray, np.ndarray, np.ndarray],
    counts: torch.Tensor,
    reg: float,
    unobserved_weight: float,
    cg_steps: int,
) -> torch.Tensor:
    """``solve_side`` on the CPU: the fused kernel over ``R = (indptr, indices, weights)`` (rows sorted)."""
    gram = (unobserved_weight * (other.T @ other)).numpy()
    reg_rows = (reg * (counts + unobserved_weight * other.shape[0])).numpy()
    x = X.clone()
    runs = row_runs(R[0], X.shape[1] / 2)  # a row's gram products cost about f/2 entries' dots and updates
    _cg_rows(*R, x.numpy(), other.numpy(), gram, reg_rows, cg_steps, runs, BUFFER_BYTES // (4 * X.shape[1]))
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
    torch_sparse: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """User and item factors ``(X, Y)`` (see the module docstring for the objective).

    ``init`` (yesterday's ``(X, Y)``, same width) seeds the rows it has; new users and items start fresh.
    ``torch_sparse`` runs the GPU's implementation on the CPU too (the fused kernel is the CPU's default).
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
    fused = device.type == "cpu" and not torch_sparse
    R: torch.Tensor | CSR
    R_t: torch.Tensor | CSR
    R, R_t = csr_both_ways(users, items, weights, n_users, n_items)
    if fused:
        solve: Callable[..., torch.Tensor] = solve_side_cpu
        X, Y = X.contiguous(), Y.contiguous()
    else:
        R, R_t = torch_csr(R, n_users, n_items, device), torch_csr(R_t, n_items, n_users, device)
        solve = solve_side
    n_u = torch.as_tensor(np.bincount(users, minlength=n_users), dtype=torch.float32, device=device)
    n_i = torch.as_tensor(np.bincount(items, minlength=n_items), dtype=torch.float32, device=device)
    t0 = time.perf_counter()
    for it in range(1, iterations + 1):
        X = solve(X, Y, R, n_u, reg, unobserved_weight, cg_steps)
        Y = solve(Y, X, R_t, n_i, reg, unobserved_weight, cg_steps)
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
