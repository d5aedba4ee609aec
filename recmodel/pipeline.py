"""Fit, recommend and evaluate: the steps the nightly and evaluation flows share.

Two models work together: a *rating model* (dot product or neural) predicts the published ``score``
and is judged by RMSE/MAE; a *ranker* orders the published lists and is judged by NDCG@k and friends.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl
import torch

from .baselines import fit_bias_only, fit_global_mean
from .config import RankConfig, RunConfig, TrainConfig
from .implicit import FactorRanker, PopularityRanker, fit_ease, fit_ials, fit_popularity, interaction_weights
from .metrics import mae, ranking_metrics, rmse
from .models import DotProductBias, EmbeddingNN
from .score import TopN, csr_from_pairs, top_n_unseen, top_n_unseen_blocks
from .train import FitResult, Interactions, fit, random_split

log = logging.getLogger(__name__)


@dataclass
class Ratings:
    """Ratings by contiguous index (numpy), with the catalog size they index into."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    n_users: int
    n_items: int

    def __len__(self) -> int:
        return self.users.size

    def take(self, idx: np.ndarray) -> "Ratings":
        return Ratings(self.users[idx], self.items[idx], self.ratings[idx], self.timestamps[idx], self.n_users, self.n_items)

    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        return csr_from_pairs(self.users, self.items, self.n_users)


def index_frames(*frames: pl.DataFrame) -> tuple[list[Ratings], np.ndarray, np.ndarray]:
    """Index raw ``user_id``/``item_id`` frames jointly: ``(ratings per frame, user ids, item ids)``."""
    user_ids = np.unique(np.concatenate([f["user_id"].to_numpy() for f in frames]))
    item_ids = np.unique(np.concatenate([f["item_id"].to_numpy() for f in frames]))
    out = [
        Ratings(np.searchsorted(user_ids, f["user_id"].to_numpy()), np.searchsorted(item_ids, f["item_id"].to_numpy()),
                f["rating"].to_numpy().astype(np.float32), f["timestamp"].to_numpy(), len(user_ids), len(item_ids))
        for f in frames
    ]
    return out, user_ids, item_ids


# ---------------------------------------------------------------- splits

def split_random(r: Ratings, test_pct: float, seed: int) -> tuple[Ratings, Ratings]:
    """A seeded random ``test_pct`` of all ratings is the test part."""
    train, test = random_split(len(r), test_pct, seed)
    return r.take(train), r.take(test)


def split_temporal(r: Ratings, test_pct: float) -> tuple[Ratings, Ratings]:
    """The latest ``test_pct`` of ratings by timestamp (one global cut) is the test part."""
    order = np.lexsort((np.arange(len(r)), r.timestamps))
    n_test = int(round(len(r) * test_pct))
    return r.take(np.sort(order[: len(r) - n_test])), r.take(np.sort(order[len(r) - n_test:]))


def split_leave_last(r: Ratings, n: int) -> tuple[Ratings, Ratings]:
    """Each user's ``n`` latest ratings are the test part; users with ``n`` or fewer ratings stay in train."""
    order = np.lexsort((np.arange(len(r)), -r.timestamps, r.users))  # per user, newest first
    counts = np.bincount(r.users, minlength=r.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(r)) - starts[r.users[order]]
    to_test = (rank < n) & (counts[r.users[order]] > n)
    return r.take(np.sort(order[~to_test])), r.take(np.sort(order[to_test]))


# ---------------------------------------------------------------- rating models

def warm_init(model: torch.nn.Module, previous: torch.nn.Module) -> list[str]:
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


def fit_rater(train: Ratings, cfg: TrainConfig, device: torch.device, valid: Ratings | None = None,
              on_epoch: Callable | None = None, init: DotProductBias | EmbeddingNN | None = None,
              epochs: int | None = None) -> tuple[DotProductBias | EmbeddingNN, FitResult]:
    """Fit the configured rating model (its own seed: same data and seed give the same model on CPU).

    ``init`` warm-starts from a previous model (see ``warm_init``), usually with fewer ``epochs``.
    """
    cfg = cfg.for_model()
    if epochs is not None:
        cfg = cfg.model_copy(update={"epochs": epochs})
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    if cfg.rating_model == "neural":
        model: DotProductBias | EmbeddingNN = EmbeddingNN(train.n_users, train.n_items, cfg.y_range, cfg.nn_hidden, gen)
    else:
        model = DotProductBias(train.n_users, train.n_items, cfg.n_factors, cfg.y_range, gen)
    if init is not None:
        skipped = warm_init(model, init)
        if skipped:
            log.info("warm start: %s could not be carried over (shapes changed) and start fresh", ", ".join(skipped))
    model.to(device)
    tr = Interactions.from_numpy(train.users, train.items, train.ratings, device)
    va = Interactions.from_numpy(valid.users, valid.items, valid.ratings, device) if valid is not None and len(valid) else None
    return model, fit(model, tr, va, cfg, on_epoch)


@torch.no_grad()
def predict(model: DotProductBias | EmbeddingNN, users: np.ndarray, items: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
    """Predicted ratings for (user, item) index pairs.

    The dot model is evaluated in float64, one row at a time by numpy: a pair's score then does not
    depend on which other pairs share its batch (torch's float32 reductions vary in the last bit with
    the batch's shape), so scoring shards on Dask publish exactly the local run's scores.
    """
    if isinstance(model, DotProductBias):
        U, I = (m.weight.detach().cpu().double().numpy() for m in (model.user_emb, model.item_emb))
        bu, bi = (m.weight.detach().cpu().double().numpy()[:, 0] for m in (model.user_bias, model.item_bias))
        lo, hi = model.y_range
        out = np.empty(len(users), dtype=np.float64)
        for s in range(0, len(users), batch):
            u, i = users[s:s + batch], items[s:s + batch]
            x = (U[u] * I[i]).sum(axis=1) + bu[u] + bi[i]
            out[s:s + batch] = lo + (hi - lo) * 0.5 * (1.0 + np.tanh(0.5 * x))  # sigmoid, no overflow
        return out
    device = next(model.parameters()).device
    model.eval()
    out = [model(torch.as_tensor(users[s:s + batch], device=device), torch.as_tensor(items[s:s + batch], device=device)).cpu()
           for s in range(0, len(users), batch)]
    return torch.cat(out).double().numpy() if out else np.empty(0)


@dataclass
class NeuralRanker:
    """All-pairs scoring for EmbeddingNN with the first layer split into per-user and per-item parts."""

    user_part: torch.Tensor  # (n_users, n_hidden) = W_u u + b
    item_part: torch.Tensor  # (n_items, n_hidden) = W_i i
    out: torch.nn.Linear

    @torch.no_grad()
    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.user_part[users][:, None, :] + self.item_part[None, :, :])
        return (hidden @ self.out.weight[0]) + self.out.bias[0]

    @property
    def bytes_per_pair(self) -> int:
        return 4 * (self.user_part.shape[1] + 2)


def rating_ranker(model: DotProductBias | EmbeddingNN) -> FactorRanker | NeuralRanker:
    """Rank by the rating model itself (by logit: the sigmoid keeps the order)."""
    if isinstance(model, EmbeddingNN):
        user_part, item_part = model.split_first_layer()
        return NeuralRanker(user_part, item_part, model.out)
    return FactorRanker(*model.ranking_factors())


# ---------------------------------------------------------------- rankers

def fit_ranker(train: Ratings, cfg: RankConfig, device: torch.device, seed: int,
               rater: DotProductBias | EmbeddingNN | None = None, init=None, iterations: int | None = None):
    """Fit the configured ranker on the training interactions (iALS can warm-start from ``init``)."""
    name = cfg.ranker
    if name == "rating":
        if rater is None:
            raise ValueError("ranker='rating' needs the fitted rating model")
        return rating_ranker(rater)
    if name == "popularity":
        return fit_popularity(train.items, train.n_items, device)
    weights = interaction_weights(train.ratings, cfg.relevance_threshold, cfg.rank_low_rating_weight)
    if name == "ease":
        return fit_ease(train.users, train.items, weights, train.n_users, train.n_items, lam=cfg.ease_lambda, device=device)
    return fit_ials(train.users, train.items, weights, train.n_users, train.n_items, factors=cfg.rank_factors,
                    reg=cfg.rank_reg, unobserved_weight=cfg.rank_unobserved_weight,
                    iterations=iterations or cfg.rank_iterations, cg_steps=cfg.rank_cg_steps, seed=seed, device=device,
                    init=init if isinstance(init, FactorRanker) else None)


def recommend(ranker, seen: Ratings, users: np.ndarray, top_n: int, *, memory_mb: int = 512,
              device: torch.device | str = "cpu", progress: Callable[[int, int], None] | None = None,
              exclude_items: np.ndarray | None = None) -> TopN:
    """Top-N unseen items per user by the ranker's scores, in memory-bounded blocks; ``exclude_items``
    (indices) are never recommended to anyone."""
    indptr, indices = seen.seen()
    if isinstance(ranker, PopularityRanker):  # the same scores for everyone: a rank-1 product
        ranker = FactorRanker(torch.ones(seen.n_users, 1, device=ranker.counts.device), ranker.counts[:, None])
    if isinstance(ranker, FactorRanker):  # one product per tile, fused with the selection on the CPU
        return top_n_unseen(ranker.user_factors, ranker.item_factors, indptr, indices, top_n, users=users,
                            memory_mb=memory_mb, progress=progress, exclude_items=exclude_items)
    return top_n_unseen_blocks(ranker.score_block, seen.n_items, indptr, indices, top_n, users, device=device,
                               memory_mb=memory_mb, bytes_per_pair=getattr(ranker, "bytes_per_pair", 8),
                               progress=progress, exclude_items=exclude_items)


# ---------------------------------------------------------------- evaluation

def ranking_report(ranker, train: Ratings, test: Ratings, k: int, threshold: float, *, memory_mb: int = 512,
                   device: torch.device | str = "cpu") -> dict[str, float]:
    """Ranking metrics at ``k`` for every user with a train history (see ``recmodel.metrics``)."""
    users = np.unique(train.users)
    top = recommend(ranker, train, users, k, memory_mb=memory_mb, device=device)
    row_of = np.full(train.n_users, -1)
    row_of[users] = np.arange(users.size)
    liked = (test.ratings >= threshold) & (row_of[test.users] >= 0)
    return ranking_metrics(top.items, row_of[test.users[liked]], test.items[liked], k, train.n_items)


def rating_report(pred: np.ndarray, test: Ratings) -> dict[str, float]:
    return {"rmse": rmse(pred, test.ratings), "mae": mae(pred, test.ratings)}


def compare(train: Ratings, test: Ratings, cfg: RunConfig, device: torch.device, k: int = 10,
            rating_models: tuple[str, ...] = ("dot", "neural"),
            rankers: tuple[str, ...] = ("ials", "ease", "rating", "popularity")) -> dict[str, dict]:
    """Every model and baseline on one split. ``"published"`` is what the nightly flow would publish:
    the configured ranker's lists with the configured rating model's scores."""
    threshold = cfg.rank.relevance_threshold
    out: dict[str, dict] = {}
    lo_hi = (cfg.rating_min, cfg.rating_max)
    out["global_mean"] = rating_report(fit_global_mean(train.ratings).predict(test.users, test.items), test)
    bias = fit_bias_only(train.users, train.items, train.ratings.astype(np.float64), train.n_users, train.n_items,
                         rating_range=lo_hi)
    out["bias_only"] = rating_report(bias.predict(test.users, test.items), test)
    raters = {}
    for name in dict.fromkeys((*rating_models, cfg.train.rating_model)):
        model, _ = fit_rater(train, cfg.train.model_copy(update={"rating_model": name}), device)
        raters[name] = model
        out[name] = rating_report(predict(model, test.users, test.items), test)
        if "rating" in rankers:
            out[name].update(ranking_report(rating_ranker(model), train, test, k, threshold, memory_mb=cfg.score_memory_mb, device=device))
    chosen = cfg.rank.ranker
    for name in dict.fromkeys((*rankers, chosen)):
        if name == "rating":
            continue
        if name == "ease" and train.n_items > 20_000:
            log.info("skipping EASE: %d items is above its 20k limit", train.n_items)
            continue
        ranker = fit_ranker(train, cfg.rank.model_copy(update={"ranker": name}), device, cfg.train.seed)
        out[name] = ranking_report(ranker, train, test, k, threshold, memory_mb=cfg.score_memory_mb, device=device)
    ranked_by = cfg.train.rating_model if chosen == "rating" else chosen
    rated = out[cfg.train.rating_model]
    out["published"] = {"ranker": chosen, "rating_model": cfg.train.rating_model,
                        "rmse": rated["rmse"], "mae": rated["mae"],
                        **{m: v for m, v in out[ranked_by].items() if m not in ("rmse", "mae")}}
    return out
