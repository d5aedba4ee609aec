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

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

POLICIES = ("popularity", "average_taste", "metadata")


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
