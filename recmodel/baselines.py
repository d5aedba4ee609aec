"""Rating baselines every run reports next to its models."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    n_u = np.bincount(users, minlength=n_users)
    n_i = np.bincount(items, minlength=n_items)
    for _ in range(iterations):
        bi = np.bincount(items, ratings - mu - bu[users], minlength=n_items) / (reg_item + n_i)
        bu = np.bincount(users, ratings - mu - bi[items], minlength=n_users) / (reg_user + n_u)
    return BiasOnly(mu, bu, bi, *rating_range)
