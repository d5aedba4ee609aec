"""Cold-start policies on MovieLens 100K, holding out whole users (their ratings are the test set).

For split seeds 42, 43, 44: 20% of users are new (no ratings in training). Every policy produces a
top-10 over all items and a predicted rating for each of the new users' ratings; NDCG@10 counts
ratings >= 4 as relevant. Features for the metadata policy: age, gender, occupation, zip-code region
from u.user.

    python bench/coldstart.py [path/to/ml-100k folder]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel.coldstart import POLICIES, cold_start_lists, guess_users, guessed_scores  # noqa: E402
from recmodel.config import RunConfig  # noqa: E402
from recmodel.io import read_ratings  # noqa: E402
from recmodel.metrics import ranking_metrics, rmse  # noqa: E402
from recmodel.rankers import fit_ranker  # noqa: E402
from recmodel.ratings import index_frames  # noqa: E402
from recmodel.train import fit_rater  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k"
CPU = torch.device("cpu")


def read_users(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(
        path, separator="|", has_header=False, new_columns=["user_id", "age", "gender", "occupation", "zip"]
    )
    return frame.with_columns(pl.col("zip").str.slice(0, 1).alias("zip"))  # region: first digit


def evaluate(folder: Path, seed: int) -> dict[str, dict[str, float]]:
    """Every policy through the library's own cold-start code (recmodel.coldstart) on one split."""
    (r,), user_ids, item_ids = index_frames(read_ratings(folder / "u.data", rating_min=1, rating_max=5).ratings)
    meta = read_users(folder / "u.user").with_columns(pl.col("user_id").cast(pl.Int64))
    rng = np.random.default_rng(seed)
    new = rng.permutation(r.n_users)[: r.n_users // 5]
    is_new = np.isin(r.users, new)
    train, test = r.take(np.flatnonzero(~is_new)), r.take(np.flatnonzero(is_new))
    cfg = RunConfig(rating_min=1, rating_max=5)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})
    rater, _ = fit_rater(train, cfg.train, CPU)
    ranker = fit_ranker(train, cfg.rank, CPU, seed)
    known = np.unique(train.users)
    row_of = np.full(r.n_users, -1)
    row_of[new] = np.arange(new.size)
    rows = row_of[test.users]
    liked = test.ratings >= 4
    cold = pl.DataFrame({"user_id": user_ids[new]}).join(meta, on="user_id", how="left", maintain_order="left")
    out = {}
    for policy in POLICIES:
        lists, used = cold_start_lists(policy, meta, rater, ranker, train, user_ids, item_ids, 10)
        assert used == policy, (used, policy)
        top = np.full((new.size, 10), -1)
        user_rows = row_of[np.searchsorted(user_ids, lists["user_id"].to_numpy())]
        top[user_rows, lists["rank"].to_numpy() - 1] = np.searchsorted(item_ids, lists["item_id"].to_numpy())
        guess = guess_users(policy, meta, cold, rater, ranker, user_ids, known)
        pred = guessed_scores(guess, rater, ranker, rows, test.items, known, train.item_counts())
        out[policy] = {
            "rmse": rmse(pred, test.ratings),
            **ranking_metrics(top, rows[liked], test.items[liked], 10, r.n_items),
        }
    return out


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not (folder / "u.user").exists():
        sys.exit(f"MovieLens 100K (u.data, u.user) not found in {folder}")
    runs = [evaluate(folder, seed) for seed in (42, 43, 44)]
    print("MovieLens 100K, 20% of users held out entirely, mean of seeds 42-44")
    print(f"{'policy':<15}{'rmse':>10}{'ndcg_at_10':>12}{'precision_at_10':>17}{'coverage_at_10':>16}")
    for name in runs[0]:
        m = {
            k: np.mean([run[name][k] for run in runs])
            for k in ("rmse", "ndcg_at_10", "precision_at_10", "coverage_at_10")
        }
        print(
            f"{name:<15}{m['rmse']:>10.4f}{m['ndcg_at_10']:>12.4f}{m['precision_at_10']:>17.4f}"
            f"{m['coverage_at_10']:>16.4f}"
        )


if __name__ == "__main__":
    main()
