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
from typing import TYPE_CHECKING, Any

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
    def fit(cls, frame: pl.DataFrame, max_categories: int = 50) -> UserFeatures:
        cols = [c for c in frame.columns if c != "user_id"]
        means, stds, cats = {}, {}, {}
        for c in cols:
            if frame.schema[c].is_numeric():
                x = frame[c].cast(pl.Float64)
                mean, std = x.mean(), x.std()
                means[c] = float(mean) if isinstance(mean, (int, float)) else 0.0
                stds[c] = float(std) if isinstance(std, (int, float)) and std > 0 else 1.0
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
                parts.append(
                    np.stack([values == v for v in self.categories[c]], axis=1).astype(np.float64)
                    if self.categories[c]
                    else np.zeros((frame.height, 0))
                )
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


@dataclass
class ColdGuess:
    """What a policy guesses for each new user: where they sit in the ranker's user space (``rank_vec``;
    None = popularity order) and their rating-model embedding and bias (None when the rating model has no
    user space; its predictions then average over known users)."""

    policy: str
    rank_vec: torch.Tensor | None
    user_vec: np.ndarray | None
    user_bias: np.ndarray | None


def guess_users(
    policy: str,
    meta: pl.DataFrame,
    cold: pl.DataFrame,
    rater: Rater | None,
    ranker: Ranker,
    user_ids: np.ndarray,
    known: np.ndarray,
) -> ColdGuess:
    """The policy's guess for each row of ``cold`` (features of new users), learnt from the ``known`` user
    indices (``meta`` holds their features by raw id). Falls back to ``popularity`` when the policy cannot run:
    it needs a ranker with user factors (iALS), and a rating model with a user space when there is one."""
    factors = ranker.factors() if ranker.personal else None
    space = rater.user_vectors() if rater is not None else None
    if policy != "popularity" and (
        factors is None or (rater is not None and space is None) or (policy == "metadata" and not _features(meta))
    ):
        log.info(
            "cold start: %s needs a ranker with user factors (iALS), a rating model with user embeddings and "
            "(for metadata) feature columns; using popularity",
            policy,
        )
        policy = "popularity"
    n = cold.height
    if policy == "popularity" or factors is None:
        if space is None:
            return ColdGuess("popularity", None, None, None)
        emb, ubias = space  # a user the model knows nothing about: no taste, the average user bias
        return ColdGuess("popularity", None, np.zeros((n, emb.shape[1])), np.full(n, float(ubias[known].mean())))
    U = factors[0].detach().cpu()
    emb, ubias = space if space is not None else (torch.zeros(U.shape[0], 0), torch.zeros(U.shape[0]))
    if policy == "average_taste":
        rep = representative_user(U, known)
        return ColdGuess(policy, U[[rep] * n], emb[[rep] * n].double().numpy(), ubias[[rep] * n].double().numpy())
    by_index = meta.join(pl.DataFrame({"user_id": user_ids[known], "idx": known}), on="user_id").sort("idx")
    encoder = UserFeatures.fit(by_index.drop("idx"))
    rows_known = torch.from_numpy(by_index["idx"].to_numpy().copy())
    targets = torch.cat([U[rows_known], emb[rows_known], ubias[rows_known, None]], dim=1)
    W = fit_metadata_regression(encoder.transform(by_index.drop("idx")), targets.double().numpy())
    guess = encoder.transform(cold) @ W
    f, d = U.shape[1], emb.shape[1]
    return ColdGuess(policy, torch.as_tensor(guess[:, :f], dtype=torch.float32), guess[:, f : f + d], guess[:, -1])


def guessed_scores(
    guess: ColdGuess,
    rater: Rater | None,
    ranker: Ranker,
    rows: np.ndarray,
    items: np.ndarray,
    known: np.ndarray,
    item_counts: np.ndarray,
) -> np.ndarray:
    """The published score of (new user row, item) pairs under a guess: the predicted rating (explicit
    feedback), or the ranker's score (implicit: the guessed factors' product, or popularity's count)."""
    if rater is None:
        factors = ranker.factors()
        if guess.rank_vec is not None and factors is not None:
            V = factors[1].detach().cpu().double().numpy()
            return (guess.rank_vec.double().numpy()[rows] * V[items]).sum(-1)
        return item_counts[items].astype(np.float64)
    if guess.user_vec is not None and guess.user_bias is not None:
        return rater.predict_for(guess.user_vec[rows], guess.user_bias[rows], items)
    # no user space: each item's expected rating over (a sample of) the known users
    sample = known[:: max(1, known.size // 1000)]
    distinct, inverse = np.unique(items, return_inverse=True)
    mean = rater.predict(np.repeat(sample, distinct.size), np.tile(distinct, sample.size))
    return mean.reshape(sample.size, distinct.size).mean(0)[inverse]


def cold_start_lists(
    policy: str,
    meta: pl.DataFrame | None,
    rater: Rater | None,
    ranker: Ranker,
    seen: Ratings,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    top_n: int,
    exclude_items: np.ndarray | None = None,
) -> tuple[pl.DataFrame, str]:
    """Lists for the users in ``meta`` (sign-up metadata) who have no ratings: ``(rows, policy used)``.

    Rows have raw ids and ``source`` = the policy. ``metadata`` and ``average_taste`` need a ranker with
    user factors (iALS); otherwise, or without feature columns, ``popularity`` is used (logged).
    """
    schema: dict[str, Any] = {
        **COLD_SCHEMA,
        "user_id": pl.Series(user_ids[:0]).dtype,
        "item_id": pl.Series(item_ids[:0]).dtype,
    }
    empty = pl.DataFrame(schema=schema)
    if meta is None:
        return empty, policy
    known = np.unique(seen.users)
    cold = meta.filter(~pl.col("user_id").is_in(pl.Series(user_ids[known]).implode()))
    if cold.height == 0:
        return empty, policy
    guess = guess_users(policy, meta, cold, rater, ranker, user_ids, known)
    excluded = np.zeros(seen.n_items, dtype=bool)
    if exclude_items is not None:
        excluded[exclude_items] = True
    n, k = cold.height, int(min(top_n, (~excluded).sum()))
    counts = seen.item_counts()
    if guess.rank_vec is None:
        order = popularity_order(counts)
        items = np.tile(order[~excluded[order]][:k], (n, 1))
    else:
        factors = ranker.factors()
        assert factors is not None  # guess_users only places users in a ranker with factors
        scores = guess.rank_vec @ factors[1].detach().cpu().T
        scores[:, torch.from_numpy(excluded)] = float("-inf")
        items = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k].numpy()
    rows, flat = np.repeat(np.arange(n), k), items.ravel()
    score = guessed_scores(guess, rater, ranker, rows, flat, known, counts)
    log.info("cold start: %d users without ratings get %s lists", n, guess.policy)
    frame = pl.DataFrame(
        {
            "user_id": cold["user_id"].to_numpy()[rows],
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
            "item_id": item_ids[flat],
            "score": score,
            "source": [guess.policy] * rows.size,
        },
        schema=schema,
    )
    return frame, guess.policy
