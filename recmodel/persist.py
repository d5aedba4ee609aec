"""Model files: safetensors weights + raw-id mappings + JSON config. Loading never executes code."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .config import TrainConfig
from .implicit import EaseRanker, FactorRanker, PopularityRanker
from .models import DotProductBias, EmbeddingNN

FORMAT = "collabflow/rating-model/v1"
RANKER_FORMAT = "collabflow/ranker/v1"
RatingModule = DotProductBias | EmbeddingNN
RankerModel = FactorRanker | EaseRanker | PopularityRanker


@dataclass
class SavedModel:
    model: RatingModule
    user_ids: np.ndarray  # raw id of each user index
    item_ids: np.ndarray  # raw id of each item index
    config: TrainConfig
    metadata: dict[str, Any]


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def _read(path: Path, expected: str, device: torch.device | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; run `collabflow run` first")
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        meta = f.metadata() or {}
        if meta.get("format") != expected:
            raise ValueError(f"{path} is not a collabflow model file (format {meta.get('format')!r}, expected {expected!r})")
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def save_model(path: str | Path, model: RatingModule, user_ids: np.ndarray, item_ids: np.ndarray,
               config: TrainConfig, metadata: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a half-written model."""
    if len(user_ids) != model.user_emb.num_embeddings or len(item_ids) != model.item_emb.num_embeddings:
        raise ValueError("id mappings must have one raw id per user and item row of the model")
    tensors = dict(model.state_dict())
    tensors["user_ids"] = torch.tensor(np.asarray(user_ids, dtype=np.int64))
    tensors["item_ids"] = torch.tensor(np.asarray(item_ids, dtype=np.int64))
    meta = {
        "format": FORMAT,
        "kind": "neural" if isinstance(model, EmbeddingNN) else "dot",
        "config": config.model_dump_json(),
        "y_range": json.dumps(list(model.y_range)),
        "metadata": json.dumps(metadata or {}, default=str),
    }
    return _write(Path(path), tensors, meta)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> SavedModel:
    tensors, meta = _read(Path(path), FORMAT, device)
    config = TrainConfig.model_validate_json(meta["config"])
    user_ids = tensors.pop("user_ids").cpu().numpy()
    item_ids = tensors.pop("item_ids").cpu().numpy()
    y_range = tuple(json.loads(meta["y_range"]))
    if meta.get("kind") == "neural":
        model: RatingModule = EmbeddingNN(len(user_ids), len(item_ids), y_range, config.nn_hidden)
    else:
        model = DotProductBias(len(user_ids), len(item_ids), config.n_factors, y_range)
    model.load_state_dict(tensors)
    return SavedModel(model.to(device), user_ids, item_ids, config, json.loads(meta["metadata"]))


def save_ranker(path: str | Path, ranker: RankerModel, metadata: dict[str, Any] | None = None) -> Path:
    """The ranking model: factors (iALS), the item-item matrix and seen rows (EASE) or counts (popularity)."""
    if isinstance(ranker, FactorRanker):
        kind, tensors = "factors", {"user_factors": ranker.user_factors, "item_factors": ranker.item_factors}
    elif isinstance(ranker, EaseRanker):
        kind, tensors = "ease", {"B": ranker.B, "seen_indptr": torch.from_numpy(ranker.seen_indptr),
                                 "seen_indices": torch.from_numpy(ranker.seen_indices),
                                 "seen_weights": torch.from_numpy(ranker.seen_weights)}
    elif isinstance(ranker, PopularityRanker):
        kind, tensors = "popularity", {"counts": ranker.counts}
    else:
        raise TypeError(f"cannot save a {type(ranker).__name__}")
    meta = {"format": RANKER_FORMAT, "kind": kind, "metadata": json.dumps(metadata or {}, default=str)}
    return _write(Path(path), tensors, meta)


def load_ranker(path: str | Path, device: torch.device | str = "cpu") -> RankerModel:
    t, meta = _read(Path(path), RANKER_FORMAT, device)
    if meta["kind"] == "factors":
        return FactorRanker(t["user_factors"], t["item_factors"])
    if meta["kind"] == "ease":
        return EaseRanker(t["B"], t["seen_indptr"].cpu().numpy(), t["seen_indices"].cpu().numpy(),
                          t["seen_weights"].cpu().numpy())
    return PopularityRanker(t["counts"])
