"""Embedding models for explicit ratings. Each ``forward`` reads like the maths."""
from __future__ import annotations

import torch
from torch import nn


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Squash ``x`` into ``(low, high)`` (fastai's ``sigmoid_range``)."""
    return torch.sigmoid(x) * (high - low) + low


class DotProductBias(nn.Module):
    """fastbook ch. 8: ``rating = sigmoid_range(u . i + b_u + b_i)``."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, y_range: tuple[float, float] = (0.0, 5.5),
                 generator: torch.Generator | None = None):
        super().__init__()
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.user_emb = nn.Embedding(n_users, n_factors)
        self.item_emb = nn.Embedding(n_items, n_factors)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        for emb in (self.user_emb, self.item_emb, self.user_bias, self.item_bias):
            # fastai initialises every embedding with std 0.01: small dot products start near the middle of y_range
            with torch.no_grad():
                emb.weight.normal_(0.0, 0.01, generator=generator)

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        dot = (self.user_emb(users) * self.item_emb(items)).sum(dim=1)
        return dot + self.user_bias(users).squeeze(1) + self.item_bias(items).squeeze(1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(self.logits(users, items), *self.y_range)

    @torch.no_grad()
    def ranking_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U', I')`` with ``U' @ I'.T == logits`` for every pair: ``U' = [u, 1, b_u]``, ``I' = [i, b_i, 1]``.

        Scoring all pairs is then one matrix product; the sigmoid is monotonic, so ranking by logit is
        ranking by predicted rating, and only the kept scores need the sigmoid.
        """
        ones_u = torch.ones_like(self.user_bias.weight)
        ones_i = torch.ones_like(self.item_bias.weight)
        users = torch.cat([self.user_emb.weight, ones_u, self.user_bias.weight], dim=1)
        items = torch.cat([self.item_emb.weight, self.item_bias.weight, ones_i], dim=1)
        return users, items

    def to_rating(self, logits: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(logits, *self.y_range)


def emb_sz_rule(n_categories: int) -> int:
    """fastai's embedding-size heuristic: ``min(600, round(1.6 * n ** 0.56))``."""
    return min(600, round(1.6 * n_categories**0.56))


class EmbeddingNN(nn.Module):
    """fastbook ch. 8's neural model: ``rating = sigmoid_range(MLP([u ; i]))``.

    User and item embeddings have their own sizes (``emb_sz_rule``), are concatenated and go through
    ``Linear -> ReLU -> Linear``. Because the first layer is linear, ``W [u ; i] = W_u u + W_i i``: the
    scorer computes ``W_u u + b`` once per user and ``W_i i`` once per item, then only adds, applies
    the ReLU and the second layer per pair (see ``score_block``).
    """

    def __init__(self, n_users: int, n_items: int, y_range: tuple[float, float] = (0.0, 5.5), n_hidden: int = 100,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.user_emb = nn.Embedding(n_users, emb_sz_rule(n_users))
        self.item_emb = nn.Embedding(n_items, emb_sz_rule(n_items))
        for emb in (self.user_emb, self.item_emb):
            with torch.no_grad():
                emb.weight.normal_(0.0, 0.01, generator=generator)
        self.hidden = nn.Linear(self.user_emb.embedding_dim + self.item_emb.embedding_dim, n_hidden)
        self.out = nn.Linear(n_hidden, 1)

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.user_emb(users), self.item_emb(items)], dim=1)
        return self.out(torch.relu(self.hidden(x))).squeeze(1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(self.logits(users, items), *self.y_range)

    @torch.no_grad()
    def split_first_layer(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` with ``hidden([u ; i]) == A[u] + B[i]``: A is (n_users, n_hidden), B is (n_items, n_hidden)."""
        d_u = self.user_emb.embedding_dim
        w_u, w_i = self.hidden.weight[:, :d_u], self.hidden.weight[:, d_u:]
        return self.user_emb.weight @ w_u.T + self.hidden.bias, self.item_emb.weight @ w_i.T

    def to_rating(self, logits: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(logits, *self.y_range)
