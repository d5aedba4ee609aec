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
from .models import DotProductBias

FORMAT = "collabflow/dot-product-bias/v1"


@dataclass
class SavedModel:
    model: DotProductBias
    user_ids: np.ndarray  # raw id of each user index
    item_ids: np.ndarray  # raw id of each item index
    config: TrainConfig
    metadata: dict[str, Any]


def save_model(path: str | Path, model: DotProductBias, user_ids: np.ndarray, item_ids: np.ndarray,
               config: TrainConfig, metadata: dict[str, Any] | None = None) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a half-written model."""
    path = Path(path)
    if len(user_ids) != model.user_emb.num_embeddings or len(item_ids) != model.item_emb.num_embeddings:
        raise ValueError("id mappings must have one raw id per user and item row of the model")
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    tensors["user_ids"] = torch.tensor(np.asarray(user_ids, dtype=np.int64))
    tensors["item_ids"] = torch.tensor(np.asarray(item_ids, dtype=np.int64))
    meta = {
        "format": FORMAT,
        "config": config.model_dump_json(),
        "y_range": json.dumps(list(model.y_range)),
        "metadata": json.dumps(metadata or {}, default=str),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)
    return path


def load_model(path: str | Path, device: torch.device | str = "cpu") -> SavedModel:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; run `collabflow run` first")
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a collabflow model file (format {meta.get('format')!r}, expected {FORMAT!r})")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = TrainConfig.model_validate_json(meta["config"])
    user_ids = tensors.pop("user_ids").cpu().numpy()
    item_ids = tensors.pop("item_ids").cpu().numpy()
    model = DotProductBias(len(user_ids), len(item_ids), config.n_factors, tuple(json.loads(meta["y_range"])))
    model.load_state_dict(tensors)
    return SavedModel(model.to(device), user_ids, item_ids, config, json.loads(meta["metadata"]))
