"""Rating baselines every run reports next to its models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


@dataclass
class GlobalMean:
    """Predicts the training mean for every pair."""

    mu: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.full(len(users), self.mu)


@dataclass
class BiasOnly:
    """``r = mu + b_u + b_i`` with shrunk biases (Koren 2010, section 2.1), fitted by alternating means."""

    mu: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    low: float
    high: float

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.clip(self.mu + self.user_bias[users] + self.item_bias[items], self.low, self.high)


def fit_global_mean(ratings: np.ndarray) -> GlobalMean:
    return GlobalMean(float(np.mean(ratings)))


def fit_bias_only(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    n_users: int,
    n_items: int,
    reg_user: float = 15.0,
    reg_item: float = 10.0,
    iterations: int = 10,
    rating_range: tuple[float, float] = (-np.inf, np.inf),
) -> BiasOnly:
    mu = float(np.mean(ratings))
    users, items = np.ascontiguousarray(users), np.ascontiguousarray(items)
    bu, bi = _alternate(
        users, items, np.asarray(ratings, np.float64), mu, n_users, n_items, reg_user, reg_item, iterations
    )
    return BiasOnly(mu, bu, bi, *rating_range)


@njit(cache=True)
def _alternate(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    mu: float,
    n_users: int,
    n_items: int,
    reg_user: float,
    reg_item: float,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``iterations`` rounds of: each item's shrunk mean residual, then each user's. One pass over the
    ratings per half-round, summed in rating order."""
    n_u, n_i = np.zeros(n_users), np.zeros(n_items)
    for k in range(users.size):
        n_u[users[k]] += 1.0
        n_i[items[k]] += 1.0
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    for _ in range(iterations):
        acc = np.zeros(n_items)
        for k in range(users.size):
            acc[items[k]] += ratings[k] - mu - bu[users[k]]
        bi = acc / (reg_item + n_i)
        acc = np.zeros(n_users)
        for k in range(users.size):
            acc[users[k]] += ratings[k] - mu - bi[items[k]]
        bu = acc / (reg_user + n_u)
    return bu, bi
