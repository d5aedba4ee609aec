"""Model files: safetensors weights + raw-id mappings + JSON config. Loading never executes code."""

from __future__ import annotations

import hashlib
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
from .models import RATERS, RatingModule
from .rankers import Ranker, ranker_from_tensors

FORMAT = "collabflow/rating-model/v1"
RANKER_FORMAT = "collabflow/ranker/v1"


@dataclass
class SavedModel:
    model: RatingModule
    user_ids: np.ndarray | None  # raw id of each user index (integer ids; string ids live in the run's snapshot)
    item_ids: np.ndarray | None
    config: TrainConfig
    metadata: dict[str, Any]


def checksum(path: str | Path) -> str:
    """The sha256 of a model file: the run record keeps it, and warm start checks it before loading."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> Path:
    """Whole or not at all (temp file + rename), and on disk before the publish that refers to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    _sort_header(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def _sort_header(path: Path) -> None:
    """safetensors writes its header's metadata in hash-map order, which changes from process to process,
    so the same model gave files with different checksums. Rewrite the header (JSON after its 8-byte
    length) with its keys sorted: the same bytes, in the same length, for the same model."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        raw = f.read(n)
        text = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) > n:  # never lengthen the header (the tensor offsets follow it): keep safetensors' own
            return
        f.seek(8)
        f.write(text.ljust(n))


def _read(path: Path, expected: str, device: torch.device | str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; run `collabflow run` first")
    with safe_open(str(path), framework="pt", device=str(device)) as f:
        meta = f.metadata() or {}
        if meta.get("format") != expected:
            raise ValueError(
                f"{path} is not a collabflow model file (format {meta.get('format')!r}, expected {expected!r})"
            )
        return {k: f.get_tensor(k) for k in f.keys()}, meta


def save_model(
    path: str | Path,
    model: RatingModule,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    config: TrainConfig,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a half-written model."""
    if len(user_ids) != model.n_users or len(item_ids) != model.n_items:
        raise ValueError("id mappings must have one raw id per user and item row of the model")
    tensors = dict(model.state_dict())
    for name, ids in (("user_ids", np.asarray(user_ids)), ("item_ids", np.asarray(item_ids))):
        if ids.dtype.kind in "iu":  # string ids are not tensors: the run's snapshot maps indices to them
            tensors[name] = torch.tensor(ids.astype(np.int64))
    meta = {
        "format": FORMAT,
        "kind": model.kind,
        "config": config.model_dump_json(),
        "y_range": json.dumps(list(model.y_range)),
        "n_users": str(model.n_users),
        "n_items": str(model.n_items),
        "metadata": json.dumps(metadata or {}, default=str),
    }
    return _write(Path(path), tensors, meta)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> SavedModel:
    tensors, meta = _read(Path(path), FORMAT, device)
    kind = meta.get("kind", "dot")
    if kind not in RATERS:
        raise ValueError(f"{path}: unknown rating model kind {kind!r} (known: {', '.join(RATERS)})")
    config = TrainConfig.model_validate_json(meta["config"])
    user_ids = tensors.pop("user_ids").cpu().numpy() if "user_ids" in tensors else None
    item_ids = tensors.pop("item_ids").cpu().numpy() if "item_ids" in tensors else None
    n_users, n_items = (
        int(meta.get("n_users", len(user_ids) if user_ids is not None else 0)),
        int(meta.get("n_items", len(item_ids) if item_ids is not None else 0)),
    )
    model = RATERS[kind].build(n_users, n_items, config)
    model.load_state_dict(tensors)
    return SavedModel(model.to(device), user_ids, item_ids, config, json.loads(meta["metadata"]))


def save_ranker(path: str | Path, ranker: Ranker, metadata: dict[str, Any] | None = None) -> Path:
    """The ranking model's tensors, tagged with its registry kind (see ``recmodel.rankers.RANKER_KINDS``)."""
    meta = {"format": RANKER_FORMAT, "kind": ranker.kind, "metadata": json.dumps(metadata or {}, default=str)}
    return _write(Path(path), ranker.tensors(), meta)


def load_ranker(path: str | Path, device: torch.device | str = "cpu") -> Ranker:
    tensors, meta = _read(Path(path), RANKER_FORMAT, device)
    return ranker_from_tensors(meta["kind"], tensors)
