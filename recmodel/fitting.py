"""One night's models: fit on a validation split, measure next to the baselines, refit on everything.

``fit_night`` is what the nightly flow's training task runs; it reads the run's snapshot and writes
both models to safetensors files, returning their paths and the validation metrics.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .baselines import fit_bias_only
from .config import RunConfig
from .device import resolve_device
from .evaluation import baseline_reports, ranking_report
from .models import BiasOnly, RatingModule
from .persist import load_model, load_ranker, save_model, save_ranker
from .rankers import Ranker, fit_popularity, fit_ranker
from .ratings import Ratings
from .snapshot import Snapshot
from .splits import split_random
from .train import FitResult, fit_rater

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmSource:
    """The last published run, for warm start: its folder (models). The ratings it never saw are the
    snapshot's new ones (``Snapshot.is_new``): tonight's."""

    run_id: str
    run_dir: str


@dataclass
class FitOutcome:
    """What training hands to scoring and publishing: model files, the device, validation metrics."""

    rater_path: str
    ranker_path: str
    device: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    source: str = "model"  # what the lists' rows say produced them: the model, or a baseline published instead


@dataclass
class _Warm:
    rater: RatingModule
    ranker: Ranker
    epochs: int
    iterations: int


def _split(
    everything: Ratings, snapshot: Snapshot, cfg: RunConfig, device: torch.device, previous: WarmSource | None
) -> tuple[Ratings, Ratings, _Warm | None]:
    """Random validation split; with warm start, yesterday's models and the ratings ingested since
    (the old models never saw them, so the metrics stay honest)."""
    run_dir = Path(previous.run_dir) if previous else None
    if cfg.warm_start and previous and run_dir and (run_dir / "rater.safetensors").exists():
        warm = _Warm(
            load_model(run_dir / "rater.safetensors", device).model,
            load_ranker(run_dir / "ranker.safetensors", device),
            cfg.warm_epochs,
            cfg.warm_rank_iterations,
        )
        is_new = snapshot.is_new()
        train, valid = everything.take(np.flatnonzero(~is_new)), everything.take(np.flatnonzero(is_new))
        log.info("warm start from run %s: %d new ratings are the validation part", previous.run_id, len(valid))
        return train, valid, warm
    if cfg.warm_start:
        log.info("warm start asked for, but there is no published run with model files: training from scratch")
    train, valid = split_random(everything, cfg.train.valid_pct, cfg.train.seed)
    return train, valid, None


def _measure(
    train: Ratings, valid: Ratings, ranker: Ranker, result: FitResult, cfg: RunConfig, device: torch.device
) -> dict[str, Any]:
    """Validation metrics of both models next to the rating baselines and popularity."""
    k, threshold = cfg.metric_k, cfg.rank.relevance_threshold
    final = result.final
    ranking = ranking_report(ranker, train, valid, k, threshold, memory_mb=cfg.score_memory_mb, device=device)
    baselines = baseline_reports(train, valid, cfg)
    popularity = fit_popularity(train.items, train.n_items, train.n_users, device)
    models: dict[str, dict[str, Any]] = {
        cfg.train.rating_model: {"rmse": final.valid_rmse, "mae": final.valid_mae},
        **baselines,
        cfg.rank.ranker: ranking,
        "popularity": ranking_report(
            popularity, train, valid, k, threshold, memory_mb=cfg.score_memory_mb, device=device
        ),
    }
    log.info(
        "validation: %s RMSE %.4f (bias-only %.4f, global mean %.4f); %s NDCG@%d %.4f (popularity %.4f)",
        cfg.train.rating_model,
        final.valid_rmse,
        baselines["bias_only"]["rmse"],
        baselines["global_mean"]["rmse"],
        cfg.rank.ranker,
        k,
        ranking[f"ndcg_at_{k}"],
        models["popularity"][f"ndcg_at_{k}"],
    )
    return {
        "valid_rmse": final.valid_rmse,
        "valid_mae": final.valid_mae,
        "train_mse": final.train_loss,
        **{m: v for m, v in ranking.items() if m != "n_users"},
        "models": models,
    }


@dataclass
class _Choice:
    """Which models the night publishes: the configured ones, or a baseline that did better on validation."""

    rater: str
    ranker: str
    fallback: dict[str, str] = field(default_factory=dict)


def _floors(metrics: dict[str, Any], cfg: RunConfig) -> _Choice:
    """Never publish a model worse than its own baseline on the same validation part: a rating model above
    bias-only's RMSE publishes bias-only scores, a ranker below popularity's NDCG publishes popularity."""
    k = cfg.metric_k
    models = metrics["models"]
    choice = _Choice(cfg.train.rating_model, cfg.rank.ranker)
    rmse, floor = metrics["valid_rmse"], models["bias_only"]["rmse"]
    if rmse is not None and floor is not None and rmse > floor:
        choice.rater = "bias"
        choice.fallback["rating_model"] = (
            f"{cfg.train.rating_model} validation RMSE {rmse:.4f} is worse than "
            f"bias-only's {floor:.4f}: bias-only scores are published"
        )
    ndcg, floor = metrics.get(f"ndcg_at_{k}"), models["popularity"].get(f"ndcg_at_{k}")
    if cfg.rank.ranker != "popularity" and ndcg is not None and floor is not None and ndcg < floor:
        choice.ranker = "popularity"
        choice.fallback["ranker"] = (
            f"{cfg.rank.ranker} validation NDCG@{k} {ndcg:.4f} is worse than "
            f"popularity's {floor:.4f}: popularity's lists are published"
        )
    for why in choice.fallback.values():
        log.warning("baseline published: %s", why)
    if choice.fallback:  # the night's headline metrics are those of what is published
        metrics["candidates"] = {"rating_model": cfg.train.rating_model, "ranker": cfg.rank.ranker}
        if choice.rater == "bias":
            metrics.update(
                rating_model="bias", valid_rmse=models["bias_only"]["rmse"], valid_mae=models["bias_only"]["mae"]
            )
        if choice.ranker == "popularity":
            metrics["ranker"] = "popularity"
            metrics.update({m: v for m, v in models["popularity"].items() if m != "n_users"})
        metrics["fallback"] = choice.fallback
    return choice


def _bias_rater(data: Ratings, cfg: RunConfig) -> BiasOnly:
    fitted = fit_bias_only(
        data.users,
        data.items,
        data.ratings.astype(np.float64),
        data.n_users,
        data.n_items,
        rating_range=(cfg.rating_min, cfg.rating_max),
    )
    return BiasOnly.fitted(fitted.mu, fitted.user_bias, fitted.item_bias, cfg.rating_min, cfg.rating_max)


def _published(
    data: Ratings,
    choice: _Choice,
    rater: RatingModule,
    ranker: Ranker,
    cfg: RunConfig,
    device: torch.device,
    warm: _Warm | None,
    refit: bool,
) -> tuple[RatingModule, Ranker]:
    """The models the lists are made with: refitted on ``data`` (every rating) when ``refit``, from yesterday's
    or the validated models where ``warm`` says so; a baseline where the choice fell back to one."""
    if choice.rater == "bias":
        rater = _bias_rater(data, cfg)
    elif refit:
        rater, _ = fit_rater(
            data, cfg.train, device, init=warm.rater if warm else None, epochs=warm.epochs if warm else None
        )
    if choice.ranker == "popularity" and cfg.rank.ranker != "popularity":
        ranker = fit_popularity(data.items, data.n_items, data.n_users, device)
    elif refit:
        ranker = fit_ranker(
            data,
            cfg.rank,
            device,
            cfg.train.seed,
            rater,
            init=warm.ranker if warm else None,
            iterations=warm.iterations if warm else None,
        )
    return rater, ranker


def fit_night(
    snapshot: Snapshot,
    cfg: RunConfig,
    rater_path: str | Path,
    ranker_path: str | Path,
    previous: WarmSource | None = None,
) -> FitOutcome:
    """Validation split -> fit and measure against the baselines -> the published models (refitted on every
    rating when ``refit_on_all``), saved to the two paths.

    ``previous`` is the last published run; with ``cfg.warm_start`` both models start from its files.
    """
    device = resolve_device(cfg.train.device)
    everything = snapshot.ratings()
    train, valid, warm = _split(everything, snapshot, cfg, device, previous)
    t0 = time.perf_counter()
    rater, result = fit_rater(
        train, cfg.train, device, valid, init=warm.rater if warm else None, epochs=warm.epochs if warm else None
    )
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ranker = fit_ranker(
        train,
        cfg.rank,
        device,
        cfg.train.seed,
        rater,
        init=warm.ranker if warm else None,
        iterations=warm.iterations if warm else None,
    )
    epochs = warm.epochs if warm else cfg.train.for_model().epochs
    metrics: dict[str, Any] = {
        "rating_model": cfg.train.rating_model,
        "ranker": cfg.rank.ranker,
        "metric_k": cfg.metric_k,
        "validation": "new-ratings" if warm else "random",
        "n_train": len(train),
        "n_valid": len(valid),
        "train_seconds": round(train_seconds, 3),
        "rank_seconds": round(time.perf_counter() - t0, 3),
        "ratings_per_second": round(len(train) * epochs / max(train_seconds, 1e-9)),
        "valid_rmse": None,
        "valid_mae": None,
    }
    choice = _Choice(cfg.train.rating_model, cfg.rank.ranker)
    if len(valid):
        metrics.update(_measure(train, valid, ranker, result, cfg, device))
        choice = _floors(metrics, cfg)
        if cfg.refit_on_all:
            if not warm and len(everything) >= cfg.refit_continue_from:
                # a large night: go on from the models just validated instead of starting over (the
                # validation part is a fifth of the data; the rest is learnt already)
                warm = _Warm(rater, ranker, cfg.warm_epochs, cfg.warm_rank_iterations)
                log.info(
                    "refitting on all %d ratings, continuing from the validated models (%d epochs, %d iALS passes)",
                    len(everything),
                    warm.epochs,
                    warm.iterations,
                )
            else:
                log.info("refitting on all %d ratings", len(everything))
        rater, ranker = _published(
            everything if cfg.refit_on_all else train, choice, rater, ranker, cfg, device, warm, cfg.refit_on_all
        )
    save_model(
        rater_path,
        rater,
        snapshot.user_ids(),
        snapshot.item_ids(),
        cfg.train,
        metadata={"valid_rmse": metrics["valid_rmse"]},
    )
    save_ranker(ranker_path, ranker, metadata={"ranker": metrics["ranker"]})
    return FitOutcome(
        str(rater_path),
        str(ranker_path),
        device.type,
        metrics,
        [vars(h) for h in result.history],
        source="baseline" if choice.ranker == "popularity" and cfg.rank.ranker != "popularity" else "model",
    )
