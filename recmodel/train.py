"""Fitting a rating model: one-cycle AdamW, batches sliced from tensors in memory, seeded shuffling."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numba
import numpy as np
import torch
from numba import njit, prange
from torch import nn

from .bayes import BayesFactors, fit_bayes
from .config import TrainConfig
from .models import RATERS, BayesBlend, DotProductBias, RatingModule
from .permute import permutation
from .ratings import Ratings

log = logging.getLogger(__name__)


@dataclass
class Interactions:
    """Ratings by contiguous index, as tensors on one device."""

    users: torch.Tensor  # int64
    items: torch.Tensor  # int64
    ratings: torch.Tensor  # float32

    @classmethod
    def from_numpy(
        cls, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, device: torch.device
    ) -> Interactions:
        return cls(
            torch.tensor(users, dtype=torch.int64, device=device),
            torch.tensor(items, dtype=torch.int64, device=device),
            torch.tensor(ratings, dtype=torch.float32, device=device),
        )

    def __len__(self) -> int:
        return self.users.numel()

    def subset(self, idx: torch.Tensor) -> Interactions:
        return Interactions(self.users[idx], self.items[idx], self.ratings[idx])


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    valid_rmse: float | None
    valid_mae: float | None
    seconds: float


@dataclass
class FitResult:
    history: list[EpochStats] = field(default_factory=list)
    seconds: float = 0.0
    n_train: int = 0
    n_valid: int = 0

    @property
    def final(self) -> EpochStats:
        return self.history[-1]


MIN_STEPS_PER_EPOCH = 100


def effective_batch_size(n: int, batch_size: int, max_steps: int | None = None) -> int:
    """``batch_size``, made smaller on small data so an epoch still has ``MIN_STEPS_PER_EPOCH`` steps
    (5 epochs of 10 steps leave a model worse than the global mean; never below 32), and larger on big
    data so it has at most ``max_steps``: each step is a dense AdamW update of every row, so at ML-25M
    size batches of 512 would spend most of an epoch in the optimizer."""
    size = max(1, min(batch_size, max(32, n // MIN_STEPS_PER_EPOCH)))
    return max(size, math.ceil(n / max_steps)) if max_steps else size


@torch.no_grad()
def evaluate(model: nn.Module, data: Interactions, batch_size: int = 1 << 20) -> tuple[float, float]:
    """``(rmse, mae)`` of the model's predicted ratings (the dot model on the CPU: one numba pass, without the
    gathered ``(batch, factors)`` copies: 1 s and 400 MB per 2M ratings at 50 factors)."""
    if isinstance(model, DotProductBias) and data.users.device.type == "cpu":
        return _evaluate_dot(model, data)
    return _evaluate_torch(model, data, batch_size)


@njit(parallel=True, cache=True)
def _dot_error_sums(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    user_emb: np.ndarray,
    user_bias: np.ndarray,
    item_emb: np.ndarray,
    item_bias: np.ndarray,
    lo: float,
    hi: float,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Per chunk of ``chunk`` ratings: the sums of squared and of absolute errors of ``sigmoid_range(u . i + b_u
    + b_i)``, in float32 as the model computes it, summed in float64 (fixed chunks: the same totals with any
    number of threads)."""
    n, f = users.size, user_emb.shape[1]
    n_chunks = (n + chunk - 1) // chunk
    sq, ab = np.zeros(n_chunks), np.zeros(n_chunks)
    width = np.float32(hi - lo)
    for c in prange(n_chunks):
        s2 = s1 = 0.0
        for k in range(c * chunk, min(n, (c + 1) * chunk)):
            u, i = users[k], items[k]
            x = np.float32(0.0)
            for a in range(f):
                x += user_emb[u, a] * item_emb[i, a]
            x += user_bias[u, 0] + item_bias[i, 0]
            err = np.float64(np.float32(1.0) / (np.float32(1.0) + np.exp(-x)) * width + np.float32(lo) - ratings[k])
            s2 += err * err
            s1 += abs(err)
        sq[c], ab[c] = s2, s1
    return sq, ab


def _evaluate_dot(model: DotProductBias, data: Interactions) -> tuple[float, float]:
    lo, hi = model.y_range
    ue, ub, ie, ib = (
        m.weight.detach().numpy() for m in (model.user_emb, model.user_bias, model.item_emb, model.item_bias)
    )
    sq, ab = _dot_error_sums(
        data.users.numpy(), data.items.numpy(), data.ratings.numpy(), ue, ub, ie, ib, lo, hi, 1 << 16
    )
    n = max(len(data), 1)
    return math.sqrt(float(sq.sum()) / n), float(ab.sum()) / n


def _evaluate_torch(model: nn.Module, data: Interactions, batch_size: int = 1 << 20) -> tuple[float, float]:
    sq = torch.zeros((), dtype=torch.float64, device=data.ratings.device)
    ab = torch.zeros_like(sq)
    for s in range(0, len(data), batch_size):
        err = model(data.users[s : s + batch_size], data.items[s : s + batch_size]) - data.ratings[s : s + batch_size]
        sq += (err.double() ** 2).sum()
        ab += err.double().abs().sum()
    n = max(len(data), 1)
    return math.sqrt(sq.item() / n), ab.item() / n


def _anneal_cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def one_cycle_schedule(
    lr_max: float,
    total_steps: int,
    pct_start: float = 0.25,
    div: float = 25.0,
    final_div: float = 1e5,
    moms: tuple[float, float] = (0.95, 0.85),
) -> tuple[np.ndarray, np.ndarray]:
    """fastai's one-cycle schedule, ``(lr, beta1)`` of every step: lr warms up along a cosine over the first
    ``pct_start`` of the steps from ``lr_max / div`` to ``lr_max``, then anneals to ``lr_max / div / final_div``;
    Adam's beta1 moves ``moms[0] -> moms[1] -> moms[0]`` against it. The same floats as torch's
    ``OneCycleLR`` (tested), without an optimizer object."""
    start_lr = lr_max / div
    phases = (
        (float(pct_start * total_steps) - 1, start_lr, lr_max, moms[0], moms[1]),
        (total_steps - 1, lr_max, start_lr / final_div, moms[1], moms[0]),
    )
    lrs, beta1s = np.empty(total_steps), np.empty(total_steps)
    for step in range(total_steps):
        begin = 0.0
        for k, (end, lr0, lr1, m0, m1) in enumerate(phases):
            if step <= end or k == len(phases) - 1:
                pct = (step - begin) / (end - begin)
                lrs[step], beta1s[step] = _anneal_cos(lr0, lr1, pct), _anneal_cos(m0, m1, pct)
                break
            begin = end
    return lrs, beta1s


class OneCycleAdamW:
    """AdamW (decoupled weight decay on every parameter, as fastai; betas (beta1, 0.99), eps 1e-5) stepped
    along ``one_cycle_schedule``. Each ``step()`` is torch's fused AdamW kernel (torch >= 2.4 on the CPU;
    several times faster than the foreach one over ML-25M's 11M parameters, docs/scaling.md), called
    directly: ``torch.optim``'s optimizer objects import ``torch._dynamo`` on first use, 1.8 s of a small
    night on 2 cores. The steps are bit for bit ``torch.optim.AdamW(fused=True)`` under ``OneCycleLR``
    (tested)."""

    beta2, eps = 0.99, 1e-5

    def __init__(self, params: Iterable[torch.Tensor], cfg: TrainConfig, total_steps: int) -> None:
        self.params = list(params)
        self.wd = cfg.wd
        self.lrs, self.beta1s = one_cycle_schedule(cfg.lr_max, total_steps)
        self.moments = {id(p): (torch.zeros_like(p), torch.zeros_like(p)) for p in self.params}
        self.counts = {id(p): torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params}
        self.taken = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        k = min(self.taken, len(self.lrs) - 1)
        self.taken += 1
        live, grads = [], []  # a parameter without a gradient is left alone, as torch.optim does
        for p in self.params:
            if p.grad is not None:
                live.append(p)
                grads.append(p.grad)
        if not live:
            return
        counts = [self.counts[id(p)] for p in live]
        torch._foreach_add_(counts, 1)
        torch._fused_adamw_(
            live,
            grads,
            [self.moments[id(p)][0] for p in live],
            [self.moments[id(p)][1] for p in live],
            [],
            counts,
            lr=float(self.lrs[k]),
            beta1=float(self.beta1s[k]),
            beta2=self.beta2,
            weight_decay=self.wd,
            eps=self.eps,
            amsgrad=False,
            maximize=False,
        )


def epoch_order(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """An epoch's shuffle: a random permutation of the ``n`` training rows, drawn from ``generator``. On the
    CPU it is ``permute.permutation`` (every core; ``torch.randperm`` is one thread, ~0.2 s at 8M ratings)
    under a key drawn from the generator; on a GPU, ``torch.randperm`` there."""
    if device.type != "cpu":
        return torch.randperm(n, generator=generator, device=device)
    key = int(torch.randint(-(2**63), 2**63 - 1, (1,), generator=generator, dtype=torch.int64))
    return torch.from_numpy(permutation(n, key))


def _fit_dot(
    model: DotProductBias,
    train: Interactions,
    cfg: TrainConfig,
    generator: torch.Generator,
    batch_size: int,
    epoch_done: Callable[[int, float, float], None],
) -> None:
    """The dot model with its gradients written out by hand: no autograd graph per batch.

    For ``x = u.i + b_u + b_i`` and ``pred = lo + (hi - lo) sigmoid(x)``, the batch-mean MSE gives
    ``dL/dx = 2 (pred - r) (hi - lo) s (1 - s) / B``; then ``dL/du = dL/dx * i``, ``dL/di = dL/dx * u``,
    ``dL/db = dL/dx``, summed per row with ``index_add_`` (deterministic on the CPU). The step is the
    same dense AdamW + one-cycle as every other model (tested equal to the autograd path).
    """
    device = train.users.device
    lo, hi = model.y_range
    f = model.user_emb.embedding_dim
    # [embedding | bias] in one table per side (U users, V items): one gather and one scatter per side and step
    U = torch.cat([model.user_emb.weight.data, model.user_bias.weight.data], dim=1).requires_grad_()
    V = torch.cat([model.item_emb.weight.data, model.item_bias.weight.data], dim=1).requires_grad_()
    U.grad, V.grad = torch.zeros_like(U), torch.zeros_like(V)
    n = len(train)
    opt = OneCycleAdamW([U, V], cfg, cfg.epochs * max(1, math.ceil(n / batch_size)))
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = epoch_order(n, generator, device)
        users, items, ratings = (x.index_select(0, order) for x in (train.users, train.items, train.ratings))
        del order  # shuffled copies once per epoch, then contiguous slices: no gather per batch
        loss = torch.zeros((), dtype=torch.float64, device=device)
        for s in range(0, n, batch_size):
            u, i, r = users[s : s + batch_size], items[s : s + batch_size], ratings[s : s + batch_size]
            pu, qi = U.detach().index_select(0, u), V.detach().index_select(0, i)  # (B, f + 1): factors, bias
            x = (pu[:, :f] * qi[:, :f]).sum(1) + pu[:, f] + qi[:, f]
            sig = torch.sigmoid(x)
            err = lo + (hi - lo) * sig - r
            loss += (err.double() ** 2).sum()
            dx = (err * sig * (1 - sig) * (2 * (hi - lo) / u.numel()))[:, None]
            # d/d[u | b_u] = dx * [i | 1] and d/d[i | b_i] = dx * [u | 1], built in place in the gathered rows
            qi[:, f], pu[:, f] = 1.0, 1.0
            U.grad.index_add_(0, u, qi.mul_(dx))
            V.grad.index_add_(0, i, pu.mul_(dx))
            opt.step()
            U.grad.index_fill_(0, u, 0.0)  # only the rows this batch wrote: cheaper than zero_() on all rows
            V.grad.index_fill_(0, i, 0.0)
        for table, emb, bias in ((U, model.user_emb, model.user_bias), (V, model.item_emb, model.item_bias)):
            emb.weight.data.copy_(table.detach()[:, :f])
            bias.weight.data.copy_(table.detach()[:, f:])
        epoch_done(epoch, loss.item() / max(n, 1), t0)


@njit(inline="always")
def _adamw_row(
    P: np.ndarray,
    S: np.ndarray,
    r: int,
    G: np.ndarray,
    k: int,
    b1: np.float32,
    c1: np.float32,
    b2: np.float32,
    c2: np.float32,
    decay: np.float32,
    step_size: np.float32,
    inv_bias2: np.float32,
    eps: np.float32,
) -> None:  # pragma: no cover - compiled
    """AdamW's step on row ``r`` of ``P`` with the gradient ``G[k]``; ``S[r]`` holds its moments [m | v]."""
    w = P.shape[1]
    for a in range(w):
        ga = G[k, a]
        ma = b1 * S[r, a] + c1 * ga
        va = b2 * S[r, w + a] + c2 * ga * ga
        S[r, a] = ma
        S[r, w + a] = va
        P[r, a] = P[r, a] * decay - step_size * ma / (np.sqrt(va * inv_bias2) + eps)


@njit(inline="always")
def _add_gradient(
    G: np.ndarray,
    mark: np.ndarray,
    slot: np.ndarray,
    touched: np.ndarray,
    first_slot: int,
    n: int,
    row: int,
    step: int,
    d: np.float32,
    other: np.ndarray,
    o: int,
) -> int:  # pragma: no cover - compiled
    """Adds one rating's term ``d * [other[o] | 1]`` to ``row``'s gradient in ``G``. At the row's first touch
    in ``step`` it takes the next of this thread's slots (``first_slot + n``, listed in ``touched``) and the
    term is written there; later terms add to it. Returns the thread's count of touched rows."""
    f = other.shape[1] - 1
    if mark[row] != step:
        k = first_slot + n
        mark[row], slot[row], touched[k] = step, k, row
        for a in range(f):
            G[k, a] = d * other[o, a]
        G[k, f] = d
        return n + 1
    k = slot[row]
    for a in range(f):
        G[k, a] += d * other[o, a]
    G[k, f] += d
    return n


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def _dot_epoch(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    batch_size: int,
    U: np.ndarray,
    V: np.ndarray,
    SU: np.ndarray,
    SV: np.ndarray,
    lrs: np.ndarray,
    beta1s: np.ndarray,
    beta2: float,
    eps: float,
    wd: float,
    step0: int,
    lo: float,
    hi: float,
    parts: int,
    dense: bool,
) -> float:  # pragma: no cover - compiled
    """One epoch of the dot model with AdamW, every step fused: the batch's logits and ``dL/dx`` (in
    parallel), then each of ``parts`` threads owns the rows ``row % parts == p`` of both tables: it sums
    their gradients over the batch (in batch order: deterministic, whatever the threads) into its own
    share of a small table, one slot per row the batch touched (the cache holds it), and, in a second
    parallel pass, takes AdamW's step on them: on the rows the batch touched (lazy) or, when ``dense``, on
    every row, as torch's dense step does (an untouched row's gradient is 0: the table's last row).
    ``U``/``V`` are ``[factors | bias]`` per row; ``SU``/``SV`` hold, per row, Adam's first and second
    moments side by side (one contiguous read: the update is bound by random row access, not arithmetic).
    ``lrs``/``beta1s`` are the one-cycle schedule's values of this epoch's steps; ``step0`` counts the
    steps before it (Adam's bias correction). Returns the summed squared error."""
    n, f = users.size, U.shape[1] - 1
    loss = 0.0
    n_steps = (n + batch_size - 1) // batch_size
    # thread p's slots are p * cap .. p * cap + cap - 1; a row's mark is the last step that touched it and
    # its slot is where its gradient is then; the last row of GU/GI stays 0
    cap_u, cap_i = min(batch_size, U.shape[0]), min(batch_size, V.shape[0])
    GU = np.zeros((parts * cap_u + 1, f + 1), np.float32)
    GI = np.zeros((parts * cap_i + 1, f + 1), np.float32)
    touched_u, touched_i = np.empty(parts * cap_u, np.int64), np.empty(parts * cap_i, np.int64)
    mark_u, slot_u = np.full(U.shape[0], -1, np.int64), np.zeros(U.shape[0], np.int64)
    mark_i, slot_i = np.full(V.shape[0], -1, np.int64), np.zeros(V.shape[0], np.int64)
    counts = np.zeros((parts, 2), np.int64)
    for step in range(n_steps):
        s, e = step * batch_size, min(n, (step + 1) * batch_size)
        dx = np.empty(e - s, np.float32)
        sq = np.empty(e - s, np.float64)
        scale = np.float32(2.0 * (hi - lo) / (e - s))
        for b in prange(e - s):
            pu, qi = U[users[s + b]], V[items[s + b]]
            x = pu[f] + qi[f]
            for a in range(f):
                x += pu[a] * qi[a]
            sig = np.float32(1.0) / (np.float32(1.0) + np.exp(-x))
            err = np.float32(lo) + np.float32(hi - lo) * sig - ratings[s + b]
            sq[b] = np.float64(err) * np.float64(err)
            dx[b] = err * sig * (np.float32(1.0) - sig) * scale
        for b in range(e - s):
            loss += sq[b]
        for p in prange(parts):  # no two threads write one row, and each row's sum runs in batch order
            n_u = n_i = 0
            for b in range(e - s):
                u, i = users[s + b], items[s + b]
                if u % parts == p:
                    n_u = _add_gradient(GU, mark_u, slot_u, touched_u, p * cap_u, n_u, u, step, dx[b], V, i)
                if i % parts == p:
                    n_i = _add_gradient(GI, mark_i, slot_i, touched_i, p * cap_i, n_i, i, step, dx[b], U, u)
            counts[p, 0], counts[p, 1] = n_u, n_i
        t = step0 + step + 1
        lr, beta1 = lrs[step], beta1s[step]
        # float32 coefficients, so the row loops below stay in float32 and vectorise
        b1, c1 = np.float32(beta1), np.float32(1.0 - beta1)
        b2, c2 = np.float32(beta2), np.float32(1.0 - beta2)
        decay = np.float32(1.0 - lr * wd)
        step_size = np.float32(lr / (1.0 - beta1**t))
        inv_bias2 = np.float32(1.0 / (1.0 - beta2**t))
        eps32 = np.float32(eps)
        zero_u, zero_i = GU.shape[0] - 1, GI.shape[0] - 1
        # AdamW once every sum is complete (the sums above read rows that other threads own)
        for p in prange(parts):
            if dense:  # every row, a contiguous share of each table per thread
                for r in range(p * U.shape[0] // parts, (p + 1) * U.shape[0] // parts):
                    k = slot_u[r] if mark_u[r] == step else zero_u
                    _adamw_row(U, SU, r, GU, k, b1, c1, b2, c2, decay, step_size, inv_bias2, eps32)
                for r in range(p * V.shape[0] // parts, (p + 1) * V.shape[0] // parts):
                    k = slot_i[r] if mark_i[r] == step else zero_i
                    _adamw_row(V, SV, r, GI, k, b1, c1, b2, c2, decay, step_size, inv_bias2, eps32)
            else:
                for k in range(p * cap_u, p * cap_u + counts[p, 0]):
                    _adamw_row(U, SU, touched_u[k], GU, k, b1, c1, b2, c2, decay, step_size, inv_bias2, eps32)
                for k in range(p * cap_i, p * cap_i + counts[p, 1]):
                    _adamw_row(V, SV, touched_i[k], GI, k, b1, c1, b2, c2, decay, step_size, inv_bias2, eps32)
    return loss


@njit(parallel=True, cache=True)
def _shuffle_into(
    order: np.ndarray,
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    out_users: np.ndarray,
    out_items: np.ndarray,
    out_ratings: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The epoch's shuffled copies, ``x[order]`` for the three columns in one parallel pass, into buffers
    reused from epoch to epoch (three torch ``index_select`` calls took ~0.6 s of each 8M-rating epoch)."""
    for k in prange(order.size):
        p = order[k]
        out_users[k] = users[p]
        out_items[k] = items[p]
        out_ratings[k] = ratings[p]


DENSE_MAX_ROWS = 100_000


def dense_steps(n: int, rows: int, cfg: TrainConfig) -> bool:
    """Whether the CPU dot model takes AdamW's dense step (every row, every step) rather than the lazy one
    (the rows a batch touches): dense below ``lazy_optimizer_from`` ratings and ``DENSE_MAX_ROWS`` users plus
    items. The dense step reads and writes every row's weights and moments at each of up to 1000 steps an
    epoch: past ~100k rows (61 MB at 50 factors) that leaves the cache, and on sparse data (an Amazon-like
    1.45M users and 400k items, 4M ratings) an epoch took 30 s against 0.5 s lazy."""
    return n < cfg.lazy_optimizer_from and rows <= DENSE_MAX_ROWS


def _fit_dot_numba(
    model: DotProductBias,
    train: Interactions,
    cfg: TrainConfig,
    generator: torch.Generator,
    batch_size: int,
    epoch_done: Callable[[int, float, float], None],
    dense: bool = False,
) -> None:
    """The dot model on the CPU, each epoch one numba kernel (``_dot_epoch``).

    On large data (``dense_steps``): AdamW that updates only the rows a batch touches (as torch's
    SparseAdam, with decoupled weight decay on those rows). The dense step reads and writes every row's
    weights and moments at every step, most of an epoch at ML-10M size; here a row that a batch does not
    touch keeps its moments and gets no decay that step, so a row is regularised in proportion to how often
    it is rated. Below it, ``dense``: the step of ``_fit_dot`` (every row, every step) without torch's
    per-operation cost, which is most of a small epoch (ML-100K: ~0.6 ms a step in ~12 torch calls).
    Same one-cycle schedule (``one_cycle_schedule``), same shuffling."""
    lo, hi = model.y_range
    f = model.user_emb.embedding_dim
    U = torch.cat([model.user_emb.weight.data, model.user_bias.weight.data], dim=1).contiguous()
    V = torch.cat([model.item_emb.weight.data, model.item_bias.weight.data], dim=1).contiguous()
    n = len(train)
    steps = max(1, math.ceil(n / batch_size))
    lrs, beta1s = one_cycle_schedule(cfg.lr_max, cfg.epochs * steps)
    beta2, eps = OneCycleAdamW.beta2, OneCycleAdamW.eps
    Un, Vn = U.numpy(), V.numpy()
    # per row: Adam's moments m and v (the gradients stay in the kernel's small per-step table)
    SU = np.zeros((Un.shape[0], 2 * Un.shape[1]), np.float32)
    SV = np.zeros((Vn.shape[0], 2 * Vn.shape[1]), np.float32)
    all_users, all_items, all_ratings = (x.numpy() for x in (train.users, train.items, train.ratings))
    users, items, ratings = np.empty_like(all_users), np.empty_like(all_items), np.empty_like(all_ratings)
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        order = epoch_order(n, generator, U.device).numpy()
        _shuffle_into(order, all_users, all_items, all_ratings, users, items, ratings)
        del order
        window = slice((epoch - 1) * steps, epoch * steps)
        loss = _dot_epoch(
            users,
            items,
            ratings,
            batch_size,
            Un,
            Vn,
            SU,
            SV,
            lrs[window],
            beta1s[window],
            beta2,
            eps,
            cfg.wd,
            (epoch - 1) * steps,
            lo,
            hi,
            numba.get_num_threads(),
            dense,
        )
        for table, emb, bias in ((U, model.user_emb, model.user_bias), (V, model.item_emb, model.item_bias)):
            emb.weight.data.copy_(table[:, :f])
            bias.weight.data.copy_(table[:, f:])
        epoch_done(epoch, loss / max(n, 1), t0)


def fit(
    model: nn.Module,
    train: Interactions,
    valid: Interactions | None,
    cfg: TrainConfig,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> FitResult:
    """Train with MSE, AdamW (decoupled wd on every embedding, as fastai) and a one-cycle schedule.

    The dot model skips autograd (``_fit_dot``: hand-written gradients, same optimizer and schedule).

    The schedule follows fastai's ``fit_one_cycle``: lr warms up over the first 25% of steps to
    ``lr_max`` (from ``lr_max / 25``) and anneals to ``lr_max / 2.5e6``; Adam's beta1 moves 0.95 -> 0.85 -> 0.95
    against it.
    Shuffling uses a generator seeded from ``cfg.seed``, so the same seed on CPU gives the same model.
    """
    device = train.users.device
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    n = len(train)
    batch_size = effective_batch_size(n, cfg.batch_size, cfg.max_steps_per_epoch)
    if batch_size != cfg.batch_size:
        log.info(
            "batch size %d for %d ratings (%d to %d steps per epoch)",
            batch_size,
            n,
            MIN_STEPS_PER_EPOCH,
            cfg.max_steps_per_epoch,
        )
    result = FitResult(n_train=n, n_valid=len(valid) if valid is not None else 0)
    start = time.perf_counter()

    def epoch_done(epoch: int, train_loss: float, t0: float) -> None:
        seconds = time.perf_counter() - t0  # training only; validation below is not counted
        model.eval()
        rmse, mae = evaluate(model, valid) if valid is not None and len(valid) else (None, None)
        stats = EpochStats(epoch, train_loss, rmse, mae, seconds)
        result.history.append(stats)
        log.info(
            "epoch %d/%d train_mse=%.4f valid_rmse=%s valid_mae=%s (%.2fs, %.0f ratings/s, ETA %.0fs)",
            epoch,
            cfg.epochs,
            stats.train_loss,
            f"{rmse:.4f}" if rmse is not None else "-",
            f"{mae:.4f}" if mae is not None else "-",
            stats.seconds,
            n / max(stats.seconds, 1e-9),
            (time.perf_counter() - start) / epoch * (cfg.epochs - epoch),
        )
        if on_epoch is not None:
            on_epoch(stats)

    trainer = EPOCH_TRAINERS.get(getattr(model, "kind", ""), _fit_autograd)
    if trainer is _fit_dot and device.type == "cpu":  # one numba kernel per epoch: lazy AdamW on large data
        assert isinstance(model, DotProductBias)
        rows = model.user_emb.num_embeddings + model.item_emb.num_embeddings
        trainer = functools.partial(_fit_dot_numba, dense=dense_steps(n, rows, cfg))
    with torch.set_grad_enabled(trainer is _fit_autograd):
        trainer(model, train, cfg, generator, batch_size, epoch_done)
    result.seconds = time.perf_counter() - start
    return result


def _fit_autograd(
    model: nn.Module,
    train: Interactions,
    cfg: TrainConfig,
    generator: torch.Generator,
    batch_size: int,
    epoch_done: Callable[[int, float, float], None],
) -> None:
    """Any model: autograd, MSE, the same optimizer and schedule."""
    device = train.users.device
    n = len(train)
    opt = OneCycleAdamW(model.parameters(), cfg, cfg.epochs * max(1, math.ceil(n / batch_size)))
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = epoch_order(n, generator, device)
        total = torch.zeros((), device=device)
        for s in range(0, n, batch_size):
            idx = order[s : s + batch_size]
            loss = nn.functional.mse_loss(model(train.users[idx], train.items[idx]), train.ratings[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.detach() * idx.numel()
        epoch_done(epoch, total.item() / max(n, 1), t0)


# models with a faster trainer of their own (tested to take the same steps as ``_fit_autograd``)
EPOCH_TRAINERS: dict[str, Callable[..., None]] = {"dot": _fit_dot}


def warm_init(model: nn.Module, previous: nn.Module) -> list[str]:
    """Copy yesterday's weights into a new model: equal shapes whole, embeddings row by row (indices are
    append-only, so row k is the same user or item). New rows keep their fresh initialisation.
    Returns the names of tensors that could not be carried over."""
    old = previous.state_dict()
    skipped = []
    with torch.no_grad():
        for name, new in model.state_dict().items():
            prev = old.get(name)
            if prev is not None and prev.shape == new.shape:
                new.copy_(prev)
            elif prev is not None and prev.dim() == 2 and prev.shape[1] == new.shape[1]:
                n = min(prev.shape[0], new.shape[0])
                new[:n] = prev[:n]
            else:
                skipped.append(name)
    return skipped


def fit_rater(
    train: Ratings,
    cfg: TrainConfig,
    device: torch.device,
    valid: Ratings | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
    init: RatingModule | None = None,
    epochs: int | None = None,
    dot_half: tuple[RatingModule, FitResult] | None = None,
) -> tuple[RatingModule, FitResult]:
    """Fit the configured rating model (its own seed: same data and seed give the same model on CPU).

    ``init`` warm-starts from a previous model (see ``warm_init``), usually with fewer ``epochs``.
    ``dot_half``: for the Bayesian blend, a dot model already fitted by ``fit_rater`` on the same data with
    the same settings (a search's trial); it is copied instead of fitted again, which gives the same model.
    """
    cfg = cfg.for_model()
    if epochs is not None:
        cfg = cfg.model_copy(update={"epochs": epochs})
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = RATERS[cfg.rating_model].build(train.n_users, train.n_items, cfg, gen)
    if init is not None:
        skipped = warm_init(model, init)
        if skipped:
            log.info("warm start: %s could not be carried over (shapes changed) and start fresh", ", ".join(skipped))
    model.to(device)
    tr = Interactions.from_numpy(train.users, train.items, train.ratings, device)
    va = (
        Interactions.from_numpy(valid.users, valid.items, valid.ratings, device)
        if valid is not None and len(valid)
        else None
    )
    if isinstance(model, BayesBlend):
        half = dot_half if init is None else None  # a warm start fits its own dot half from yesterday's
        if half is not None:
            model.dot.load_state_dict(half[0].state_dict())
        return model, _fit_blend(
            model, train, tr, va, cfg, on_epoch, warm=init is not None, dot_fit=half[1] if half else None
        )
    return model, fit(model, tr, va, cfg, on_epoch)


def _fit_blend(
    model: BayesBlend,
    data: Ratings,
    train: Interactions,
    valid: Interactions | None,
    cfg: TrainConfig,
    on_epoch: Callable[[EpochStats], None] | None,
    warm: bool,
    dot_fit: FitResult | None = None,
) -> FitResult:
    """The dot half by ``fit`` (its epochs are the history; ``dot_fit``: already fitted, its history is
    copied), then the Bayesian half by Gibbs sampling (one more history entry: the blend's own train MSE and
    validation scores)."""
    if dot_fit is None:
        result = fit(model.dot, train, valid, cfg, on_epoch)
    else:
        result = FitResult(list(dot_fit.history), dot_fit.seconds, dot_fit.n_train, dot_fit.n_valid)
    t0 = time.perf_counter()
    previous = (
        BayesFactors(
            mu=float(model.mu),
            user_bias=model.user_bias.cpu().numpy(),
            item_bias=model.item_bias.cpu().numpy(),
            user_factors=model.user_factors.cpu().numpy(),
            item_factors=model.item_factors.cpu().numpy(),
            noise_std=0.0,
        )
        if warm
        else None
    )
    post = fit_bayes(
        data.users,
        data.items,
        data.ratings,
        data.n_users,
        data.n_items,
        factors=cfg.bayes_factors,
        iterations=cfg.bayes_iterations,
        burn_in=cfg.bayes_burn_in,
        seed=cfg.seed,
        init=previous,
    )
    with torch.no_grad():
        model.mu.fill_(post.mu)
        for name in ("user_bias", "item_bias", "user_factors", "item_factors"):
            getattr(model, name).copy_(torch.from_numpy(getattr(post, name)))
        model.weight.fill_(cfg.bayes_weight)  # the configured share, never yesterday's
        if len(data):
            model.clip.copy_(torch.tensor([float(data.ratings.min()), float(data.ratings.max())]))
    seconds = time.perf_counter() - t0
    train_mse = evaluate(model, train)[0] ** 2
    rmse, mae = evaluate(model, valid) if valid is not None and len(valid) else (None, None)
    stats = EpochStats(len(result.history) + 1, train_mse, rmse, mae, seconds)
    log.info(
        "bayes blend (w=%.2f): train_mse=%.4f valid_rmse=%s (Gibbs %.1fs)",
        cfg.bayes_weight,
        train_mse,
        f"{rmse:.4f}" if rmse is not None else "-",
        seconds,
    )
    result.history.append(stats)
    result.seconds += seconds
    if on_epoch is not None:
        on_epoch(stats)
    return result
