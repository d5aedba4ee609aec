"""One night's models: fit on a validation split, measure next to the baselines, refit on everything.

``fit_night`` is what the nightly flow's training task runs; it reads the run's snapshot and writes the
models to safetensors files, returning their paths and the validation metrics.

* **Explicit feedback** (ratings): a rating model writes the published ``score`` (measured by RMSE against
  global-mean and bias-only), a ranker orders the lists (measured by NDCG@k against popularity; relevant =
  a held-out rating >= ``relevance_threshold``).
* **Implicit feedback** (interactions): rankers only; every held-out interaction is relevant; the baselines
  are popularity and a random control; the published ``score`` is the ranker's.

A model worse than its baseline on the validation part is never published: the baseline is.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .device import resolve_device
from .evaluation import baseline_reports, fit_bias, validation_report
from .models import BiasOnly, RatingModule
from .persist import checksum, load_model, load_ranker, save_model, save_ranker
from .rankers import Ranker, fit_popularity, fit_random, fit_ranker
from .ratings import Ratings
from .snapshot import Snapshot
from .splits import validation_split
from .train import FitResult, fit_rater
from .tuning import Tuned, apply_values, reusable, tune, tuned_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmSource:
    """The last published run: its folder (models, for warm start; the ratings it never saw are the
    snapshot's new ones, ``Snapshot.is_new``) and the settings its tuning chose."""

    run_id: str
    run_dir: str
    tuning: dict[str, Any] | None = None  # its tuning record (metrics["tuning"]): values reused while they hold
    model_files: dict[str, str] | None = None  # file name -> sha256, as its run record has them


@dataclass
class FitOutcome:
    """What training hands to scoring and publishing: model files, the device, validation metrics."""

    rater_path: str | None  # None for implicit feedback: the ranker's score is published
    ranker_path: str
    device: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    source: str = "model"  # what the lists' rows say produced them: the model, or a baseline published instead
    config: dict[str, Any] = field(default_factory=dict)  # the settings trained with (after tuning), flat


@dataclass
class _Warm:
    rater: RatingModule | None
    ranker: Ranker
    epochs: int
    iterations: int


def _load_warm(previous: WarmSource, cfg: RunConfig, device: torch.device, implicit: bool) -> _Warm | None:
    """Yesterday's models; a missing or damaged file (unreadable, or not the bytes the run recorded) means
    training from scratch, with a warning naming it."""
    run_dir = Path(previous.run_dir)
    recorded = previous.model_files or {}
    path = run_dir / "rater.safetensors"
    try:
        rater = None
        if not implicit:
            _verify(path, recorded.get(path.name), previous.run_id)
            rater = load_model(path, device).model
        path = run_dir / "ranker.safetensors"
        _verify(path, recorded.get(path.name), previous.run_id)
        ranker = load_ranker(path, device)
    except (OSError, ValueError, RuntimeError) as e:  # safetensors raises these for a damaged file
        log.warning("warm start: %s cannot be used (%s); training from scratch", path, " ".join(str(e).split())[:300])
        return None
    return _Warm(rater, ranker, cfg.warm_epochs, cfg.warm_rank_iterations)


def _verify(path: Path, expected: str | None, run_id: str) -> None:
    if expected is not None and checksum(path) != expected:
        raise ValueError(f"its bytes differ from the checksum run {run_id} recorded: the file is damaged")


def _fit_ranker(
    data: Ratings, cfg: RunConfig, device: torch.device, rater: RatingModule | None, warm: _Warm | None
) -> Ranker:
    """The configured ranker on ``data``; with ``warm``, continued from that ranker for its few iterations."""
    return fit_ranker(
        data,
        cfg.rank,
        device,
        cfg.train.seed,
        rater,
        init=warm.ranker if warm else None,
        iterations=warm.iterations if warm else None,
    )


def _split(
    everything: Ratings, snapshot: Snapshot, cfg: RunConfig, device: torch.device, previous: WarmSource | None
) -> tuple[Ratings, Ratings, _Warm | None]:
    """Random validation split; with warm start, yesterday's models and the ratings that arrived tonight
    (the old models never saw them, so the metrics stay honest)."""
    if cfg.warm_start and previous is not None:
        warm = _load_warm(previous, cfg, device, everything.implicit)
        if warm is not None:
            is_new = snapshot.is_new()
            train, valid = everything.take(np.flatnonzero(~is_new)), everything.take(np.flatnonzero(is_new))
            log.info("warm start from run %s: %d new ratings are the validation part", previous.run_id, len(valid))
            return train, valid, warm
    elif cfg.warm_start:
        log.info("warm start asked for, but there is no published run: training from scratch")
    train, valid = validation_split(everything, cfg.train.valid_pct, cfg.train.seed)
    return train, valid, None


def _measure(
    train: Ratings,
    valid: Ratings,
    ranker: Ranker,
    result: FitResult | None,
    cfg: RunConfig,
    device: torch.device,
    ranking: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Validation metrics of the models next to their baselines (``ranking``: the ranker's own, when its
    tuning trial measured it already)."""
    k = cfg.metric_k

    def ranked(model: Ranker) -> dict[str, float]:
        return validation_report(model, train, valid, cfg, device)

    ranking = ranked(ranker) if ranking is None else ranking
    models: dict[str, dict[str, Any]] = {
        cfg.rank.ranker: ranking,
        "popularity": ranked(fit_popularity(train.items, train.n_items, train.n_users, device)),
    }
    out: dict[str, Any] = {**{m: v for m, v in ranking.items() if m != "n_users"}, "models": models}
    if train.implicit:
        models["random"] = ranked(fit_random(train.n_users, train.n_items, cfg.train.seed, device))
        log.info(
            "validation: %s NDCG@%d %.4f (popularity %.4f, random %.4f)",
            cfg.rank.ranker,
            k,
            ranking[f"ndcg_at_{k}"],
            models["popularity"][f"ndcg_at_{k}"],
            models["random"][f"ndcg_at_{k}"],
        )
        return out
    assert result is not None  # explicit feedback has a rating model
    final = result.final
    baselines = baseline_reports(train, valid, cfg)
    models.update({cfg.train.rating_model: {"rmse": final.valid_rmse, "mae": final.valid_mae}, **baselines})
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
    return {"valid_rmse": final.valid_rmse, "valid_mae": final.valid_mae, "train_mse": final.train_loss, **out}


@dataclass
class _Choice:
    """Which models the night publishes: the configured ones, or a baseline that did better on validation."""

    rater: str | None
    ranker: str
    fallback: dict[str, str] = field(default_factory=dict)


def _floors(metrics: dict[str, Any], cfg: RunConfig, implicit: bool) -> _Choice:
    """Never publish a model worse than its own baseline on the same validation part: a rating model above
    the better of bias-only's and the global mean's RMSE publishes that baseline's scores (the global mean
    wins only where the data holds no user or item effect bias-only can learn), a ranker below popularity's
    NDCG publishes popularity."""
    k = cfg.metric_k
    models = metrics["models"]
    choice = _Choice(None if implicit else cfg.train.rating_model, cfg.rank.ranker)
    if not implicit:
        floors = [(models[b]["rmse"], b) for b in _RATING_FLOORS if models.get(b, {}).get("rmse") is not None]
        rmse = metrics["valid_rmse"]
        if rmse is not None and floors and rmse > min(floors)[0]:
            floor, baseline = min(floors)  # at a tie, bias-only
            choice.rater = _RATING_FLOORS[baseline]
            label = "bias-only" if baseline == "bias_only" else "the global mean"
            choice.fallback["rating_model"] = (
                f"{cfg.train.rating_model} validation RMSE {rmse:.4f} is worse than "
                f"{label}'s {floor:.4f}: {label} scores are published"
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
        if choice.rater in _FLOOR_OF:
            floor = models[_FLOOR_OF[choice.rater]]
            metrics.update(rating_model=choice.rater, valid_rmse=floor["rmse"], valid_mae=floor["mae"])
        if choice.ranker == "popularity":
            metrics["ranker"] = "popularity"
            metrics.update({m: v for m, v in models["popularity"].items() if m != "n_users"})
        metrics["fallback"] = choice.fallback
    return choice


def validated_choice(train: Ratings, valid: Ratings, device: torch.device, tuned: Tuned) -> _Choice:
    """What a night publishes after its search on ``(train, valid)``: the tuned models, or a baseline where one
    did better on ``valid`` (``_floors``). For ``evaluate``'s published row."""
    rater, result = tuned.rater, tuned.result
    if result is None and not train.implicit:
        rater, result = fit_rater(train, tuned.cfg.train, device, valid)
    ranker = tuned.ranker if tuned.ranker is not None else _fit_ranker(train, tuned.cfg, device, rater, None)
    known = tuned.ranker_report if tuned.ranker is not None else None
    return _floors(_measure(train, valid, ranker, result, tuned.cfg, device, known), tuned.cfg, train.implicit)


# the rating baselines a rating model must beat (their names in the night's metrics) -> the published rater
_RATING_FLOORS = {"bias_only": "bias", "global_mean": "mean"}
_FLOOR_OF = {rater: baseline for baseline, rater in _RATING_FLOORS.items()}
BASELINE_RATERS = frozenset(_FLOOR_OF)  # a night's rating_model when a baseline's scores are published


def baseline_rater(data: Ratings, cfg: RunConfig, kind: str) -> BiasOnly:
    """``kind`` "bias": bias-only fitted on ``data``; "mean": the global mean (a bias-only model whose biases
    are 0)."""
    fitted = fit_bias(data, cfg)
    user_bias, item_bias = (
        (fitted.user_bias, fitted.item_bias)
        if kind == "bias"
        else (np.zeros_like(fitted.user_bias), np.zeros_like(fitted.item_bias))
    )
    return BiasOnly.fitted(fitted.mu, user_bias, item_bias, cfg.rating_min, cfg.rating_max)


def _published(
    data: Ratings,
    choice: _Choice,
    rater: RatingModule | None,
    ranker: Ranker,
    cfg: RunConfig,
    device: torch.device,
    warm: _Warm | None,
    refit: bool,
) -> tuple[RatingModule | None, Ranker]:
    """The models the lists are made with: refitted on ``data`` (every rating) when ``refit``, from yesterday's
    or the validated models where ``warm`` says so; a baseline where the choice fell back to one."""
    if choice.rater in _FLOOR_OF:
        rater = baseline_rater(data, cfg, choice.rater)
    elif refit and rater is not None:
        rater, _ = fit_rater(
            data, cfg.train, device, init=warm.rater if warm else None, epochs=warm.epochs if warm else None
        )
    if choice.ranker == "popularity" and cfg.rank.ranker != "popularity":
        ranker = fit_popularity(data.items, data.n_items, data.n_users, device)
    elif refit:
        ranker = _fit_ranker(data, cfg, device, rater, warm)
    return rater, ranker


def _tuned(
    train: Ratings,
    valid: Ratings,
    cfg: RunConfig,
    device: torch.device,
    previous: WarmSource | None,
    warm: bool,
    n_ratings: int,
) -> tuple[RunConfig, Tuned | None, dict[str, Any] | None]:
    """The settings to train with: searched on the validation part, or last night's while they hold
    (always on warm-start nights: tonight's validation part is only the new ratings)."""
    if cfg.tune_budget <= 0 or not len(valid):
        return cfg, None, None
    last = previous.tuning if previous is not None else None
    if last and "chosen" in last and last.get("base") == cfg.config_hash() and (warm or reusable(last, cfg, n_ratings)):
        log.info(
            "tuning: reusing the values chosen for run %s: %s",
            last.get("reused_from") or (previous.run_id if previous else None),
            last.get("changed") or "the configured settings",
        )
        record = {k: v for k, v in last.items() if k != "trials"}
        record.update(reused_from=last.get("reused_from") or (previous.run_id if previous else None))
        return apply_values(cfg, last["chosen"]), None, record
    if warm:
        return cfg, None, None
    tuned = tune(train, valid, cfg, device, n_ratings)
    return tuned.cfg, tuned, tuned.record


def fit_night(
    snapshot: Snapshot,
    cfg: RunConfig,
    rater_path: str | Path,
    ranker_path: str | Path,
    previous: WarmSource | None = None,
) -> FitOutcome:
    """Validation split -> fit and measure against the baselines -> the published models (refitted on every
    rating when ``refit_on_all``), saved to the two paths (no rating model for implicit feedback).

    ``previous`` is the last published run; with ``cfg.warm_start`` the models start from its files.
    """
    device = resolve_device(cfg.train.device)
    everything = snapshot.ratings(timestamps=False)
    implicit = everything.implicit
    train, valid, warm = _split(everything, snapshot, cfg, device, previous)
    cfg, tuned, tuning = _tuned(train, valid, cfg, device, previous, warm is not None, len(everything))
    t0 = time.perf_counter()
    rater: RatingModule | None = None
    result: FitResult | None = None
    if tuned is not None and tuned.rater is not None:
        rater, result = tuned.rater, tuned.result
    elif not implicit:
        rater, result = fit_rater(
            train, cfg.train, device, valid, init=warm.rater if warm else None, epochs=warm.epochs if warm else None
        )
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    if tuned is not None and tuned.ranker is not None:
        ranker = tuned.ranker
    else:
        ranker = _fit_ranker(train, cfg, device, rater, warm)
    epochs = warm.epochs if warm else cfg.train.for_model().epochs
    metrics: dict[str, Any] = {
        "feedback": everything.feedback,
        "rating_model": None if implicit else cfg.train.rating_model,
        "ranker": cfg.rank.ranker,
        "metric_k": cfg.metric_k,
        "validation": "new-ratings" if warm else "random",
        "n_train": len(train),
        "n_valid": len(valid),
        "train_seconds": round(train_seconds, 3),
        "rank_seconds": round(time.perf_counter() - t0, 3),
        "ratings_per_second": None if implicit else round(len(train) * epochs / max(train_seconds, 1e-9)),
        "valid_rmse": None,
        "valid_mae": None,
    }
    if tuning:
        metrics["tuning"] = tuning
    choice = _Choice(None if implicit else cfg.train.rating_model, cfg.rank.ranker)
    if len(valid):
        known = tuned.ranker_report if tuned is not None and tuned.ranker is ranker else None
        metrics.update(_measure(train, valid, ranker, result, cfg, device, known))
        choice = _floors(metrics, cfg, implicit)
        if cfg.refit_on_all:
            if not warm and len(everything) >= cfg.refit_continue_from:
                # a large night: go on from the models just validated instead of starting over (the
                # validation part is a fifth of the data; the rest is learnt already)
                warm = _Warm(rater, ranker, cfg.refit_epochs, cfg.refit_rank_iterations)
                log.info(
                    "refitting on all %d %s, continuing from the validated models (%d epochs, %d iALS passes)",
                    len(everything),
                    everything.noun,
                    warm.epochs,
                    warm.iterations,
                )
            else:
                log.info("refitting on all %d %s", len(everything), everything.noun)
            metrics["refit"] = (
                {"from": "scratch"}
                if warm is None
                else {"from": "validated" if metrics["validation"] == "random" else "previous run"}
                | {"epochs": None if implicit else warm.epochs, "rank_iterations": warm.iterations}
            )
        rater, ranker = _published(
            everything if cfg.refit_on_all else train, choice, rater, ranker, cfg, device, warm, cfg.refit_on_all
        )
    saved_rater = None
    if rater is not None:
        saved_rater = str(
            save_model(
                rater_path,
                rater,
                snapshot.user_ids(),
                snapshot.item_ids(),
                cfg.train,
                metadata={"valid_rmse": metrics["valid_rmse"]},
            )
        )
    save_ranker(ranker_path, ranker, metadata={"ranker": metrics["ranker"]})
    metrics["model_files"] = {Path(p).name: checksum(p) for p in (saved_rater, ranker_path) if p is not None}
    history = [vars(h) for h in result.history] if result is not None else []
    fell_back = choice.ranker == "popularity" and cfg.rank.ranker != "popularity"
    return FitOutcome(
        saved_rater,
        str(ranker_path),
        device.type,
        metrics,
        history,
        source="baseline" if fell_back else "model",
        config=tuned_values(cfg),
    )
