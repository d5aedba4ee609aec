"""Cold-start users (no ratings yet): three named policies, each output row says which produced it.

* ``popularity``: the most-interacted items, ordered by interaction count (ties: item index), the
  score from the rating model's item bias (the principled default for a model with biases).
* ``average_taste``: fastbook warns that the *mean* embedding can be a combination nobody has; this
  policy uses a real, representative user instead, the one closest to the centre of the user factors.
* ``metadata``: fastbook's better option: a model from sign-up metadata (age, gender, occupation, ...)
  to the user's factors (multi-target ridge regression), then scored like any user.

Users with a few ratings (1-4) need no policy: iALS solves each user's factors from that user's own
interactions with the item factors fixed (a fold-in), so even one rating moves the list.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
import torch

if TYPE_CHECKING:
    from .models import Rater
    from .rankers import Ranker
    from .ratings import Ratings

log = logging.getLogger(__name__)
POLICIES = ("popularity", "average_taste", "metadata")
COLD_SCHEMA = {"user_id": pl.Int64, "rank": pl.Int32, "item_id": pl.Int64, "score": pl.Float64, "source": pl.String}


@dataclass
class UserFeatures:
    """Sign-up metadata encoded as a numeric matrix: numeric columns standardised, text one-hot."""

    columns: list[str]
    means: dict[str, float]
    stds: dict[str, float]
    categories: dict[str, list[str]]

    @classmethod
    def fit(cls, frame: pl.DataFrame, max_categories: int = 50) -> "UserFeatures":
        cols = [c for c in frame.columns if c != "user_id"]
        means, stds, cats = {}, {}, {}
        for c in cols:
            if frame.schema[c].is_numeric():
                x = frame[c].cast(pl.Float64)
                means[c], stds[c] = float(x.mean() or 0.0), float(x.std() or 1.0) or 1.0
            else:
                top = frame[c].cast(pl.String).value_counts(sort=True).head(max_categories)[c].to_list()
                cats[c] = [v for v in top if v is not None]
        return cls(cols, means, stds, cats)

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        parts = [np.ones((frame.height, 1))]  # intercept
        for c in self.columns:
            if c in self.means:
                x = frame[c].cast(pl.Float64).fill_null(self.means[c]).to_numpy()
                parts.append(((x - self.means[c]) / self.stds[c])[:, None])
            else:
                values = frame[c].cast(pl.String).to_numpy()
                parts.append(np.stack([values == v for v in self.categories[c]], axis=1).astype(np.float64)
                             if self.categories[c] else np.zeros((frame.height, 0)))
        return np.concatenate(parts, axis=1)


def fit_metadata_regression(features: np.ndarray, targets: np.ndarray, alpha: float = 10.0) -> np.ndarray:
    """Ridge regression ``W`` with ``features @ W ~ targets`` (every target column at once)."""
    d = features.shape[1]
    penalty = alpha * np.eye(d)
    penalty[0, 0] = 0.0  # the intercept is not shrunk
    return np.linalg.solve(features.T @ features + penalty, features.T @ targets)


def representative_user(user_factors: torch.Tensor, candidates: np.ndarray) -> int:
    """The candidate user whose factors are closest to the centre of all candidates' factors."""
    x = user_factors[torch.as_tensor(candidates)].double()
    return int(candidates[int(torch.argmin(((x - x.mean(dim=0)) ** 2).sum(dim=1)))])


def popularity_order(item_counts: np.ndarray) -> np.ndarray:
    return np.lexsort((np.arange(item_counts.size), -item_counts))


def _features(meta: pl.DataFrame) -> list[str]:
    return [c for c in meta.columns if c != "user_id"]


def cold_start_lists(policy: str, meta: pl.DataFrame | None, rater: "Rater", ranker: "Ranker", seen: "Ratings",
                     user_ids: np.ndarray, item_ids: np.ndarray, top_n: int,
                     exclude_items: np.ndarray | None = None) -> tuple[pl.DataFrame, str]:
    """Lists for the users in ``meta`` (sign-up metadata) who have no ratings: ``(rows, policy used)``.

    Rows have raw ids and ``source`` = the policy. ``metadata`` and ``average_taste`` need a ranker with
    user factors and a rater with a user space (iALS and the dot model); otherwise, or without feature
    columns, ``popularity`` is used (logged).
    """
    empty = pl.DataFrame(schema=COLD_SCHEMA)
    if meta is None:
        return empty, policy
    known = np.unique(seen.users)
    cold = meta.filter(~pl.col("user_id").is_in(user_ids[known].tolist()))
    if cold.height == 0:
        return empty, policy
    factors = ranker.factors() if ranker.personal else None
    space = rater.user_vectors()
    if policy != "popularity" and (factors is None or space is None or (policy == "metadata" and not _features(meta))):
        log.info("cold start: %s needs iALS factors, the dot model and (for metadata) features; using popularity",
                 policy)
        policy = "popularity"
    excluded = np.zeros(seen.n_items, dtype=bool)
    if exclude_items is not None:
        excluded[exclude_items] = True
    n, k = cold.height, int(min(top_n, (~excluded).sum()))
    if policy == "popularity":
        order = popularity_order(seen.item_counts())
        items = np.tile(order[~excluded[order]][:k], (n, 1))
        rows, flat = np.repeat(np.arange(n), k), items.ravel()
        if space is not None:  # a user the model knows nothing about: no taste, the average user bias
            emb, ubias = space
            score = rater.predict_for(np.zeros((rows.size, emb.shape[1])), np.full(rows.size, float(ubias[known].mean())),
                                      flat)
        else:  # the expected rating of each item over (a sample of) the known users
            sample = known[:: max(1, known.size // 1000)]
            mean = rater.predict(np.repeat(sample, k), np.tile(items[0], sample.size)).reshape(sample.size, k).mean(0)
            score = np.tile(mean, n)
    else:
        assert factors is not None and space is not None  # checked above
        U, V = (f.detach().cpu() for f in factors)
        emb, ubias = space
        if policy == "average_taste":
            rep = representative_user(U, known)
            rank_vec, user_vec, user_b = U[[rep] * n], emb[[rep] * n], ubias[[rep] * n]
        else:
            idx_of = pl.DataFrame({"user_id": user_ids[known], "idx": known})
            train = meta.join(idx_of, on="user_id").sort("idx")
            encoder = UserFeatures.fit(train.drop("idx"))
            rows_known = torch.from_numpy(train["idx"].to_numpy().copy())
            targets = torch.cat([U[rows_known], emb[rows_known], ubias[rows_known, None]], dim=1)
            W = fit_metadata_regression(encoder.transform(train.drop("idx")), targets.double().numpy())
            guess = torch.as_tensor(encoder.transform(cold) @ W, dtype=torch.float32)
            f = U.shape[1]
            rank_vec, user_vec, user_b = guess[:, :f], guess[:, f:f + emb.shape[1]], guess[:, -1]
        scores = rank_vec @ V.T
        scores[:, torch.from_numpy(excluded)] = float("-inf")
        items = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k].numpy()
        rows, flat = np.repeat(np.arange(n), k), items.ravel()
        score = rater.predict_for(user_vec.numpy()[rows], user_b.numpy()[rows], flat)
    log.info("cold start: %d users without ratings get %s lists", n, policy)
    frame = pl.DataFrame({
        "user_id": cold["user_id"].to_numpy()[rows], "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
        "item_id": item_ids[flat], "score": score, "source": [policy] * rows.size,
    }, schema=COLD_SCHEMA)
    return frame, policy
