"""Top-N of every unseen item for every user, exact, in bounded memory.

For users ``B``: ``S = U'[B] @ I'.T`` (one GEMM), seen items set to ``-inf`` in place, then an exact
top-N. On the CPU the selection is the one-pass kernel in ``recmodel.topk`` (torch.topk cost more than
the product itself at ML-25M scale), run by one thread pool over small tiles of users that stay in
cache; on a GPU it is ``torch.topk``. Memory is bounded by the tile/block size, never the full
``n_users x n_items`` matrix. Ties are broken deterministically: score descending, then item index
ascending, including ties that straddle the top-N boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from .sparse import csr_positions, even_runs
from .topk import top_k_rows, top_k_shared

if TYPE_CHECKING:
    from .rankers import Ranker
    from .ratings import Ratings

log = logging.getLogger(__name__)
Engine = Literal["auto", "numba", "torch"]


@dataclass
class TopN:
    """``items[u, r]`` is the item index at rank ``r`` (0-based) for user ``users[u]``; ``-1`` pads users
    with fewer unseen items than ``top_n``, with ``scores`` NaN there."""

    users: np.ndarray  # (n,) int64 user indices
    items: np.ndarray  # (n, top_n) int64
    scores: np.ndarray  # (n, top_n) float32 ranking scores (logits)

    @property
    def n_rows(self) -> int:
        return int((self.items >= 0).sum())


def _order_rows(values: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row by (value desc, index asc): sort by index, then stable sort by value."""
    by_idx = torch.argsort(idx, dim=1)
    values, idx = values.gather(1, by_idx), idx.gather(1, by_idx)
    by_val = torch.sort(values, dim=1, descending=True, stable=True).indices
    return values.gather(1, by_val), idx.gather(1, by_val)


class BlockProduct:
    """``user_factors[block] @ item_factors.T`` for one block of users at a time.

    On the CPU the product goes through numpy (OpenBLAS sgemm, faster than ``torch.mm`` here) into one
    reused buffer, which avoids a fresh allocation of hundreds of MB (and its page faults) per block
    (measured: docs/scaling.md, bench/scoring.py). The caller must be done with one block's scores
    before asking for the next (the top-N loop is).
    """

    def __init__(self, user_factors: torch.Tensor, item_factors: torch.Tensor):
        self.device = user_factors.device
        self.users: Any
        self.items_t: Any  # numpy on the CPU (OpenBLAS), torch on a GPU
        if self.device.type == "cpu":
            self.users = user_factors.detach().float().numpy()
            self.items_t = np.ascontiguousarray(item_factors.detach().float().numpy().T)
        else:
            self.users, self.items_t = user_factors, item_factors.t().contiguous()
        self.buffer: np.ndarray | None = None

    def __call__(self, block: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cpu":
            return self.users[block] @ self.items_t
        rows = block.numpy()
        n_items = self.items_t.shape[1]
        if self.buffer is None or self.buffer.shape[0] < rows.size:
            self.buffer = np.empty((rows.size, n_items), dtype=np.float32)
        out = self.buffer[: rows.size]
        np.matmul(self.users[rows], self.items_t, out=out)
        return torch.from_numpy(out)


def _uses_kernel(engine: Engine, device: torch.device) -> bool:
    """'numba' always, 'auto' for CPU scores; otherwise torch ops on the scores' device."""
    return engine == "numba" or (engine == "auto" and device.type == "cpu")


def _worker_count() -> int:
    """One worker per core torch would use (2 here): our own pool is the only busy one while selecting."""
    return max(1, torch.get_num_threads())


def _spans(n: int, parts: int) -> list[tuple[int, int]]:
    step = -(-n // parts)
    return [(s, min(s + step, n)) for s in range(0, n, step)]


def _select_numba(
    scores: np.ndarray,
    block_users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    excluded: np.ndarray,
    k: int,
    out_items: np.ndarray,
    out_scores: np.ndarray,
    pool: ThreadPoolExecutor,
    workers: int,
) -> None:
    """Mask + exact top-k of a CPU score block, rows split over the pool (the kernel releases the GIL)."""
    bits = scores.view(np.uint32)
    futures = [
        pool.submit(
            top_k_rows,
            scores[a:b],
            bits[a:b],
            block_users[a:b],
            seen_indptr,
            seen_indices,
            excluded,
            k,
            out_items[a:b],
            out_scores[a:b],
        )
        for a, b in _spans(block_users.size, workers)
    ]
    for f in futures:
        f.result()


def _select_torch(
    scores: torch.Tensor,
    block_users: np.ndarray,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    excluded: torch.Tensor | None,
    k: int,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask + exact top-k with torch ops on the scores' device (the GPU path)."""
    device = scores.device
    rows, pos = csr_positions(seen_indptr, block_users)
    if rows.size:  # mask seen items in place: flat offsets row * n_items + item
        flat = torch.as_tensor(rows * n_items + seen_indices[pos], device=device)
        scores.view(-1).index_fill_(0, flat, float("-inf"))
    if excluded is not None:
        scores[:, excluded] = float("-inf")
    if k < n_items:
        # one extra candidate tells whether a tie straddles the boundary (k-th == (k+1)-th)
        values, idx = torch.topk(scores, k + 1, dim=1, sorted=True)
        values, idx = _order_rows(values, idx)
        tied = (values[:, k - 1] == values[:, k]).nonzero().flatten()
        values, idx = values[:, :k].clone(), idx[:, :k].clone()
        if tied.numel():  # rare: resolve exactly with a stable full sort of those rows only
            full = torch.sort(scores[tied], dim=1, descending=True, stable=True)
            values[tied], idx[tied] = full.values[:, :k], full.indices[:, :k]
    else:
        full = torch.sort(scores, dim=1, descending=True, stable=True)
        values, idx = full.values[:, :k], full.indices[:, :k]
    kept, index = values.cpu().numpy(), idx.cpu().numpy()
    unseen = np.isfinite(kept)
    return np.where(unseen, index, -1), np.where(unseen, kept, np.nan)


def _check_args(top_n: int, seen_indptr: np.ndarray, n_users: int | None = None) -> None:
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    if n_users is not None and len(seen_indptr) != n_users + 1:
        raise ValueError("seen_indptr must have n_users + 1 entries")


NAN_MESSAGE = "the model's scores contain NaN or inf (training diverged?); lower lr_max or check the input ratings"


class _Progress:
    """Calls ``progress(done, total)`` at most every ``every`` users (and at the end)."""

    def __init__(self, progress: Callable[[int, int], None] | None, total: int, every: int):
        self.progress, self.total, self.every, self.reported = progress, total, every, 0

    def __call__(self, done: int) -> None:
        if self.progress is not None and (done - self.reported >= self.every or done == self.total):
            self.reported = done
            self.progress(done, self.total)


def top_n_unseen_blocks(
    score_block: Callable[[torch.Tensor], torch.Tensor],
    n_items: int,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    top_n: int,
    users: np.ndarray,
    *,
    device: torch.device | str = "cpu",
    memory_mb: int = 512,
    block_users: int | None = None,
    bytes_per_pair: int = 8,
    progress: Callable[[int, int], None] | None = None,
    exclude_items: np.ndarray | None = None,
    engine: Engine = "auto",
) -> TopN:
    """Rank every item a user has not seen by ``score_block(user_indices) -> (b, n_items)`` scores.

    ``seen_indptr`` / ``seen_indices`` is a CSR over all user indices; ``exclude_items`` are masked for
    everyone. The block size is what fits ``memory_mb`` at ``bytes_per_pair`` per (user, item) (scores
    plus the scorer's own temporaries), unless ``block_users`` sets it. ``progress(done, total)`` is
    called after each block. ``engine``: 'numba' (CPU kernel, ``recmodel.topk``), 'torch' (torch ops on
    the scores' device), or 'auto' (numba for CPU scores, torch on a GPU).
    """
    _check_args(top_n, seen_indptr)
    device = torch.device(device)
    use_numba = _uses_kernel(engine, device)
    users = np.asarray(users, dtype=np.int64)
    k = min(top_n, n_items)
    out_items = np.full((users.size, top_n), -1, dtype=np.int64)
    out_scores = np.full((users.size, top_n), np.nan, dtype=np.float32)
    excluded = np.asarray(exclude_items if exclude_items is not None else [], dtype=np.int64)
    excluded_t = torch.as_tensor(excluded, device=device) if excluded.size else None
    block = block_users or max(1, int(memory_mb * 2**20 // (n_items * bytes_per_pair)))
    workers = _worker_count()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, users.size, block):
            block_users_ = users[start : start + block]
            b = block_users_.size
            scores = score_block(torch.as_tensor(block_users_, device=device)).float()
            if torch.isnan(scores).any():
                raise ValueError(NAN_MESSAGE)
            if use_numba:
                _select_numba(
                    scores.cpu().contiguous().numpy(),
                    block_users_,
                    seen_indptr,
                    seen_indices,
                    excluded,
                    k,
                    out_items[start : start + b],
                    out_scores[start : start + b],
                    pool,
                    workers,
                )
            else:
                items_, values = _select_torch(scores, block_users_, seen_indptr, seen_indices, excluded_t, k, n_items)
                out_items[start : start + b, :k], out_scores[start : start + b, :k] = items_, values
            if progress is not None:
                progress(start + b, users.size)
    log.info(
        "scored %d users x %d items in %.2fs (blocks of %d users, %s)",
        users.size,
        n_items,
        time.perf_counter() - t0,
        block,
        "numba" if use_numba else "torch",
    )
    return TopN(users=users, items=out_items, scores=out_scores)


TILE_USERS = 64  # users per GEMM tile on the CPU: 64 x 59k scores (15 MB) stay in L3 for the selection


def top_n_unseen(
    user_factors: torch.Tensor,
    item_factors: torch.Tensor,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    top_n: int,
    *,
    users: np.ndarray | None = None,
    memory_mb: int = 512,
    block_users: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    exclude_items: np.ndarray | None = None,
    engine: Engine = "auto",
) -> TopN:
    """Top-N unseen items by ``user_factors @ item_factors.T``, ties by item index.

    On the CPU (engine 'auto' or 'numba') each worker thread takes a tile of ``TILE_USERS`` users at a
    time: a single-threaded sgemm into its own reused buffer, then the selection kernel on the still
    cached scores. One pool of ``torch.get_num_threads()`` threads does everything; BLAS is held to one
    thread meanwhile, because its idle workers spin and would steal the cores from the selection
    (on 2 cores that cost 1.5-2x). On a GPU: one product per block of users and ``torch.topk``.
    """
    if user_factors.shape[1] != item_factors.shape[1]:
        raise ValueError(f"factor sizes differ: users {tuple(user_factors.shape)} vs items {tuple(item_factors.shape)}")
    _check_args(top_n, seen_indptr, user_factors.shape[0])
    if not (torch.isfinite(user_factors).all() and torch.isfinite(item_factors).all()):
        raise ValueError(NAN_MESSAGE)
    users = np.arange(user_factors.shape[0], dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
    device = user_factors.device
    if not _uses_kernel(engine, device):
        return top_n_unseen_blocks(
            BlockProduct(user_factors, item_factors),
            item_factors.shape[0],
            seen_indptr,
            seen_indices,
            top_n,
            users,
            device=device,
            memory_mb=memory_mb,
            block_users=block_users,
            progress=progress,
            exclude_items=exclude_items,
            engine=engine,
        )
    U = user_factors.detach().float().cpu().numpy()
    Vt = np.ascontiguousarray(item_factors.detach().float().cpu().numpy().T)
    n_items = Vt.shape[1]
    k = min(top_n, n_items)
    excluded = np.asarray(exclude_items if exclude_items is not None else [], dtype=np.int64)
    tile = block_users or max(1, min(TILE_USERS, int(memory_mb * 2**20 // (n_items * 4 * _worker_count()))))
    out_items = np.empty((users.size, top_n), dtype=np.int64)
    out_scores = np.empty((users.size, top_n), dtype=np.float32)
    local = threading.local()

    def score_tile(start: int) -> int:
        rows = users[start : start + tile]
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = np.empty((tile, n_items), dtype=np.float32)
        scores = buf[: rows.size]
        if Vt.shape[0] == 1:  # rank 1 (popularity): numpy's matmul skips BLAS at K=1; a broadcast is faster
            np.multiply(U[rows], Vt, out=scores)
        else:
            np.matmul(U[rows], Vt, out=scores)
        top_k_rows(
            scores,
            scores.view(np.uint32),
            rows,
            seen_indptr,
            seen_indices,
            excluded,
            k,
            out_items[start : start + rows.size],
            out_scores[start : start + rows.size],
        )
        return start + rows.size

    report = _Progress(progress, users.size, every=max(tile, 4096))
    t0 = time.perf_counter()
    workers = _worker_count()
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(workers) as pool:
        for done in pool.map(score_tile, range(0, users.size, tile)):
            report(done)
    log.info(
        "scored %d users x %d items in %.2fs (tiles of %d users, %d threads)",
        users.size,
        n_items,
        time.perf_counter() - t0,
        tile,
        workers,
    )
    return TopN(users=users, items=out_items, scores=out_scores)


def top_n_shared(
    scores: torch.Tensor,
    seen_indptr: np.ndarray,
    seen_indices: np.ndarray,
    top_n: int,
    users: np.ndarray,
    exclude_items: np.ndarray | None = None,
) -> TopN:
    """Top-N unseen items when every user has the same ``scores`` (one per item; popularity): each user's
    list is the best items it has not seen, read off one global order (``topk.top_k_shared``), with the
    same ties (item index ascending) and padding as scoring every user's row. At 1.45M users x 203k items
    that took 60 s; this takes about as long as reading the users' seen items."""
    _check_args(top_n, seen_indptr)
    values = scores.detach().float().cpu().numpy()
    if not np.isfinite(values).all():
        raise ValueError(NAN_MESSAGE)
    t0 = time.perf_counter()
    order = np.lexsort((np.arange(values.size), -values))  # score desc, then item index asc
    banned = np.zeros(values.size, dtype=np.bool_)
    if exclude_items is not None:
        banned[np.asarray(exclude_items, dtype=np.int64)] = True
    users = np.asarray(users, dtype=np.int64)
    items = np.empty((users.size, top_n), dtype=np.int64)
    work = seen_indptr[users + 1] - seen_indptr[users] + top_n  # a user's walk: its seen items, then its list
    runs = even_runs(np.concatenate([[0], np.cumsum(work)]))
    top_k_shared(order, users, seen_indptr, np.asarray(seen_indices, dtype=np.int64), banned, runs, items)
    top_scores = np.where(items >= 0, values[np.maximum(items, 0)], np.float32(np.nan)).astype(np.float32)
    log.info(
        "listed %d users x %d items in %.2fs (one order for everyone)",
        users.size,
        values.size,
        time.perf_counter() - t0,
    )
    return TopN(users=users, items=items, scores=top_scores)


def brute_force_top_n(
    user_factors: np.ndarray, item_factors: np.ndarray, seen: set[tuple[int, int]], top_n: int
) -> list[list[int]]:
    """Reference for tests: float64, one user at a time, Python sort by (score desc, item asc)."""
    scores = user_factors.astype(np.float64) @ item_factors.astype(np.float64).T
    out = []
    for u in range(scores.shape[0]):
        cands = [(-scores[u, i], i) for i in range(scores.shape[1]) if (u, i) not in seen]
        out.append([i for _, i in sorted(cands)[:top_n]])
    return out


def recommend(
    ranker: Ranker,
    seen: Ratings,
    users: np.ndarray,
    top_n: int,
    *,
    memory_mb: int = 512,
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    exclude_items: np.ndarray | None = None,
) -> TopN:
    """Top-N unseen items per user by the ranker's scores, in memory-bounded blocks; ``exclude_items``
    (indices) are never recommended to anyone. A ranker that is a product of factors takes the fused
    path (one product per tile with the selection, on the CPU); any other scores a block at a time."""
    users = np.asarray(users, dtype=np.int64)
    if users.size and (users.min() < 0 or users.max() >= seen.n_users):
        raise ValueError(
            f"user indices must lie in [0, {seen.n_users}) (got {users.min()}..{users.max()}): an id the "
            "model was not trained on?"
        )
    indptr, indices = seen.seen()
    if not ranker.personal:  # everyone's scores are one row: one order, no score matrix
        shared = ranker.score_block(torch.zeros(1, dtype=torch.int64, device=device))[0]
        return top_n_shared(shared, indptr, indices, top_n, users, exclude_items)
    factors = ranker.factors()
    if factors is not None:
        return top_n_unseen(
            *factors,
            indptr,
            indices,
            top_n,
            users=users,
            memory_mb=memory_mb,
            progress=progress,
            exclude_items=exclude_items,
        )
    return top_n_unseen_blocks(
        ranker.score_block,
        seen.n_items,
        indptr,
        indices,
        top_n,
        users,
        device=device,
        memory_mb=memory_mb,
        bytes_per_pair=ranker.bytes_per_pair,
        progress=progress,
        exclude_items=exclude_items,
    )
