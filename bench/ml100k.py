"""MovieLens 100K, fastbook chapter 8 settings: RMSE and training time, against fastai's batch size.

Protocol: random 20% validation (seeds 42, 43, 44), 50 factors, y-range (0, 5.5), 5 epochs,
one-cycle max lr 5e-3, wd 0.1. Our default batch is 512; the baseline trains the same model with
fastai's default batch of 64 in the same process, so the ratio is measured on this machine, now.

    python bench/ml100k.py [path/to/u.data]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel.config import TrainConfig  # noqa: E402
from recmodel.io import read_ratings  # noqa: E402
from recmodel.models import DotProductBias  # noqa: E402
from recmodel.splits import random_split  # noqa: E402
from recmodel.train import Interactions, fit  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"


def fastbook_rmse(path: Path, seed: int, batch_size: int = 512) -> tuple[float, float]:
    """(validation RMSE, training seconds) for one split seed."""
    frame = read_ratings(path, rating_min=1, rating_max=5).ratings
    users, user_idx = np.unique(frame["user_id"].to_numpy(), return_inverse=True)
    items, item_idx = np.unique(frame["item_id"].to_numpy(), return_inverse=True)
    cfg = TrainConfig(
        n_factors=50,
        epochs=5,
        lr_max=5e-3,
        wd=0.1,
        y_range=(0.0, 5.5),
        valid_pct=0.2,
        seed=seed,
        batch_size=batch_size,
        device="cpu",
    )
    data = Interactions.from_numpy(
        user_idx, item_idx, frame["rating"].to_numpy().astype(np.float32), torch.device("cpu")
    )
    tr, va = random_split(len(frame), cfg.valid_pct, seed)
    model = DotProductBias(
        len(users), len(items), cfg.n_factors, cfg.y_range, generator=torch.Generator().manual_seed(seed)
    )
    result = fit(model, data.subset(torch.as_tensor(tr)), data.subset(torch.as_tensor(va)), cfg)
    assert result.final.valid_rmse is not None  # a validation part was given
    return result.final.valid_rmse, result.seconds


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.exists():
        sys.exit(f"MovieLens 100K not found at {path}; pass the path to u.data")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    for seed in (42, 43, 44):
        ours = fastbook_rmse(path, seed)
        base = fastbook_rmse(path, seed, batch_size=64)
        rows.append((seed, *ours, *base))
        print(
            f"seed {seed}: ours (batch 512) rmse={ours[0]:.4f} train={ours[1]:.2f}s | "
            f"baseline (batch 64) rmse={base[0]:.4f} train={base[1]:.2f}s"
        )
    arr = np.array(rows)
    print(
        f"mean: ours rmse={arr[:, 1].mean():.4f} train={arr[:, 2].mean():.2f}s | "
        f"baseline rmse={arr[:, 3].mean():.4f} train={arr[:, 4].mean():.2f}s"
    )
    print(f"speedup_vs_batch64={arr[:, 4].mean() / arr[:, 2].mean():.2f}")
    print(f"rmse={arr[:, 1].mean():.4f} train_seconds={arr[:, 2].mean():.2f}")


if __name__ == "__main__":
    main()
