"""Rankers: the models that order each user's list. One protocol, one registry.

A model fitted to predict ratings ranks *below popularity* when it scores all unrated items (it never
learns which items a user is likely to pick at all). Rankers trained on interactions learn exactly
that: iALS (``recmodel.ials``), EASE, and popularity as the baseline to beat. Any rating model ranks
too, through ``Rater.as_ranker`` (a ``FactorRanker`` or a ``NeuralRanker``).

Interactions are weighted by rating: a rating >= ``relevance_threshold`` counts 1, a lower rating
``low_rating_weight`` (the user did pick the item, but liked it less).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np
import torch
from numba import njit, prange

from . import ials
from .config import RankConfig
from .ratings import Ratings
from .score import BlockProduct
from .sparse import checked_indices, csr_order, csr_positions, row_runs, transpose_csr

if TYPE_CHECKING:
    from .models import Rater

log = logging.getLogger(__name__)


class Ranker(Protocol):
    """What scoring, persistence, similar items and cold start need of a ranker.

    ``score_block(users)`` is the reference: ``(len(users), n_items)`` scores, higher is better. A
    ranker whose scores are a product ``U @ V.T`` also returns ``(U, V)`` from ``factors()``, and the
    CPU scorer then fuses the product with the top-N selection.
    """

    kind: ClassVar[str]  # the registry key, stored in model files
    personal: ClassVar[bool]  # False: everyone gets the same scores (no user space to place a new user in)
    bytes_per_pair: ClassVar[int]  # memory per scored (user, item) pair, for block sizes

    def score_block(self, users: torch.Tensor) -> torch.Tensor: ...

    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None: ...

    def item_vectors(self) -> torch.Tensor | None: ...

    def tensors(self) -> dict[str, torch.Tensor]: ...

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray: ...


@njit(parallel=True, cache=True)
def _pair_dots(U: np.ndarray, V: np.ndarray, users: np.ndarray, items: np.ndarray, out: np.ndarray) -> None:
    for p in prange(users.size):  # pragma: no cover - compiled
        u, i = users[p], items[p]
        acc = 0.0
        for a in range(U.shape[1]):
            acc += U[u, a] * V[i, a]
        out[p] = acc


def pair_dots(U: np.ndarray, V: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``U[users[p]] . V[items[p]]`` for every pair, in float64, each a sum in factor order: a pair's value does
    not depend on the other pairs (so scoring shards publish the same scores however they are cut). One pass
    over the pairs, without numpy's gathered ``(pairs, factors)`` copies: 700k pairs of 50 factors went from
    ~1 s to a few ms."""
    users = checked_indices(np.asarray(users, np.int64), len(U), "user indices")
    items = checked_indices(np.asarray(items, np.int64), len(V), "item indices")
    out = np.empty(len(users), dtype=np.float64)
    _pair_dots(np.ascontiguousarray(U, np.float64), np.ascontiguousarray(V, np.float64), users, items, out)
    return out


def scores_of_pairs(ranker: Ranker, users: np.ndarray, items: np.ndarray, block: int = 1024) -> np.ndarray:
    """Each (user, item) pair's score from ``score_block``, a block of distinct users at a time (float64)."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    out = np.empty(users.size, dtype=np.float64)
    distinct, inverse = np.unique(users, return_inverse=True)
    for s in range(0, distinct.size, block):
        chunk = distinct[s : s + block]
        scores = ranker.score_block(torch.as_tensor(chunk)).double().cpu().numpy()
        mask = (inverse >= s) & (inverse < s + chunk.size)
        out[mask] = scores[inverse[mask] - s, items[mask]]
    return out


@dataclass
class FactorRanker:
    """Scores ``user_factors @ item_factors.T``; iALS and the dot rating model both rank this way."""

    kind: ClassVar[str] = "factors"
    personal: ClassVar[bool] = True
    bytes_per_pair: ClassVar[int] = 4

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    _product: BlockProduct | None = field(default=None, init=False, repr=False, compare=False)

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of a block of users; the returned tensor is reused by the next call (see BlockProduct)."""
        if self._product is None:
            self._product = BlockProduct(self.user_factors, self.item_factors)
        return self._product(users)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return self.user_factors, self.item_factors

    def item_vectors(self) -> torch.Tensor | None:
        return self.item_factors

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"user_factors": self.user_factors, "item_factors": self.item_factors}

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """``u . i`` in float64, pair by pair (``pair_dots``: shards publish identical scores)."""
        U = self.user_factors.detach().cpu().double().numpy()
        V = self.item_factors.detach().cpu().double().numpy()
        return pair_dots(U, V, users, items)

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> FactorRanker:
        return cls(t["user_factors"], t["item_factors"])


@dataclass
class EaseRanker:
    """EASE (Steck 2019): ``scores = X_u B``, B the closed-form item-item matrix with a zero diagonal."""

    kind: ClassVar[str] = "ease"
    personal: ClassVar[bool] = True
    bytes_per_pair: ClassVar[int] = 8  # the scores and the dense rows of X_u

    B: torch.Tensor  # (n_items, n_items)
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    seen_weights: np.ndarray

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        X = dense_rows(self.seen_indptr, self.seen_indices, self.seen_weights, users.cpu().numpy(), self.B.shape[0])
        return X.to(self.B.device) @ self.B

    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def item_vectors(self) -> torch.Tensor | None:
        return None

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "B": self.B,
            "seen_indptr": torch.from_numpy(self.seen_indptr),
            "seen_indices": torch.from_numpy(self.seen_indices),
            "seen_weights": torch.from_numpy(self.seen_weights),
        }

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return scores_of_pairs(self, users, items)

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> EaseRanker:
        return cls(
            t["B"], t["seen_indptr"].cpu().numpy(), t["seen_indices"].cpu().numpy(), t["seen_weights"].cpu().numpy()
        )


@dataclass
class PopularityRanker:
    """Everyone gets the most-interacted items they have not seen: the baseline to beat."""

    kind: ClassVar[str] = "popularity"
    personal: ClassVar[bool] = False
    bytes_per_pair: ClassVar[int] = 4

    counts: torch.Tensor  # (n_items,)
    n_users: int

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        return self.counts[None, :].expand(users.numel(), -1).clone()

    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The same scores for everyone are a rank-1 product: ``ones @ counts.T``."""
        return torch.ones(self.n_users, 1, device=self.counts.device), self.counts[:, None]

    def item_vectors(self) -> torch.Tensor | None:
        return None

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"counts": self.counts, "n_users": torch.tensor(self.n_users)}

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return scores_of_pairs(self, users, items)

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> PopularityRanker:
        return cls(t["counts"], int(t["n_users"]) if "n_users" in t else 0)  # files before 0.2 had no n_users


@dataclass
class NeuralRanker:
    """All-pairs scoring for EmbeddingNN with the first layer split into per-user and per-item parts."""

    kind: ClassVar[str] = "neural"
    personal: ClassVar[bool] = True
    bytes_per_pair: ClassVar[int] = 0  # set per instance: the hidden layer of every pair in the block

    user_part: torch.Tensor  # (n_users, n_hidden) = W_u u + b
    item_part: torch.Tensor  # (n_items, n_hidden) = W_i i
    out_weight: torch.Tensor  # (n_hidden,)
    out_bias: torch.Tensor  # (1,)

    def __post_init__(self) -> None:
        self.bytes_per_pair = 4 * (self.user_part.shape[1] + 2)  # type: ignore[misc]

    @torch.no_grad()
    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.user_part[users][:, None, :] + self.item_part[None, :, :])
        return (hidden @ self.out_weight) + self.out_bias[0]

    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def item_vectors(self) -> torch.Tensor | None:
        return None

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            "user_part": self.user_part,
            "item_part": self.item_part,
            "out_weight": self.out_weight,
            "out_bias": self.out_bias,
        }

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return scores_of_pairs(self, users, items)

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> NeuralRanker:
        return cls(t["user_part"], t["item_part"], t["out_weight"], t["out_bias"])


@dataclass
class BoostedRanker:
    """A ranker's scores plus ``coef`` times a rating model's predicted-rating scores ``P @ Q.T``.

    Relevance on explicit data is "picked *and* liked": the ranker knows what a user is likely to pick, the
    rating model how much they would like it. Adding a little of the second (``RankConfig.rating_boost``,
    chosen on the night's validation part) orders the first's candidates better (``bench/heldout.py``).
    """

    kind: ClassVar[str] = "boosted"
    personal: ClassVar[bool] = True
    bytes_per_pair: ClassVar[int] = 12  # the base's scores (up to 8) and the product's

    base: Ranker
    user_factors: torch.Tensor  # the rating model's ranking factors
    item_factors: torch.Tensor
    coef: float

    def score_block(self, users: torch.Tensor) -> torch.Tensor:
        rows = self.user_factors[users.to(self.user_factors.device)]
        return self.base.score_block(users) + self.coef * (rows @ self.item_factors.T)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """A product ranker stays a product: ``[U, coef P] @ [V, Q].T``."""
        base = self.base.factors()
        if base is None:
            return None
        return (
            torch.cat([base[0], self.coef * self.user_factors.to(base[0])], dim=1),
            torch.cat([base[1], self.item_factors.to(base[1])], dim=1),
        )

    def item_vectors(self) -> torch.Tensor | None:
        return self.base.item_vectors()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {
            **{f"base.{k}": v for k, v in self.base.tensors().items()},
            "base_kind": torch.tensor(list(self.base.kind.encode()), dtype=torch.uint8),
            "boost_user_factors": self.user_factors,
            "boost_item_factors": self.item_factors,
            "boost_coef": torch.tensor(self.coef, dtype=torch.float64),
        }

    def score_pairs(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        P = self.user_factors.detach().cpu().double().numpy()
        Q = self.item_factors.detach().cpu().double().numpy()
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        return self.base.score_pairs(users, items) + self.coef * np.einsum("ij,ij->i", P[users], Q[items])

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor]) -> BoostedRanker:
        base_kind = bytes(t["base_kind"].cpu().tolist()).decode()
        base = ranker_from_tensors(base_kind, {k[5:]: v for k, v in t.items() if k.startswith("base.")})
        return cls(base, t["boost_user_factors"], t["boost_item_factors"], float(t["boost_coef"]))


RANKER_KINDS: dict[
    str, type[FactorRanker] | type[EaseRanker] | type[PopularityRanker] | type[NeuralRanker] | type[BoostedRanker]
] = {cls.kind: cls for cls in (FactorRanker, EaseRanker, PopularityRanker, NeuralRanker, BoostedRanker)}


def ranker_from_tensors(kind: str, tensors: dict[str, torch.Tensor]) -> Ranker:
    """Rebuild a saved ranker; an unknown kind is an error, never a fallback."""
    if kind not in RANKER_KINDS:
        raise ValueError(
            f"unknown ranker kind {kind!r} (known: {', '.join(RANKER_KINDS)}); the model file was "
            "written by a newer collabflow or is damaged"
        )
    return RANKER_KINDS[kind].from_tensors(tensors)


# ---------------------------------------------------------------- fitting


def interaction_weights(ratings: np.ndarray, relevance_threshold: float, low_rating_weight: float) -> np.ndarray:
    """Explicit feedback: 1 for ratings >= ``relevance_threshold``, ``low_rating_weight`` below it."""
    return np.where(np.asarray(ratings) >= relevance_threshold, 1.0, low_rating_weight).astype(np.float32)


def confidence(weights: np.ndarray, alpha: float, eps: float) -> np.ndarray:
    """Implicit feedback: ``1 + alpha * log1p(w / eps)`` for a pair's total weight ``w`` (counts, durations)."""
    return (1.0 + alpha * np.log1p(np.asarray(weights, np.float64) / eps)).astype(np.float32)


def dense_rows(
    indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, rows: np.ndarray, n_cols: int
) -> torch.Tensor:
    """Rows of a CSR matrix as a dense float32 tensor (b, n_cols)."""
    block_row, pos = csr_positions(indptr, rows)
    X = torch.zeros(rows.size, n_cols)
    X[torch.from_numpy(block_row), torch.from_numpy(indices[pos])] = torch.from_numpy(values[pos])
    return X


EASE_MAX_ITEMS = 20_000  # one dense n_items^2 inverse: 20k items = 3.2 GB in float64
# On the CPU a scattered add into the Gram matrix costs about as much as 40 multiply-adds of the dense product
# (44 at MovieLens 100K, 35 at ML-1M's shape, measured): the sparse sum wins unless the data are dense.
SPARSE_GRAM_COST = 40


@njit(parallel=True, fastmath=False, cache=True)
def _gram_rows(
    indptr: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    item_ptr: np.ndarray,
    item_users: np.ndarray,
    item_weights: np.ndarray,
    G: np.ndarray,
    runs: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``G += X^T X`` for the sparse ``X`` (users x items; CSR ``indptr/items/weights`` and, by item,
    ``item_ptr/item_users/item_weights``): row ``i`` adds ``x_ui * x_u`` over the users ``u`` of item ``i``.
    ``sum_u deg(u)^2`` adds in all, against ``n_users * n_items^2`` for the dense product. Each thread owns
    whole rows of ``G`` (a run of rows of even work each: popular items come first) and sums every entry in
    user order: the same bits with any number of threads."""
    for run in prange(runs.size - 1):
        for i in range(runs[run], runs[run + 1]):
            for k in range(item_ptr[i], item_ptr[i + 1]):
                u = item_users[k]
                x = np.float64(item_weights[k])
                for p in range(indptr[u], indptr[u + 1]):
                    G[i, items[p]] += x * np.float64(weights[p])


def sparse_gram_pays(indptr: np.ndarray, n_items: int) -> bool:
    """Whether summing ``X^T X`` from the sparse rows (``sum_u deg(u)^2`` scattered adds) beats the dense
    product (``n_users * n_items^2`` multiply-adds) on the CPU."""
    degrees = np.diff(indptr).astype(np.float64)
    return SPARSE_GRAM_COST * float(degrees @ degrees) < (indptr.size - 1) * n_items**2


def ease_gram(
    indptr: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    n_items: int,
    device: torch.device | str = "cpu",
    sparse: bool | None = None,
) -> torch.Tensor:
    """``X^T X`` in float64 for ``X`` in CSR (each user's ``items`` and ``weights``, one entry per pair). On
    the CPU it is summed from the sparse rows when that is cheaper (``SPARSE_GRAM_COST``; ``sparse`` forces
    either way), else (and on a GPU) it is the dense product of row chunks."""
    n_users = indptr.size - 1
    G = torch.zeros(n_items, n_items, dtype=torch.float64, device=device)
    if sparse is None:
        sparse = G.device.type == "cpu" and sparse_gram_pays(indptr, n_items)
    if sparse:
        item_ptr, item_users, item_weights = transpose_csr((indptr, items, weights), n_items)  # users ascending
        G_cpu = G.cpu()
        adds = np.concatenate([[0], np.cumsum(np.diff(indptr)[item_users])])  # row i: its users' degrees
        runs = row_runs(adds[item_ptr], 1.0)
        _gram_rows(indptr, items, weights, item_ptr, item_users, item_weights, G_cpu.numpy(), runs)
        return G_cpu.to(G.device)
    chunk = max(1, (1 << 26) // max(n_items, 1))  # dense row chunks, 64M values at a time
    for s in range(0, n_users, chunk):
        X = dense_rows(indptr, items, weights, np.arange(s, min(s + chunk, n_users)), n_items).double().to(device)
        G += X.T @ X
    return G


def fit_ease(
    users: np.ndarray,
    items: np.ndarray,
    weights: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    lam: float = 400.0,
    device: torch.device | str = "cpu",
    max_items: int = EASE_MAX_ITEMS,
) -> EaseRanker:
    """``B = I - P diag(1/diag(P))``, ``P = (X^T X + lam I)^-1``: one dense n_items^2 inverse, so only for
    catalogs up to ``max_items``."""
    if n_items > max_items:
        raise ValueError(f"EASE needs a dense {n_items}x{n_items} inverse; above {max_items} items use ranker='ials'")
    indptr, order = csr_order(users, n_users, items, n_items)
    items, weights = np.asarray(items, np.int64)[order], np.asarray(weights, np.float32)[order]
    G = ease_gram(indptr, items, weights, n_items, device)
    G.diagonal().add_(lam)
    L, info = torch.linalg.cholesky_ex(G)  # G is symmetric positive definite: half of inv()'s work
    if int(info) != 0:
        raise ValueError(
            f"EASE: X^T X + {lam:g} I is not positive definite in float64 (pivot {int(info)}): raise ease_lambda"
        )
    P = torch.cholesky_inverse(L)
    B = -P / torch.diagonal(P)[None, :]
    B.fill_diagonal_(0.0)
    return EaseRanker(B.float(), indptr, items, weights)


def fit_random(n_users: int, n_items: int, seed: int, device: torch.device | str = "cpu") -> FactorRanker:
    """A control: scores that know nothing (random factors). Any model must beat it by far."""
    gen = torch.Generator().manual_seed(seed)
    return FactorRanker(
        torch.randn(n_users, 16, generator=gen).to(device), torch.randn(n_items, 16, generator=gen).to(device)
    )


def fit_popularity(
    items: np.ndarray, n_items: int, n_users: int, device: torch.device | str = "cpu"
) -> PopularityRanker:
    counts = np.bincount(items, minlength=n_items).astype(np.float32)
    return PopularityRanker(torch.as_tensor(counts, device=device), n_users)


@dataclass
class FitRequest:
    """One ranker fit: the data, its settings, and optionally yesterday's ranker and fewer passes."""

    train: Ratings
    cfg: RankConfig
    device: torch.device
    seed: int
    rater: Rater | None = None
    init: Ranker | None = None
    iterations: int | None = None
    memo: dict[str, tuple[tuple, Ranker]] | None = None  # a search's last fit of each part (see ``_remembered``)

    def weights(self) -> np.ndarray:
        if self.train.implicit:
            return confidence(self.train.ratings, self.cfg.implicit_alpha, self.cfg.implicit_eps)
        return interaction_weights(self.train.ratings, self.cfg.relevance_threshold, self.cfg.rank_low_rating_weight)


def _remembered(req: FitRequest, part: str, settings: tuple, fit: Callable[[], Ranker]) -> Ranker:
    """``fit()``, or the search's last fit of this part (iALS, EASE) when it had the same settings: the
    parts are deterministic, and a search that climbs the hybrid's share, EASE's lambda or the rating boost
    would otherwise refit the same iALS and EASE for every trial. One fit per part is kept (an EASE matrix
    can be GBs)."""
    if req.memo is None or req.init is not None:
        return fit()
    key = (settings, req.seed, str(req.device), req.iterations)
    hit = req.memo.get(part)
    if hit is not None and hit[0] == key:
        return hit[1]
    req.memo.pop(part, None)  # free the old one before the new one is built
    req.memo[part] = (key, ranker := fit())
    return ranker


def _weight_settings(cfg: RankConfig) -> tuple:
    return (cfg.implicit_alpha, cfg.implicit_eps, cfg.relevance_threshold, cfg.rank_low_rating_weight)


def _fit_ials(req: FitRequest) -> Ranker:
    cfg = req.cfg
    settings = (cfg.rank_factors, cfg.rank_reg, cfg.rank_unobserved_weight, cfg.rank_iterations, cfg.rank_cg_steps)
    return _remembered(req, "ials", (*settings, *_weight_settings(cfg)), lambda: _fit_ials_now(req))


def _fit_ials_now(req: FitRequest) -> Ranker:
    cfg, t = req.cfg, req.train
    previous = req.init.base if isinstance(req.init, BoostedRanker) else req.init  # the iALS factors only
    init = previous.factors() if previous is not None and previous.personal else None
    U, V = ials.fit_factors(
        t.users,
        t.items,
        req.weights(),
        t.n_users,
        t.n_items,
        factors=cfg.rank_factors,
        reg=cfg.rank_reg,
        unobserved_weight=cfg.rank_unobserved_weight,
        iterations=req.iterations or cfg.rank_iterations,
        cg_steps=cfg.rank_cg_steps,
        seed=req.seed,
        device=req.device,
        init=init,
    )
    return FactorRanker(U, V)


def _fit_ease(req: FitRequest) -> Ranker:
    if req.init is not None:
        log.info("EASE is solved in closed form: warm start does not apply, fitted on all interactions")
    t = req.train
    return _remembered(
        req,
        "ease",
        (req.cfg.ease_lambda, *_weight_settings(req.cfg)),
        lambda: fit_ease(
            t.users, t.items, req.weights(), t.n_users, t.n_items, lam=req.cfg.ease_lambda, device=req.device
        ),
    )


def _fit_hybrid(req: FitRequest) -> Ranker:
    """EASE plus iALS, each in units of its own score spread (``hybrid_ials_share`` of the sum is iALS's): the
    two find different neighbours (item-item vs. latent taste), and the sum ranks better than either on
    MovieLens 100K (``bench/heldout.py``). Catalogs EASE can hold only; iALS starts afresh (EASE has no passes)."""
    ease = _fit_ease(req)
    factors = _fit_ials(FitRequest(req.train, req.cfg, req.device, req.seed, memo=req.memo)).factors()
    assert factors is not None
    share = req.cfg.hybrid_ials_share
    return add_product(ease, factors[0], factors[1], share / (1.0 - share))


def _fit_popularity(req: FitRequest) -> Ranker:
    return fit_popularity(req.train.items, req.train.n_items, req.train.n_users, req.device)


def _rank_by_rating(req: FitRequest) -> Ranker:
    if req.rater is None:
        raise ValueError("ranker='rating' needs the fitted rating model")
    return req.rater.as_ranker()


FITTERS: dict[str, Callable[[FitRequest], Ranker]] = {
    "ials": _fit_ials,
    "ease": _fit_ease,
    "hybrid": _fit_hybrid,
    "popularity": _fit_popularity,
    "rating": _rank_by_rating,
}


def fit_ranker(
    train: Ratings,
    cfg: RankConfig,
    device: torch.device,
    seed: int,
    rater: Rater | None = None,
    init: Ranker | None = None,
    iterations: int | None = None,
    memo: dict[str, tuple[tuple, Ranker]] | None = None,
) -> Ranker:
    """Fit the configured ranker on the training interactions (iALS warm-starts from ``init``). A search
    passes one ``memo`` to all its fits on the same data, so a part fitted with the same settings is reused."""
    if cfg.ranker not in FITTERS:
        raise ValueError(f"unknown ranker {cfg.ranker!r}; choose one of {', '.join(FITTERS)}")
    ranker = FITTERS[cfg.ranker](FitRequest(train, cfg, device, seed, rater, init, iterations, memo))
    if cfg.rating_boost > 0 and rater is not None and cfg.ranker in ("ials", "ease", "hybrid") and not train.implicit:
        return boost(ranker, rater, cfg.rating_boost)
    return ranker


def boost(ranker: Ranker, rater: Rater, strength: float) -> Ranker:
    """``ranker`` plus the rating model's scores, scaled so that ``strength`` is in units of the ranker's own
    score spread (the two spreads are measured on an even sample of users): one setting fits EASE and iALS.
    A rating model whose scores are not a product (the neural one) leaves the ranker as it is."""
    product = rater.as_ranker().factors()
    if product is None:
        log.info("rating boost: the %s rating model's scores are not a product; lists use the ranker alone", rater.kind)
        return ranker
    return add_product(ranker, product[0], product[1], strength)


def add_product(ranker: Ranker, P: torch.Tensor, Q: torch.Tensor, strength: float, sample: int = 256) -> Ranker:
    """``ranker + coef * P @ Q.T`` with ``coef`` such that ``strength`` counts in units of the ranker's score
    spread per unit of the product's (both measured on an even sample of users)."""
    P, Q = P.float(), Q.float()
    users = torch.as_tensor(np.linspace(0, P.shape[0] - 1, min(sample, P.shape[0])).astype(np.int64))
    spread_rank = float(ranker.score_block(users).float().std())
    spread_product = float((P[users.to(P.device)] @ Q.T).std())
    coef = strength * spread_rank / spread_product if spread_product > 0 else 0.0
    return BoostedRanker(ranker, P, Q, coef)
