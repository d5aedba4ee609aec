"""Every model next to its baselines on MovieLens 100K: random 80/20 splits, seeds 42, 43, 44.

Relevant = held-out rating >= 4; candidates = every item the user did not rate in train (see
recmodel/metrics.py). Baselines (global mean, bias-only, popularity) are computed in the same run.

    python bench/ranking.py [path/to/u.data]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel.config import RunConfig  # noqa: E402
from recmodel.evaluation import compare  # noqa: E402
from recmodel.io import read_ratings  # noqa: E402
from recmodel.ratings import index_frames  # noqa: E402
from recmodel.splits import split_random  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"
COLUMNS = (
    "rmse",
    "mae",
    "ndcg_at_10",
    "precision_at_10",
    "recall_at_10",
    "map_at_10",
    "hit_rate_at_10",
    "coverage_at_10",
)


def run(path: Path, seeds=(42, 43, 44), cfg: RunConfig | None = None) -> dict[str, dict[str, float]]:
    cfg = cfg or RunConfig(rating_min=1, rating_max=5)
    (ratings,), _, _ = index_frames(read_ratings(path, rating_min=1, rating_max=5).ratings)
    per_seed = []
    for seed in seeds:
        train, test = split_random(ratings, 0.2, seed)
        seeded = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed, "device": "cpu"})})
        per_seed.append(compare(train, test, seeded, torch.device("cpu")))
    means: dict[str, dict[str, float]] = {}
    for name in per_seed[0]:
        means[name] = {c: float(np.mean([s[name][c] for s in per_seed])) for c in COLUMNS if c in per_seed[0][name]}
    return means


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not path.exists():
        sys.exit(f"MovieLens 100K not found at {path}; pass the path to u.data")
    t0 = time.perf_counter()
    means = run(path)
    print(f"MovieLens 100K, random 80/20, mean of seeds 42-44 ({time.perf_counter() - t0:.0f}s)")
    print(f"{'model':<12}" + "".join(f"{c:>16}" for c in COLUMNS))
    for name, row in means.items():
        print(f"{name:<12}" + "".join(f"{row[c]:>16.4f}" if c in row else f"{'':>16}" for c in COLUMNS))
    pub, pop = means["published"], means["popularity"]
    print(
        f"published_ndcg_at_10={pub['ndcg_at_10']:.4f} popularity_ndcg_at_10={pop['ndcg_at_10']:.4f} "
        f"ratio_to_popularity={pub['ndcg_at_10'] / pop['ndcg_at_10']:.2f} published_rmse={pub['rmse']:.4f}"
    )


if __name__ == "__main__":
    main()
