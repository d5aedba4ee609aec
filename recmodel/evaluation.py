"""Measuring models on a held-out part: rating and ranking reports, and every model side by side.

Two models work together: a *rating model* (dot product or neural) predicts the published ``score``
and is judged by RMSE/MAE; a *ranker* orders the published lists and is judged by NDCG@k and friends
(exact definitions in ``recmodel.metrics``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from .baselines import BiasOnly, fit_bias_only, fit_global_mean
from .config import RunConfig
from .metrics import mae, ranking_metrics, rmse
from .models import RatingModule
from .rankers import EASE_MAX_ITEMS, Ranker, fit_popularity, fit_random, fit_ranker
from .ratings import Ratings
from .score import recommend
from .train import fit_rater

log = logging.getLogger(__name__)


def ranking_report(
    ranker: Ranker,
    train: Ratings,
    test: Ratings,
    k: int,
    threshold: float,
    *,
    memory_mb: int = 512,
    device: torch.device | str = "cpu",
    max_users: int = 0,
    seed: int = 0,
) -> dict[str, float]:
    """Ranking metrics at ``k`` for every user with a train history (see ``recmodel.metrics``). With
    ``max_users``, only a seeded sample of that many users with a relevant test rating is scored (the same
    users for every ranker measured with the same data and seed): the metrics are then means over the
    sample, and coverage is the sample's lists' coverage."""
    users = np.flatnonzero(np.bincount(train.users, minlength=train.n_users))
    if max_users:
        relevant = np.zeros(train.n_users, dtype=bool)
        relevant[test.users[test.ratings >= threshold]] = True
        candidates = users[relevant[users]]
        if candidates.size > max_users:
            rng = np.random.default_rng(seed)
            users = np.sort(rng.choice(candidates, size=max_users, replace=False))
    top = recommend(ranker, train, users, k, memory_mb=memory_mb, device=device)
    row_of = np.full(train.n_users, -1)
    row_of[users] = np.arange(users.size)
    liked = (test.ratings >= threshold) & (row_of[test.users] >= 0)
    return ranking_metrics(top.items, row_of[test.users[liked]], test.items[liked], k, train.n_items)


def relevance(data: Ratings, cfg: RunConfig) -> float:
    """What makes a held-out interaction relevant: a good enough rating, or (implicit feedback) any."""
    return float("-inf") if data.implicit else cfg.rank.relevance_threshold


def validation_report(
    ranker: Ranker, train: Ratings, valid: Ratings, cfg: RunConfig, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """A night's ranking metrics on its validation part, as tuning and the baselines' floor measure them:
    at ``metric_k``, on the seeded sample of ``metric_users`` users (the same for every ranker)."""
    return ranking_report(
        ranker,
        train,
        valid,
        cfg.metric_k,
        relevance(train, cfg),
        memory_mb=cfg.score_memory_mb,
        device=device,
        max_users=cfg.metric_users,
        seed=cfg.train.seed,
    )


def rating_report(pred: np.ndarray, test: Ratings) -> dict[str, float]:
    return {"rmse": rmse(pred, test.ratings), "mae": mae(pred, test.ratings)}


def fit_bias(data: Ratings, cfg: RunConfig) -> BiasOnly:
    """Bias-only (``mu + b_u + b_i``) on ``data``, clipped to the rating range: the floor of every rating model."""
    return fit_bias_only(
        data.users,
        data.items,
        data.ratings.astype(np.float64),
        data.n_users,
        data.n_items,
        rating_range=(cfg.rating_min, cfg.rating_max),
    )


def baseline_reports(train: Ratings, test: Ratings, cfg: RunConfig) -> dict[str, dict[str, float]]:
    """The rating baselines every model is compared with: global mean and bias-only."""
    bias = fit_bias(train, cfg)
    return {
        "global_mean": rating_report(fit_global_mean(train.ratings).predict(test.users, test.items), test),
        "bias_only": rating_report(bias.predict(test.users, test.items), test),
    }


def compare(
    train: Ratings,
    test: Ratings,
    cfg: RunConfig,
    device: torch.device,
    rating_models: tuple[str, ...] = ("dot", "neural"),
    rankers: tuple[str, ...] = ("ials", "ease", "hybrid", "rating", "popularity"),
) -> dict[str, dict[str, Any]]:
    """Every model and baseline on one split. ``"published"`` is what the nightly flow would publish:
    the configured ranker's lists with the configured rating model's scores (for implicit feedback there is
    no rating model: every held-out interaction is relevant, and a random control joins popularity)."""
    k = cfg.metric_k
    threshold = relevance(train, cfg)
    out: dict[str, dict[str, Any]] = {} if train.implicit else dict(baseline_reports(train, test, cfg))
    raters = () if train.implicit else tuple(dict.fromkeys((*rating_models, cfg.train.rating_model)))
    for name in raters:
        model, _ = fit_rater(train, cfg.train.model_copy(update={"rating_model": name}), device)
        out[name] = rating_report(model.predict(test.users, test.items), test)
        if "rating" in rankers:
            out[name].update(
                ranking_report(
                    model.as_ranker(), train, test, k, threshold, memory_mb=cfg.score_memory_mb, device=device
                )
            )
    chosen = "ials" if train.implicit and cfg.rank.ranker == "rating" else cfg.rank.ranker  # no rater to rank by
    for name in dict.fromkeys((*rankers, chosen)):
        if name == "rating":
            continue
        if name in ("ease", "hybrid") and train.n_items > EASE_MAX_ITEMS:
            log.info("skipping EASE: %d items is above its %d limit", train.n_items, EASE_MAX_ITEMS)
            continue
        ranker = fit_ranker(train, cfg.rank.model_copy(update={"ranker": name}), device, cfg.train.seed)
        out[name] = ranking_report(ranker, train, test, k, threshold, memory_mb=cfg.score_memory_mb, device=device)
    if train.implicit:
        out["random"] = ranking_report(
            fit_random(train.n_users, train.n_items, cfg.train.seed, device),
            train,
            test,
            k,
            threshold,
            memory_mb=cfg.score_memory_mb,
            device=device,
        )
    if cfg.tune_budget > 0:
        out["tuned"] = tuned_report(train, test, cfg, device)
        out["published"] = dict(out["tuned"])
        return out
    if train.implicit:
        out["published"] = {"ranker": chosen, "rating_model": None, **out[chosen]}
        return out
    ranked_by = cfg.train.rating_model if chosen == "rating" else chosen
    rated = out[cfg.train.rating_model]
    out["published"] = {
        "ranker": chosen,
        "rating_model": cfg.train.rating_model,
        "rmse": rated["rmse"],
        "mae": rated["mae"],
        **{m: v for m, v in out[ranked_by].items() if m not in ("rmse", "mae")},
    }
    return out


def tuned_report(train: Ratings, test: Ratings, cfg: RunConfig, device: torch.device) -> dict[str, Any]:
    """What a night would publish from ``train``: settings tuned on a validation part carved out of ``train``
    (the test part is never seen), the chosen models refitted on all of ``train``, measured on ``test``."""
    from .fitting import BASELINE_RATERS, baseline_rater, validated_choice  # the night's code (it uses this module)
    from .splits import validation_split
    from .tuning import tune

    fit_part, valid = validation_split(train, cfg.train.valid_pct, cfg.train.seed)
    tuned = tune(fit_part, valid, cfg, device, len(train))
    chosen = tuned.cfg
    choice = validated_choice(fit_part, valid, device, tuned)  # a baseline where one did better, as a night does
    threshold = relevance(train, chosen)
    report: dict[str, Any] = {"ranker": choice.ranker, "rating_model": None, "tuning": tuned.record["changed"]}
    if choice.fallback:
        report["fallback"] = choice.fallback
    rater: RatingModule | None = None
    if not train.implicit:
        if choice.rater in BASELINE_RATERS:
            rater = baseline_rater(train, chosen, choice.rater)
        else:
            rater, _ = fit_rater(train, chosen.train, device)
        report.update(rating_model=choice.rater, **rating_report(rater.predict(test.users, test.items), test))
    ranker = (
        fit_popularity(train.items, train.n_items, train.n_users, device)
        if choice.ranker == "popularity" and chosen.rank.ranker != "popularity"
        else fit_ranker(train, chosen.rank, device, chosen.train.seed, rater)
    )
    report.update(
        ranking_report(ranker, train, test, cfg.metric_k, threshold, memory_mb=cfg.score_memory_mb, device=device)
    )
    return report
