"""Fitting a rating model: seeded split, one-cycle AdamW, batches sliced from tensors in memory."""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn

from .config import TrainConfig

log = logging.getLogger(__name__)


@dataclass
class Interactions:
    """Ratings by contiguous index, as tensors on one device."""

    users: torch.Tensor  # int64
    items: torch.Tensor  # int64
    ratings: torch.Tensor  # float32

    @classmethod
    def from_numpy(cls, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, device: torch.device) -> "Interactions":
        return cls(
            torch.tensor(users, dtype=torch.int64, device=device),
            torch.tensor(items, dtype=torch.int64, device=device),
            torch.tensor(ratings, dtype=torch.float32, device=device),
        )

    def __len__(self) -> int:
        return self.users.numel()

    def subset(self, idx: torch.Tensor) -> "Interactions":
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


def effective_batch_size(n: int, batch_size: int) -> int:
    """``batch_size``, made smaller on small data so an epoch still has ``MIN_STEPS_PER_EPOCH`` steps
    (5 epochs of 10 steps leave a model worse than the global mean); never below 32."""
    return max(1, min(batch_size, max(32, n // MIN_STEPS_PER_EPOCH)))


def random_split(n: int, valid_pct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, valid)``: a seeded random ``valid_pct`` share goes to validation."""
    perm = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(n * valid_pct))
    return np.sort(perm[n_valid:]), np.sort(perm[:n_valid])


@torch.no_grad()
def evaluate(model: nn.Module, data: Interactions, batch_size: int = 1 << 20) -> tuple[float, float]:
    """``(rmse, mae)`` of the model's predicted ratings."""
    sq = torch.zeros((), dtype=torch.float64, device=data.ratings.device)
    ab = torch.zeros_like(sq)
    for s in range(0, len(data), batch_size):
        err = model(data.users[s:s + batch_size], data.items[s:s + batch_size]) - data.ratings[s:s + batch_size]
        sq += (err.double() ** 2).sum()
        ab += err.double().abs().sum()
    n = max(len(data), 1)
    return math.sqrt(sq.item() / n), ab.item() / n


def fit(
    model: nn.Module,
    train: Interactions,
    valid: Interactions | None,
    cfg: TrainConfig,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> FitResult:
    """Train with MSE, AdamW (decoupled wd on every embedding, as fastai) and a one-cycle schedule.

    The schedule follows fastai's ``fit_one_cycle``: lr warms up over the first 25% of steps to
    ``lr_max`` (from ``lr_max / 25``) and anneals to ``lr_max / 2.5e6``; Adam's beta1 moves 0.95 -> 0.85 -> 0.95 against it.
    Shuffling uses a generator seeded from ``cfg.seed``, so the same seed on CPU gives the same model.
    """
    device = train.users.device
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    n = len(train)
    batch_size = effective_batch_size(n, cfg.batch_size)
    if batch_size != cfg.batch_size:
        log.info("batch size %d for %d ratings (at least %d steps per epoch)", batch_size, n, MIN_STEPS_PER_EPOCH)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr_max, betas=(0.9, 0.99), eps=1e-5, weight_decay=cfg.wd)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr_max, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.25,
        div_factor=25.0, final_div_factor=1e5, base_momentum=0.85, max_momentum=0.95,
    )
    result = FitResult(n_train=n, n_valid=len(valid) if valid is not None else 0)
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        total = torch.zeros((), device=device)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            loss = nn.functional.mse_loss(model(train.users[idx], train.items[idx]), train.ratings[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach() * idx.numel()
        model.eval()
        rmse, mae = evaluate(model, valid) if valid is not None and len(valid) else (None, None)
        stats = EpochStats(epoch, total.item() / max(n, 1), rmse, mae, time.perf_counter() - t0)
        result.history.append(stats)
        log.info(
            "epoch %d/%d train_mse=%.4f valid_rmse=%s valid_mae=%s (%.2fs)", epoch, cfg.epochs, stats.train_loss,
            f"{rmse:.4f}" if rmse is not None else "-", f"{mae:.4f}" if mae is not None else "-", stats.seconds,
        )
        if on_epoch is not None:
            on_epoch(stats)
    result.seconds = time.perf_counter() - start
    return result
