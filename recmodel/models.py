"""Rating models (explicit ratings). Each ``forward`` reads like the maths.

Both models follow one protocol (``Rater``): the trainer fits them, ``predict`` writes the published
``score`` (float64, independent of batching), ``as_ranker`` ranks every item by predicted rating.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from .config import TrainConfig
from .rankers import FactorRanker, NeuralRanker, Ranker, pair_dots


def sigmoid_range(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Squash ``x`` into ``(low, high)`` (fastai's ``sigmoid_range``)."""
    return torch.sigmoid(x) * (high - low) + low


def sigmoid_range_np(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``sigmoid_range`` in numpy float64, written with tanh so large logits never overflow."""
    return low + (high - low) * 0.5 * (1.0 + np.tanh(0.5 * x))


def check_indices(name: str, idx: np.ndarray, n: int) -> np.ndarray:
    """Indices as int64, refused (not wrapped around, as numpy would) when outside ``[0, n)``."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(
            f"{name} indices must lie in [0, {n}) (got {idx.min()}..{idx.max()}): an id the model was not trained on?"
        )
    return idx


def dot_logits(user_vec: Any, user_bias: Any, item_vec: Any, item_bias: Any) -> Any:
    """fastbook ch. 8's ``u . i + b_u + b_i``, row by row: torch tensors and numpy arrays alike.

    The one place this formula is written; ``DotProductBias.ranking_factors``, the numpy ``predict`` paths
    (``pair_dots`` plus the biases) and, in ``recmodel.train``, the numba epoch kernel, the hand-written torch
    gradient and the CPU validation pass are fast copies, each tested against it (or against the torch
    forward pass that uses it).
    """
    return (user_vec * item_vec).sum(-1) + user_bias + item_bias


def biased_factors(
    user_vec: torch.Tensor, user_bias: torch.Tensor, item_vec: torch.Tensor, item_bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U', I')`` with ``U' @ I'.T == u . i + b_u + b_i``: ``U' = [u, 1, b_u]``, ``I' = [i, b_i, 1]`` (biases
    as (n, 1) columns)."""
    users = torch.cat([user_vec, torch.ones_like(user_bias), user_bias], dim=1)
    items = torch.cat([item_vec, item_bias, torch.ones_like(item_bias)], dim=1)
    return users, items


class Rater(Protocol):
    """What the pipeline needs of a rating model."""

    kind: ClassVar[str]
    y_range: tuple[float, float]

    @property
    def n_users(self) -> int: ...

    @property
    def n_items(self) -> int: ...

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...

    def predict_for(self, user_vec: np.ndarray, user_bias: np.ndarray, items: np.ndarray) -> np.ndarray: ...

    def as_ranker(self) -> Ranker: ...

    def item_vectors(self) -> torch.Tensor | None: ...

    def item_biases(self) -> np.ndarray | None: ...

    def user_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None: ...


class DotProductBias(nn.Module):
    """fastbook ch. 8: ``rating = sigmoid_range(u . i + b_u + b_i)``."""

    kind: ClassVar[str] = "dot"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int,
        y_range: tuple[float, float] = (0.0, 5.5),
        generator: torch.Generator | None = None,
    ):
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

    @classmethod
    def build(
        cls, n_users: int, n_items: int, cfg: TrainConfig, generator: torch.Generator | None = None
    ) -> DotProductBias:
        return cls(n_users, n_items, cfg.n_factors, cfg.y_range, generator)

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return dot_logits(
            self.user_emb(users),
            self.user_bias(users).squeeze(1),
            self.item_emb(items),
            self.item_bias(items).squeeze(1),
        )

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(self.logits(users, items), *self.y_range)

    @torch.no_grad()
    def ranking_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(U', I')`` with ``U' @ I'.T == logits`` for every pair: ``U' = [u, 1, b_u]``, ``I' = [i, b_i, 1]``.

        Scoring all pairs is then one matrix product; the sigmoid is monotonic, so ranking by logit is
        ranking by predicted rating, and only the kept scores need the sigmoid.
        """
        return biased_factors(self.user_emb.weight, self.user_bias.weight, self.item_emb.weight, self.item_bias.weight)

    def to_rating(self, logits: torch.Tensor) -> torch.Tensor:
        return sigmoid_range(logits, *self.y_range)

    @property
    def n_users(self) -> int:
        return self.user_emb.num_embeddings

    @property
    def n_items(self) -> int:
        return self.item_emb.num_embeddings

    def _numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return tuple(
            m.weight.detach().cpu().double().numpy()
            for m in (self.user_emb, self.user_bias, self.item_emb, self.item_bias)  # type: ignore[return-value]
        )

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings, in float64 numpy pair by pair (``pair_dots``): a pair's score then does not
        depend on which other pairs share its call (torch's float32 reductions vary in the last bit with the
        batch's shape), so scoring shards on Dask publish exactly the local run's scores."""
        U, bu, V, bi = self._numpy()
        users = check_indices("user", users, U.shape[0])
        items = check_indices("item", items, V.shape[0])
        logits = pair_dots(U, V, users, items) + bu[users, 0] + bi[items, 0]  # dot_logits, pair by pair
        return sigmoid_range_np(logits, *self.y_range)

    def predict_for(self, user_vec: np.ndarray, user_bias: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings of made-up users (cold start): one embedding and bias per pair."""
        _, _, V, bi = self._numpy()
        items = check_indices("item", items, V.shape[0])
        user_vec, user_bias = np.asarray(user_vec, np.float64), np.asarray(user_bias, np.float64)
        logits = pair_dots(user_vec, V, np.arange(len(items)), items) + user_bias + bi[items, 0]
        return sigmoid_range_np(logits, *self.y_range)

    def as_ranker(self) -> Ranker:
        """Rank by predicted rating (by logit: the sigmoid keeps the order)."""
        return FactorRanker(*self.ranking_factors())

    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight.detach()

    def item_biases(self) -> np.ndarray | None:
        return self.item_bias.weight.detach().cpu().numpy()[:, 0]

    def user_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Each user's embedding and bias: what a cold-start policy guesses for a new user."""
        return self.user_emb.weight.detach().cpu(), self.user_bias.weight.detach().cpu()[:, 0]


def emb_sz_rule(n_categories: int) -> int:
    """fastai's embedding-size heuristic: ``min(600, round(1.6 * n ** 0.56))``."""
    return min(600, round(1.6 * n_categories**0.56))


class EmbeddingNN(nn.Module):
    """fastbook ch. 8's neural model: ``rating = sigmoid_range(MLP([u ; i]))``.

    User and item embeddings have their own sizes (``emb_sz_rule``), are concatenated and go through
    ``Linear -> ReLU -> Linear``. Because the first layer is linear, ``W [u ; i] = W_u u + W_i i``: the
    scorer computes ``W_u u + b`` once per user and ``W_i i`` once per item, then only adds, applies
    the ReLU and the second layer per pair (``NeuralRanker``).
    """

    kind: ClassVar[str] = "neural"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        y_range: tuple[float, float] = (0.0, 5.5),
        n_hidden: int = 100,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.user_emb = nn.Embedding(n_users, emb_sz_rule(n_users))
        self.item_emb = nn.Embedding(n_items, emb_sz_rule(n_items))
        for emb in (self.user_emb, self.item_emb):
            with torch.no_grad():
                emb.weight.normal_(0.0, 0.01, generator=generator)
        self.hidden = nn.Linear(self.user_emb.embedding_dim + self.item_emb.embedding_dim, n_hidden)
        self.out = nn.Linear(n_hidden, 1)

    @classmethod
    def build(
        cls, n_users: int, n_items: int, cfg: TrainConfig, generator: torch.Generator | None = None
    ) -> EmbeddingNN:
        return cls(n_users, n_items, cfg.y_range, cfg.nn_hidden, generator)

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

    @property
    def n_users(self) -> int:
        return self.user_emb.num_embeddings

    @property
    def n_items(self) -> int:
        return self.item_emb.num_embeddings

    @torch.no_grad()
    def predict(self, users: np.ndarray, items: np.ndarray, batch: int = 1 << 20) -> np.ndarray:
        users = check_indices("user", users, self.user_emb.num_embeddings)
        items = check_indices("item", items, self.item_emb.num_embeddings)
        device = next(self.parameters()).device
        self.eval()
        out = [
            self(
                torch.as_tensor(users[s : s + batch], device=device),
                torch.as_tensor(items[s : s + batch], device=device),
            ).cpu()
            for s in range(0, len(users), batch)
        ]
        return torch.cat(out).double().numpy() if out else np.empty(0)

    def as_ranker(self) -> Ranker:
        user_part, item_part = self.split_first_layer()
        return NeuralRanker(user_part, item_part, self.out.weight.detach()[0], self.out.bias.detach())

    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight.detach()

    @torch.no_grad()
    def predict_for(
        self, user_vec: np.ndarray, user_bias: np.ndarray, items: np.ndarray, batch: int = 1 << 20
    ) -> np.ndarray:
        """Predicted ratings of made-up users (cold start): one embedding per pair (the MLP has no user bias,
        so ``user_bias`` is ignored)."""
        items = check_indices("item", items, self.item_emb.num_embeddings)
        device = next(self.parameters()).device
        self.eval()
        out = []
        for s in range(0, items.size, batch):
            u = torch.as_tensor(np.asarray(user_vec[s : s + batch]), dtype=torch.float32, device=device)
            x = torch.cat([u, self.item_emb(torch.as_tensor(items[s : s + batch], device=device))], dim=1)
            out.append(sigmoid_range(self.out(torch.relu(self.hidden(x))).squeeze(1), *self.y_range).cpu())
        return torch.cat(out).double().numpy() if out else np.empty(0)

    def item_biases(self) -> np.ndarray | None:
        return None  # an MLP has no per-item bias to show

    def user_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Each user's embedding (and a zero bias: the MLP has none)."""
        emb = self.user_emb.weight.detach().cpu()
        return emb, torch.zeros(emb.shape[0])


class BiasOnly(nn.Module):
    """The baseline rater ``r = mu + b_u + b_i`` (shrunk biases, ``recmodel.baselines``), clipped to the rating
    range. Published in place of a rating model that did worse than it on the night's validation part."""

    kind: ClassVar[str] = "bias"
    mu: torch.Tensor
    user_bias: torch.Tensor
    item_bias: torch.Tensor
    clip: torch.Tensor

    def __init__(self, n_users: int, n_items: int, y_range: tuple[float, float] = (0.0, 5.5)):
        super().__init__()
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.register_buffer("mu", torch.zeros((), dtype=torch.float64))
        self.register_buffer("user_bias", torch.zeros(n_users, dtype=torch.float64))
        self.register_buffer("item_bias", torch.zeros(n_items, dtype=torch.float64))
        self.register_buffer("clip", torch.tensor(self.y_range, dtype=torch.float64))

    @classmethod
    def build(cls, n_users: int, n_items: int, cfg: TrainConfig, generator: torch.Generator | None = None) -> BiasOnly:
        return cls(n_users, n_items, cfg.y_range)

    @classmethod
    def fitted(cls, mu: float, user_bias: np.ndarray, item_bias: np.ndarray, low: float, high: float) -> BiasOnly:
        model = cls(user_bias.size, item_bias.size, (low, high))
        model.mu.fill_(mu)
        model.user_bias.copy_(torch.from_numpy(np.asarray(user_bias, np.float64)))
        model.item_bias.copy_(torch.from_numpy(np.asarray(item_bias, np.float64)))
        return model

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        x = self.mu + self.user_bias[users] + self.item_bias[items]
        return x.clamp(float(self.clip[0]), float(self.clip[1])).float()

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users = check_indices("user", users, self.user_bias.numel())
        return self.predict_for(np.zeros((users.size, 0)), self.user_bias.cpu().numpy()[users], items)

    def predict_for(self, user_vec: np.ndarray, user_bias: np.ndarray, items: np.ndarray) -> np.ndarray:
        items = check_indices("item", items, self.item_bias.numel())
        x = float(self.mu) + np.asarray(user_bias, np.float64) + self.item_bias.cpu().numpy()[items]
        return np.clip(x, float(self.clip[0]), float(self.clip[1]))

    def as_ranker(self) -> Ranker:
        """For one user every item's score differs only by its bias: rank by ``b_i``."""
        n_users = self.user_bias.numel()
        return FactorRanker(torch.ones(n_users, 1), self.item_bias.float()[:, None])

    def item_vectors(self) -> torch.Tensor | None:
        return None  # no item space to measure similarity in

    def item_biases(self) -> np.ndarray | None:
        return self.item_bias.cpu().numpy()

    def user_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """No taste, only a bias per user: an empty embedding."""
        return torch.zeros(self.user_bias.numel(), 0), self.user_bias.float().cpu()

    @property
    def n_users(self) -> int:
        return self.user_bias.numel()

    @property
    def n_items(self) -> int:
        return self.item_bias.numel()


class BayesBlend(nn.Module):
    """Bayesian MF (``recmodel.bayes``: Gibbs-sampled, posterior-mean factors) blended with the book's dot model:
    ``rating = w * clip(mu + b_u + b_i + u . v) + (1 - w) * dot(u, i)``.

    The two make different errors (one averages over a posterior, the other is a sigmoid-squashed point
    estimate), so the blend beats either on held-out data (``bench/heldout.py``); ``w`` is chosen on the
    night's validation part by the tuning search (``bayes_weight``). ``clip`` is the range of the training
    ratings: neither the linear part nor the blend predicts a rating nobody gave.
    """

    kind: ClassVar[str] = "bayes"
    mu: torch.Tensor
    user_bias: torch.Tensor
    item_bias: torch.Tensor
    user_factors: torch.Tensor
    item_factors: torch.Tensor
    weight: torch.Tensor
    clip: torch.Tensor

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int,
        bayes_factors: int,
        y_range: tuple[float, float] = (0.0, 5.5),
        weight: float = 0.7,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.y_range = (float(y_range[0]), float(y_range[1]))
        self.dot = DotProductBias(n_users, n_items, n_factors, y_range, generator)
        for name, shape in (
            ("mu", ()),
            ("user_bias", (n_users,)),
            ("item_bias", (n_items,)),
            ("user_factors", (n_users, bayes_factors)),
            ("item_factors", (n_items, bayes_factors)),
        ):
            self.register_buffer(name, torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("weight", torch.tensor(float(weight), dtype=torch.float64))
        self.register_buffer("clip", torch.tensor(self.y_range, dtype=torch.float64))

    @classmethod
    def build(
        cls, n_users: int, n_items: int, cfg: TrainConfig, generator: torch.Generator | None = None
    ) -> BayesBlend:
        return cls(n_users, n_items, cfg.n_factors, cfg.bayes_factors, cfg.y_range, cfg.bayes_weight, generator)

    def linear(self, users: Any, items: Any) -> Any:
        """The Bayesian part before clipping, ``mu + b_u + b_i + u . v`` (torch or numpy indices)."""
        if isinstance(users, np.ndarray):
            U, bu, V, bi = (
                t.cpu().numpy() for t in (self.user_factors, self.user_bias, self.item_factors, self.item_bias)
            )
            return float(self.mu) + (pair_dots(U, V, users, items) + bu[users] + bi[items])  # dot_logits
        return self.mu + dot_logits(
            self.user_factors[users], self.user_bias[users], self.item_factors[items], self.item_bias[items]
        )

    def _mix(self, linear: Any, dot: Any, weight: float | None = None) -> Any:
        w = float(self.weight) if weight is None else weight
        lo, hi = float(self.clip[0]), float(self.clip[1])
        if isinstance(linear, np.ndarray):
            return np.clip(w * np.clip(linear, lo, hi) + (1.0 - w) * dot, lo, hi)
        return (w * linear.clamp(lo, hi) + (1.0 - w) * dot).clamp(lo, hi)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._mix(self.linear(users, items), self.dot(users, items).double()).float()

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        users = check_indices("user", users, self.n_users)
        items = check_indices("item", items, self.n_items)
        return self._mix(self.linear(users, items), self.dot.predict(users, items))

    def predict_at(self, users: np.ndarray, items: np.ndarray, weights: Iterable[float]) -> Iterator[np.ndarray]:
        """``predict`` with each blend weight in turn (the search's scan of ``bayes_weight``): both halves are
        computed once."""
        users = check_indices("user", users, self.n_users)
        items = check_indices("item", items, self.n_items)
        linear, dot = self.linear(users, items), self.dot.predict(users, items)
        for w in weights:
            yield self._mix(linear, dot, float(w))

    def predict_for(self, user_vec: np.ndarray, user_bias: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Made-up users: ``user_vec`` is ``[bayes factors, dot embedding, dot bias]`` (see ``user_vectors``)."""
        items = check_indices("item", items, self.n_items)
        user_vec = np.asarray(user_vec, np.float64)
        k = self.user_factors.shape[1]
        V, bi = self.item_factors.cpu().numpy(), self.item_bias.cpu().numpy()
        rows = np.arange(len(items))
        bias = np.asarray(user_bias, np.float64)
        linear = float(self.mu) + (pair_dots(user_vec[:, :k], V, rows, items) + bias + bi[items])  # dot_logits
        dot = self.dot.predict_for(user_vec[:, k:-1], user_vec[:, -1], items)
        return self._mix(linear, dot)

    def as_ranker(self) -> Ranker:
        """Rank by the Bayesian part (a product, scored like the dot model): ``[u, 1, b_u] . [v, b_i, 1]``."""
        users, items = biased_factors(
            self.user_factors, self.user_bias[:, None], self.item_factors, self.item_bias[:, None]
        )
        return FactorRanker(users.float(), items.float())

    def item_vectors(self) -> torch.Tensor:
        return self.item_factors.float()

    def item_biases(self) -> np.ndarray | None:
        return self.item_bias.cpu().numpy()

    def user_vectors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``[bayes factors, dot embedding, dot bias]`` and the Bayesian bias: one space for a cold-start guess."""
        emb, bias = self.dot.user_emb.weight.detach().cpu(), self.dot.user_bias.weight.detach().cpu()[:, 0]
        vec = torch.cat([self.user_factors.cpu().float(), emb.float(), bias.float()[:, None]], dim=1)
        return vec, self.user_bias.cpu().float()

    @property
    def n_users(self) -> int:
        return self.user_bias.numel()

    @property
    def n_items(self) -> int:
        return self.item_bias.numel()


RatingModule = DotProductBias | EmbeddingNN | BiasOnly | BayesBlend
RATERS: dict[str, type[DotProductBias] | type[EmbeddingNN] | type[BiasOnly] | type[BayesBlend]] = {
    "dot": DotProductBias,
    "neural": EmbeddingNN,
    "bias": BiasOnly,
    "bayes": BayesBlend,
}
