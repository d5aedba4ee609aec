"""Model files (recmodel.persist): safetensors round trip, no code execution on load."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recmodel.config import TrainConfig
from recmodel.models import DotProductBias
from recmodel.persist import checksum, load_model, save_model


def test_round_trip_keeps_weights_ids_and_config(tmp_path):
    cfg = TrainConfig(n_factors=4, y_range=(0.0, 5.5))
    model = DotProductBias(3, 5, 4, cfg.y_range, generator=torch.Generator().manual_seed(1))
    path = save_model(
        tmp_path / "m.safetensors", model, np.array([10, 20, 30]), np.array([7, 8, 9, 11, 13]), cfg, {"valid_rmse": 0.9}
    )
    saved = load_model(path)
    assert saved.config == cfg and saved.metadata == {"valid_rmse": 0.9}
    assert saved.user_ids.tolist() == [10, 20, 30] and saved.item_ids.tolist() == [7, 8, 9, 11, 13]
    users, items = torch.tensor([0, 2]), torch.tensor([4, 1])
    assert torch.equal(saved.model(users, items), model(users, items))
    assert not (tmp_path / "m.safetensors.tmp").exists()


def test_the_same_model_gives_the_same_file_bytes(tmp_path):
    """safetensors orders its header's metadata as a hash map does, differently from save to save: the same
    model had different checksums from run to run (6 saves, 6 checksums, before the header was sorted)."""
    cfg = TrainConfig(n_factors=4)
    model = DotProductBias(3, 5, 4, cfg.y_range, generator=torch.Generator().manual_seed(1))
    paths = [
        save_model(tmp_path / f"m{k}.safetensors", model, np.arange(3), np.arange(5), cfg, {"valid_rmse": 0.9})
        for k in range(4)
    ]
    assert len({checksum(p) for p in paths}) == 1
    assert load_model(paths[0]).metadata == {"valid_rmse": 0.9}


def test_rejects_foreign_files(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a collabflow model"):
        load_model(path)
    with pytest.raises(FileNotFoundError, match="collabflow run"):
        load_model(tmp_path / "missing.safetensors")


def test_mapping_length_must_match(tmp_path):
    model = DotProductBias(3, 5, 2)
    with pytest.raises(ValueError, match="one raw id"):
        save_model(tmp_path / "m.safetensors", model, np.arange(2), np.arange(5), TrainConfig())
