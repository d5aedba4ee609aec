"""Choose the ranking and neural-model defaults honestly: on a validation part carved out of each
training split, never on the test part that bench/ranking.py reports.

For each split seed (42, 43, 44): the random 80% train part is split again 80/20 (seed + 1000);
every candidate trains on the inner 80% and is scored on the inner 20%; the candidate with the best
mean validation score across seeds wins. Prints the winners; the test part is never touched.

    python bench/tune_ranking.py [path/to/u.data]     (about 10 minutes on 2 cores)
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel.config import RankConfig, TrainConfig  # noqa: E402
from recmodel.evaluation import ranking_report  # noqa: E402
from recmodel.io import read_ratings  # noqa: E402
from recmodel.metrics import rmse  # noqa: E402
from recmodel.rankers import fit_ranker  # noqa: E402
from recmodel.ratings import index_frames  # noqa: E402
from recmodel.splits import split_random  # noqa: E402
from recmodel.train import fit_rater  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"
CPU = torch.device("cpu")


def inner_splits(path: Path):
    (ratings,), _, _ = index_frames(read_ratings(path, rating_min=1, rating_max=5).ratings)
    for seed in (42, 43, 44):
        train, _test = split_random(ratings, 0.2, seed)  # the test part is set aside, unused
        yield seed, *split_random(train, 0.2, seed + 1000)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    splits = list(inner_splits(path))
    grids = {
        "ease": [
            dict(ranker="ease", ease_lambda=lam, rank_low_rating_weight=w)
            for lam, w in itertools.product((100, 200, 400, 800), (0.25, 0.5, 1.0))
        ],
        "ials": [
            dict(ranker="ials", rank_factors=f, rank_reg=reg, rank_unobserved_weight=a0, rank_low_rating_weight=w)
            for f, reg, a0, w in itertools.product((64, 128), (0.00625, 0.0125, 0.025), (0.05, 0.1, 0.2), (0.5, 1.0))
        ],
    }
    for family, grid in grids.items():
        scored = []
        for params in grid:
            rank_cfg = RankConfig(**params)
            ndcg = [
                ranking_report(fit_ranker(tr, rank_cfg, CPU, seed), tr, va, 10, 4.0)["ndcg_at_10"]
                for seed, tr, va in splits
            ]
            scored.append((float(np.mean(ndcg)), params))
            print(f"{family} {params} valid_ndcg_at_10={np.mean(ndcg):.4f}", flush=True)
        best = max(scored, key=lambda x: x[0])
        print(f"BEST {family}: {best[1]} valid_ndcg_at_10={best[0]:.4f}", flush=True)
    neural: list[tuple[float, tuple[int, float, float]]] = []
    for epochs, lr, wd in itertools.product((5, 10), (5e-3, 1e-2), (0.1, 0.5)):
        train_cfg = TrainConfig(rating_model="neural", nn_epochs=epochs, nn_lr_max=lr, nn_wd=wd, device="cpu")
        errs = []
        for seed, tr, va in splits:
            model, _ = fit_rater(tr, train_cfg.model_copy(update={"seed": seed}), CPU)
            errs.append(rmse(model.predict(va.users, va.items), va.ratings))
        neural.append((float(np.mean(errs)), (epochs, lr, wd)))
        print(f"neural epochs={epochs} lr={lr} wd={wd} valid_rmse={np.mean(errs):.4f}", flush=True)
    err, setting = min(neural, key=lambda x: x[0])
    print(f"BEST neural: epochs, lr, wd = {setting} valid_rmse={err:.4f}", flush=True)


if __name__ == "__main__":
    main()
