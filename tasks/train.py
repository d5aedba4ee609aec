"""Fit the rating model on a run's snapshot and save it next to the snapshot."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import torch
from prefect import task

from recmodel.config import TrainConfig
from recmodel.device import resolve_device
from recmodel.models import DotProductBias
from recmodel.persist import save_model
from recmodel.train import Interactions, fit, random_split

log = logging.getLogger(__name__)


def fit_snapshot(snapshot: dict, cfg: TrainConfig, model_path: str | Path) -> dict:
    """Train on a seeded random split of the snapshot; returns metrics, history and the model's path."""
    device = resolve_device(cfg.device)
    frame = pl.read_parquet(snapshot["interactions_path"])
    users = frame["user_idx"].to_numpy()
    items = frame["item_idx"].to_numpy()
    ratings = frame["rating"].to_numpy().astype(np.float32)
    data = Interactions.from_numpy(users, items, ratings, device)
    train_idx, valid_idx = random_split(len(frame), cfg.valid_pct, cfg.seed)
    train = data.subset(torch.as_tensor(train_idx, device=device))
    valid = data.subset(torch.as_tensor(valid_idx, device=device)) if valid_idx.size else None

    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    model = DotProductBias(snapshot["n_users"], snapshot["n_items"], cfg.n_factors, cfg.y_range, generator=generator)
    model.to(device)
    result = fit(model, train, valid, cfg)

    user_ids = pl.read_parquet(snapshot["users_path"])["user_id"].to_numpy()
    item_ids = pl.read_parquet(snapshot["items_path"])["item_id"].to_numpy()
    final = result.final
    metrics = {
        "valid_rmse": final.valid_rmse, "valid_mae": final.valid_mae, "train_mse": final.train_loss,
        "n_train": result.n_train, "n_valid": result.n_valid, "train_seconds": round(result.seconds, 3),
        "ratings_per_second": round(result.n_train * cfg.epochs / max(result.seconds, 1e-9)),
    }
    save_model(model_path, model, user_ids, item_ids, cfg, metadata={"metrics": metrics})
    return {
        "model_path": str(model_path), "device": device.type, "metrics": metrics,
        "history": [vars(h) for h in result.history],
    }


@task(name="fit-model")
def fit_model(snapshot: dict, cfg: TrainConfig, model_path: str) -> dict:
    """Train the dot-product model with biases; save it with its id mappings (safetensors)."""
    return fit_snapshot(snapshot, cfg, model_path)
