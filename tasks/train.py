"""Fit the rating model and the ranker on a run's snapshot; measure both against baselines."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import polars as pl
from prefect import task

from recmodel.baselines import fit_bias_only, fit_global_mean
from recmodel.config import RunConfig
from recmodel.device import resolve_device
from recmodel.implicit import fit_popularity
from recmodel.persist import load_model, load_ranker, save_model, save_ranker
from recmodel.pipeline import Ratings, fit_rater, fit_ranker, rating_report, ranking_report, split_random

from . import warehouse as wh

log = logging.getLogger(__name__)
K = 10


def load_snapshot(snapshot: dict, users: tuple[int, int] | None = None) -> Ratings:
    """The run's ratings by index; with ``users=(lo, hi)`` only those of user indices in ``[lo, hi)`` (a
    scoring shard reads just its part: the filter is pushed into the Parquet scan)."""
    scan = pl.scan_parquet(snapshot["interactions_path"])
    if users is not None:
        scan = scan.filter(pl.col("user_idx").is_between(users[0], users[1], closed="left"))
    frame = scan.select("user_idx", "item_idx", "rating", "timestamp").collect()
    return Ratings(frame["user_idx"].to_numpy().astype(np.int64), frame["item_idx"].to_numpy().astype(np.int64),
                   frame["rating"].to_numpy().astype(np.float32), frame["timestamp"].to_numpy(),
                   snapshot["n_users"], snapshot["n_items"])


def fit_snapshot(snapshot: dict, cfg: RunConfig, rater_path: str | Path, ranker_path: str | Path,
                 previous: dict | None = None) -> dict:
    """Validation split -> fit and measure; then (``refit_on_all``) refit on every rating and save both models.

    ``previous`` (``run_id``, ``run_dir``, ``finished_at``) is the last published run; with ``cfg.warm_start`` both
    models start from its files, and the validation part is the ratings ingested since it ran: the old
    models never saw them, so the metrics stay honest.
    """
    device = resolve_device(cfg.train.device)
    everything = load_snapshot(snapshot)
    ranker_name = cfg.rank.ranker
    warm = None
    if cfg.warm_start and previous and (Path(previous["run_dir"]) / "rater.safetensors").exists():
        warm = {"rater": load_model(Path(previous["run_dir"]) / "rater.safetensors", device).model,
                "ranker": load_ranker(Path(previous["run_dir"]) / "ranker.safetensors", device)}
        is_new = pl.read_parquet(snapshot["interactions_path"], columns=["ingested_at"])["ingested_at"].to_numpy() \
            > previous["finished_at"]
        train, valid = everything.take(np.flatnonzero(~is_new)), everything.take(np.flatnonzero(is_new))
        log.info("warm start from run %s: %d new ratings are the validation part", previous["run_id"], len(valid))
    else:
        if cfg.warm_start:
            log.info("warm start asked for, but there is no published run with model files: training from scratch")
        train, valid = split_random(everything, cfg.train.valid_pct, cfg.train.seed)
    warm_epochs = cfg.warm_epochs if warm else None
    warm_iterations = cfg.warm_rank_iterations if warm else None
    t0 = time.perf_counter()
    rater, result = fit_rater(train, cfg.train, device, valid, init=warm and warm["rater"], epochs=warm_epochs)
    wh.fault_point("train")
    train_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    ranker = fit_ranker(train, cfg.rank, device, cfg.train.seed, rater, init=warm and warm["ranker"],
                        iterations=warm_iterations)
    rank_seconds = time.perf_counter() - t0
    metrics: dict = {"rating_model": cfg.train.rating_model, "ranker": ranker_name,
                     "validation": "new-ratings" if warm else "random", "n_train": len(train),
                     "n_valid": len(valid), "train_seconds": round(train_seconds, 3), "rank_seconds": round(rank_seconds, 3),
                     "ratings_per_second": round(len(train) * (warm_epochs or cfg.train.for_model().epochs)
                                                 / max(train_seconds, 1e-9)),
                     "valid_rmse": None, "valid_mae": None}
    if len(valid):
        final = result.final
        metrics.update(valid_rmse=final.valid_rmse, valid_mae=final.valid_mae, train_mse=final.train_loss)
        lo_hi = (cfg.rating_min, cfg.rating_max)
        bias = fit_bias_only(train.users, train.items, train.ratings.astype(np.float64), train.n_users, train.n_items,
                             rating_range=lo_hi)
        threshold = cfg.rank.relevance_threshold
        ranking = ranking_report(ranker, train, valid, K, threshold, memory_mb=cfg.score_memory_mb, device=device)
        metrics.update({m: v for m, v in ranking.items() if m != "n_users"})
        metrics["models"] = {
            cfg.train.rating_model: {"rmse": final.valid_rmse, "mae": final.valid_mae},
            "global_mean": rating_report(fit_global_mean(train.ratings).predict(valid.users, valid.items), valid),
            "bias_only": rating_report(bias.predict(valid.users, valid.items), valid),
            ranker_name: ranking,
            "popularity": ranking_report(fit_popularity(train.items, train.n_items, device), train, valid, K, threshold,
                                         memory_mb=cfg.score_memory_mb, device=device),
        }
        log.info("validation: %s RMSE %.4f (bias-only %.4f, global mean %.4f); %s NDCG@%d %.4f (popularity %.4f)",
                 cfg.train.rating_model, final.valid_rmse, metrics["models"]["bias_only"]["rmse"],
                 metrics["models"]["global_mean"]["rmse"], ranker_name, K, ranking[f"ndcg_at_{K}"],
                 metrics["models"]["popularity"][f"ndcg_at_{K}"])
        if cfg.refit_on_all:
            if not warm and len(everything) >= cfg.refit_continue_from:
                # a large night: go on from the models just validated instead of starting over (the
                # validation part is 20% of the data; the other 80% is learnt already)
                warm, warm_epochs, warm_iterations = {"rater": rater, "ranker": ranker}, cfg.warm_epochs, \
                    cfg.warm_rank_iterations
                log.info("refitting both models on all %d ratings, continuing from the validated ones (%d epochs, "
                         "%d iALS passes)", len(everything), warm_epochs, warm_iterations)
            else:
                log.info("refitting both models on all %d ratings", len(everything))
            rater, _ = fit_rater(everything, cfg.train, device, init=warm and warm["rater"], epochs=warm_epochs)
            ranker = fit_ranker(everything, cfg.rank, device, cfg.train.seed, rater, init=warm and warm["ranker"],
                                iterations=warm_iterations)
    user_ids = pl.read_parquet(snapshot["users_path"])["user_id"].to_numpy()
    item_ids = pl.read_parquet(snapshot["items_path"])["item_id"].to_numpy()
    save_model(rater_path, rater, user_ids, item_ids, cfg.train, metadata={"valid_rmse": metrics["valid_rmse"]})
    save_ranker(ranker_path, ranker, metadata={"ranker": ranker_name})
    return {"rater_path": str(rater_path), "ranker_path": str(ranker_path), "device": device.type, "metrics": metrics,
            "history": [vars(h) for h in result.history]}


@task(name="fit-models")
def fit_models(snapshot: dict, cfg: RunConfig, rater_path: str, ranker_path: str, previous: dict | None = None) -> dict:
    """Train the rating model and the ranker, measure them next to baselines, save both (safetensors)."""
    return fit_snapshot(snapshot, cfg, rater_path, ranker_path, previous)
