"""Tuning on data that is not MovieLens 100K: what the search tries, what it picks, what that buys.

Datasets: synthetic explicit and implicit data at a chosen shape (default ML-1M: 6,040 users x 3,706
items x 1M interactions) and, when present, real MovieLens 100K. For each split seed (default 42, 43, 44)
the data is split 80/20 into train and test; the night's path is then followed on the train part only:
a validation part is carved out of it, the search runs there (``tune_budget`` seconds by plan), and the
chosen models are refitted on the whole train part and measured on the test part, next to the configured
defaults (no tuning) fitted the same way. The test part never influences a choice.

Printed per dataset: every trial of the first seed (model, changed settings, validation score, predicted
and measured seconds), the chosen settings per seed, and test NDCG@10 / recall@20 / RMSE as mean ± std.

    python bench/any_data.py [--shape ml-1m] [--budget 30] [--seeds 42 43 44] [--ml100k path/to/u.data]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel import synth  # noqa: E402
from recmodel.config import RunConfig  # noqa: E402
from recmodel.evaluation import ranking_report, rating_report, relevance  # noqa: E402
from recmodel.io import read_ratings  # noqa: E402
from recmodel.rankers import fit_ranker  # noqa: E402
from recmodel.ratings import Ratings, index_frames  # noqa: E402
from recmodel.splits import split_random, validation_split  # noqa: E402
from recmodel.train import fit_rater  # noqa: E402
from recmodel.tuning import tune  # noqa: E402

CPU = torch.device("cpu")
DEFAULT_ML100K = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"


def measure(train: Ratings, test: Ratings, cfg: RunConfig) -> dict[str, float]:
    """Fit ``cfg``'s models on all of ``train``; test NDCG@10, recall@20 and (explicit data) RMSE."""
    threshold = relevance(train, cfg)
    rater = None
    out: dict[str, float] = {}
    if not train.implicit:
        rater, _ = fit_rater(train, cfg.train, CPU)
        out["rmse"] = rating_report(rater.predict(test.users, test.items), test)["rmse"]
    ranker = fit_ranker(train, cfg.rank, CPU, cfg.train.seed, rater)
    out["ndcg@10"] = ranking_report(ranker, train, test, 10, threshold)["ndcg_at_10"]
    out["recall@20"] = ranking_report(ranker, train, test, 20, threshold)["recall_at_20"]
    return out


def summary(rows: list[dict[str, float]]) -> str:
    keys = [k for k in ("ndcg@10", "recall@20", "rmse") if k in rows[0]]
    return ", ".join(f"{k} {np.mean([r[k] for r in rows]):.4f} ± {np.std([r[k] for r in rows]):.4f}" for k in keys)


def run(name: str, everything: Ratings, seeds: list[int], budget: float) -> None:
    print(f"\n== {name}: {everything.n_users} users x {everything.n_items} items, {len(everything)} {everything.noun}")
    default_rows, tuned_rows = [], []
    for seed in seeds:
        base = RunConfig.from_flat(seed=seed, tune_budget=budget)
        train, test = split_random(everything, 0.2, seed)
        fit_part, valid = validation_split(train, base.train.valid_pct, seed)
        t = time.perf_counter()
        tuned = tune(fit_part, valid, base, CPU, len(train))
        seconds = time.perf_counter() - t
        if seed == seeds[0]:
            print(f"{'model':<8} {'validation':>10} {'predicted s':>12} {'measured s':>11}  changed settings")
            for trial in tuned.record["trials"]:
                print(
                    f"{trial['model']:<8} {trial['score']:>10.4f} {trial['predicted_s']:>12.2f} "
                    f"{trial['seconds']:>11.2f}  {trial['params'] or '(configured)'}"
                )
        print(
            f"seed {seed}: tuning {seconds:.1f}s ({len(tuned.record['trials'])} trials, "
            f"{tuned.record['planned_s']:.1f}s planned of {budget:.0f}); chosen {tuned.record['changed'] or 'defaults'}"
        )
        default_rows.append(measure(train, test, base))
        tuned_rows.append(measure(train, test, tuned.cfg))
    print(f"test, defaults: {summary(default_rows)}")
    print(f"test, tuned:    {summary(tuned_rows)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="ml-1m")
    p.add_argument("--budget", type=float, default=30.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--ml100k", type=Path, default=DEFAULT_ML100K)
    p.add_argument("--only", choices=["explicit", "implicit", "ml100k"], nargs="*")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    only = set(args.only or ["explicit", "implicit", "ml100k"])
    torch.set_num_threads(max(1, torch.get_num_threads()))
    if "explicit" in only:
        (data,), _, _ = index_frames(synth.generate(args.shape, seed=1))
        run(f"synthetic explicit ({args.shape})", data, args.seeds, args.budget)
    if "implicit" in only:
        frame = synth.generate_implicit(args.shape, seed=1).rename({"weight": "rating"})
        (data,), _, _ = index_frames(frame, feedback="implicit")
        run(f"synthetic implicit ({args.shape}, play counts)", data, args.seeds, args.budget)
    if "ml100k" in only:
        if not args.ml100k.exists():
            print(f"\n== MovieLens 100K: not found at {args.ml100k}, skipped")
            return
        parsed = read_ratings(str(args.ml100k))
        (data,), _, _ = index_frames(parsed.ratings)
        run("MovieLens 100K", data, args.seeds, args.budget)


if __name__ == "__main__":
    main()
