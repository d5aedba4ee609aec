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

from recmodel.coldstart import UserFeatures, fit_metadata_regression, popularity_order, representative_user  # noqa: E402
from recmodel.config import RunConfig  # noqa: E402
from recmodel.data import read_ratings  # noqa: E402
from recmodel.metrics import ranking_metrics, rmse  # noqa: E402
from recmodel.models import sigmoid_range  # noqa: E402
from recmodel.rankers import fit_ranker  # noqa: E402
from recmodel.ratings import index_frames  # noqa: E402
from recmodel.train import fit_rater  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k"
CPU = torch.device("cpu")


def read_users(path: Path) -> pl.DataFrame:
    frame = pl.read_csv(path, separator="|", has_header=False, new_columns=["user_id", "age", "gender", "occupation", "zip"])
    return frame.with_columns(pl.col("zip").str.slice(0, 1).alias("zip"))  # region: first digit


def evaluate(folder: Path, seed: int) -> dict[str, dict[str, float]]:
    (r,), user_ids, item_ids = index_frames(read_ratings(folder / "u.data", rating_min=1, rating_max=5).ratings)
    users = read_users(folder / "u.user")
    rng = np.random.default_rng(seed)
    new = rng.permutation(r.n_users)[: r.n_users // 5]
    is_new = np.isin(r.users, new)
    train, test = r.take(np.flatnonzero(~is_new)), r.take(np.flatnonzero(is_new))
    cfg = RunConfig(rating_min=1, rating_max=5)
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})
    rater, _ = fit_rater(train, cfg.train, CPU)
    ranker = fit_ranker(train, cfg.rank, CPU, seed)
    known = np.unique(train.users)
    counts = np.bincount(train.items, minlength=r.n_items)
    emb, ubias = rater.user_emb.weight.detach(), rater.user_bias.weight.detach().squeeze(1)
    iemb, ibias = rater.item_emb.weight.detach(), rater.item_bias.weight.detach().squeeze(1)

    def rating(user_vec: torch.Tensor, user_b: torch.Tensor, rows: np.ndarray, items: np.ndarray) -> np.ndarray:
        dot = (user_vec[rows] * iemb[items]).sum(1) + user_b[rows] + ibias[items]
        return sigmoid_range(dot, *rater.y_range).numpy()

    row_of = {u: k for k, u in enumerate(new)}
    rows = np.array([row_of[u] for u in test.users])
    liked = test.ratings >= 4
    out = {}
    # popularity: most interacted items; ratings from the item bias (and the mean user bias)
    top = np.tile(popularity_order(counts)[:10], (new.size, 1))
    zero = torch.zeros(new.size, emb.shape[1])
    pred = rating(zero, torch.full((new.size,), float(ubias[known].mean())), rows, test.items)
    out["popularity"] = {"rmse": rmse(pred, test.ratings),
                         **ranking_metrics(top, rows[liked], test.items[liked], 10, r.n_items)}
    # average taste: one representative real user
    rep = representative_user(ranker.user_factors, known)
    scores = ranker.user_factors[rep] @ ranker.item_factors.T
    top = np.tile(torch.sort(scores, descending=True, stable=True).indices[:10].numpy(), (new.size, 1))
    pred = rating(emb[[rep] * new.size], ubias[[rep] * new.size], rows, test.items)
    out["average_taste"] = {"rmse": rmse(pred, test.ratings),
                            **ranking_metrics(top, rows[liked], test.items[liked], 10, r.n_items)}
    # metadata: ridge regression from sign-up answers to the user's factors
    meta = users.with_columns(pl.col("user_id").cast(pl.Int64))
    by_index = meta.join(pl.DataFrame({"user_id": user_ids, "idx": np.arange(len(user_ids))}), on="user_id").sort("idx")
    encoder = UserFeatures.fit(by_index.filter(pl.col("idx").is_in(known)).drop("idx"))
    feats = encoder.transform(by_index.drop("idx"))
    targets = torch.cat([ranker.user_factors, emb, ubias[:, None]], dim=1).double().numpy()
    W = fit_metadata_regression(feats[known], targets[known])
    guess = torch.as_tensor(feats[new] @ W, dtype=torch.float32)
    k_rank = ranker.user_factors.shape[1]
    scores = guess[:, :k_rank] @ ranker.item_factors.T
    top = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :10].numpy()
    pred = rating(guess[:, k_rank:k_rank + emb.shape[1]], guess[:, -1], rows, test.items)
    out["metadata"] = {"rmse": rmse(pred, test.ratings),
                       **ranking_metrics(top, rows[liked], test.items[liked], 10, r.n_items)}
    return out


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    if not (folder / "u.user").exists():
        sys.exit(f"MovieLens 100K (u.data, u.user) not found in {folder}")
    runs = [evaluate(folder, seed) for seed in (42, 43, 44)]
    print("MovieLens 100K, 20% of users held out entirely, mean of seeds 42-44")
    print(f"{'policy':<15}{'rmse':>10}{'ndcg_at_10':>12}{'precision_at_10':>17}{'coverage_at_10':>16}")
    for name in runs[0]:
        m = {k: np.mean([run[name][k] for run in runs]) for k in ("rmse", "ndcg_at_10", "precision_at_10", "coverage_at_10")}
        print(f"{name:<15}{m['rmse']:>10.4f}{m['ndcg_at_10']:>12.4f}{m['precision_at_10']:>17.4f}{m['coverage_at_10']:>16.4f}")


if __name__ == "__main__":
    main()
