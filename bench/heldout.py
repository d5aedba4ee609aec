"""Held-out accuracy on fastai's own splits of MovieLens 100K: every model, mean ± std over seeds 42-44.

The splits are rebuilt exactly as fastai's RandomSplitter makes them: ``torch.manual_seed(s);
perm = torch.randperm(100000)``; the ``u.data`` rows at positions ``perm[:20000]`` (file order, from 0) are
the test part, the rest trains. Each split goes through ``recmodel.evaluation.compare`` with the nightly
defaults, i.e. what ``collabflow evaluate --train --test`` reports: the baselines, each rating model and
ranker, ``tuned`` (settings chosen on a validation part of the training 80%, as a night would) and
``published`` (what the night would publish). RMSE is on every test rating; NDCG@10 counts a test rating
>= 4 as relevant, candidates are all items unrated in train.

    python bench/heldout.py [path/to/u.data] [--seeds 42 43 44] [--tune-budget 30]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel.config import RunConfig  # noqa: E402
from recmodel.evaluation import compare, tuned_report  # noqa: E402
from recmodel.io import read_ratings  # noqa: E402
from recmodel.ratings import Ratings, index_frames  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"


def fastai_split(n: int, seed: int, test_pct: float = 0.2) -> np.ndarray:
    """Row positions of fastai's RandomSplitter validation part (``valid_pct`` of ``n``, seed ``seed``)."""
    torch.manual_seed(seed)
    perm = torch.randperm(n).numpy()
    return perm[: int(test_pct * n)]


def split_parts(frame: pl.DataFrame, seed: int) -> tuple[Ratings, Ratings]:
    """``(train, test)`` of fastai's split ``seed``, indexed as a night indexes them."""
    is_test = np.zeros(frame.height, dtype=bool)
    is_test[fastai_split(frame.height, seed)] = True
    (train, test), _, _ = index_frames(frame.filter(~is_test), frame.filter(is_test), feedback="explicit")
    return train, test


def seeded(cfg: RunConfig, seed: int) -> RunConfig:
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"seed": seed})})


def one_split(frame: pl.DataFrame, seed: int, cfg: RunConfig) -> dict[str, dict]:
    return compare(*split_parts(frame, seed), seeded(cfg, seed), torch.device("cpu"))


def published(frame: pl.DataFrame, seed: int, cfg: RunConfig) -> dict:
    """Only what a night with ``cfg`` would publish from the split's training part, measured on its test part."""
    train, test = split_parts(frame, seed)
    cfg = seeded(cfg, seed)
    return (
        tuned_report(train, test, cfg, torch.device("cpu"))
        if cfg.tune_budget > 0
        else compare(train, test, cfg, torch.device("cpu"))["published"]
    )


def load_u_data(path: Path) -> pl.DataFrame:
    """``u.data`` in file order (the split positions index its rows), after checking it is the clean 100,000."""
    frame = pl.read_csv(
        path, separator="\t", has_header=False, new_columns=["user_id", "item_id", "rating", "timestamp"]
    ).with_columns(pl.col("rating").cast(pl.Float32))
    checked = read_ratings(path, rating_min=1, rating_max=5)
    if checked.quarantine.height or checked.ratings.height != frame.height:
        sys.exit(f"{path} is not a clean u.data file ({checked.quarantine.height} rows quarantined)")
    if frame.height != 100_000:
        sys.exit(f"expected the 100,000 rows of MovieLens 100K, found {frame.height:,}")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--tune-budget", type=float, default=RunConfig().tune_budget)
    args = parser.parse_args()
    path = Path(args.path)
    if not path.exists():
        sys.exit(f"MovieLens 100K not found at {path}; pass the path to u.data")
    frame = load_u_data(path)
    cfg = RunConfig(rating_min=1, rating_max=5, tune_budget=args.tune_budget)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, seeds {args.seeds}")
    rows: list[dict] = []
    for seed in args.seeds:
        t0 = time.perf_counter()
        out = one_split(frame, seed, cfg)
        took = time.perf_counter() - t0
        for model, metrics in out.items():
            rows.append({"seed": seed, "model": model, **{k: v for k, v in metrics.items() if isinstance(v, float)}})
        pub = out["published"]
        print(
            f"seed {seed}: published rmse={pub.get('rmse', float('nan')):.4f} "
            f"ndcg@10={pub['ndcg_at_10']:.4f} ({pub.get('rating_model')} + {pub.get('ranker')}; {took:.0f} s)"
        )
    table = pl.DataFrame(rows)
    summary = (
        table.group_by("model", maintain_order=True)
        .agg(
            pl.col("rmse").mean().alias("rmse_mean"),
            pl.col("rmse").std().alias("rmse_std"),
            pl.col("ndcg_at_10").mean().alias("ndcg_mean"),
            pl.col("ndcg_at_10").std().alias("ndcg_std"),
        )
        .sort("model")
    )
    print(f"\n{'model':<12} {'RMSE mean ± std':>18} {'NDCG@10 mean ± std':>20}")
    for r in summary.iter_rows(named=True):
        rmse = "-" if r["rmse_mean"] is None else f"{r['rmse_mean']:.4f} ± {r['rmse_std'] or 0:.4f}"
        ndcg = "-" if r["ndcg_mean"] is None else f"{r['ndcg_mean']:.4f} ± {r['ndcg_std'] or 0:.4f}"
        print(f"{r['model']:<12} {rmse:>18} {ndcg:>20}")
    pub = summary.filter(pl.col("model") == "published").row(0, named=True)
    book = summary.filter(pl.col("model") == "dot").row(0, named=True)
    print(f"\npublished_rmse={pub['rmse_mean']:.4f} book_dot_rmse={book['rmse_mean']:.4f} (bar 0.895)")
    print(f"published_ndcg10={pub['ndcg_mean']:.4f} (bar 0.39)")


if __name__ == "__main__":
    main()
