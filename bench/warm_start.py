"""Warm start vs full retrain, on MovieLens 100K split by time (the honest way to ask "tomorrow").

Ratings sorted by timestamp: A = first 80%, B = next 10%, C = last 10%. Night 1 trains on A.
Night 2 has A + B: a full retrain (default epochs/iterations) against a warm start from night 1's
models (warm_epochs / warm_rank_iterations). Both are measured on C, ratings neither has seen.

    python bench/warm_start.py [path/to/u.data]
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
from recmodel.evaluation import ranking_report  # noqa: E402
from recmodel.io import read_ratings  # noqa: E402
from recmodel.metrics import rmse  # noqa: E402
from recmodel.rankers import fit_ranker  # noqa: E402
from recmodel.ratings import index_frames  # noqa: E402
from recmodel.train import fit_rater  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"
CPU = torch.device("cpu")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    (r,), _, _ = index_frames(read_ratings(path, rating_min=1, rating_max=5).ratings)
    order = np.lexsort((np.arange(len(r)), r.timestamps))
    a, b = int(0.8 * len(r)), int(0.9 * len(r))
    night1, night2, future = r.take(np.sort(order[:a])), r.take(np.sort(order[:b])), r.take(np.sort(order[b:]))
    cfg = RunConfig(rating_min=1, rating_max=5)
    rater1, _ = fit_rater(night1, cfg.train, CPU)
    ranker1 = fit_ranker(night1, cfg.rank, CPU, cfg.train.seed)
    rows = []
    for name, warm in [("full retrain", False), ("warm start", True)]:
        t0 = time.perf_counter()
        rater, _ = fit_rater(
            night2, cfg.train, CPU, init=rater1 if warm else None, epochs=cfg.warm_epochs if warm else None
        )
        t_rater = time.perf_counter() - t0
        t0 = time.perf_counter()
        ranker = fit_ranker(
            night2,
            cfg.rank,
            CPU,
            cfg.train.seed,
            init=ranker1 if warm else None,
            iterations=cfg.warm_rank_iterations if warm else None,
        )
        t_rank = time.perf_counter() - t0
        err = rmse(rater.predict(future.users, future.items), future.ratings)
        ndcg = ranking_report(ranker, night2, future, 10, 4.0)["ndcg_at_10"]
        rows.append((name, err, ndcg, t_rater, t_rank))
        print(
            f"{name:<13} future RMSE {err:.4f}  future NDCG@10 {ndcg:.4f}  "
            f"rating model {t_rater:.2f}s  ranker {t_rank:.2f}s"
        )
    (_, e0, n0, a0, b0), (_, e1, n1, a1, b1) = rows
    print(f"warm_vs_full: rmse_delta={e1 - e0:+.4f} ndcg_delta={n1 - n0:+.4f} time_ratio={(a1 + b1) / (a0 + b0):.2f}")


if __name__ == "__main__":
    main()
