"""Training throughput of the dot model at ML-25M shape, against a fastai-style loop in the same run (issue 4).

The product: ``recmodel.train.fit`` with the default settings (hand-written gradients, fused dense
AdamW, one-cycle; batches grow so an epoch has at most ``max_steps_per_epoch`` steps). The baseline:
the same model trained the way fastai's collab learner does it (autograd ``loss.backward()`` and an
AdamW step per batch of 64), timed on a slice of the ratings (at 17k ratings/s a full epoch would take
20 minutes). Also printed: validation RMSE next to the bias-only baseline, peak RSS.

    python bench/training.py [--shape ml-25m] [--epochs 5] [--baseline-ratings 200000]
Ends with a line ``ratings_per_second=<x>``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel import synth  # noqa: E402
from recmodel.baselines import fit_bias_only  # noqa: E402
from recmodel.config import TrainConfig  # noqa: E402
from recmodel.metrics import rmse  # noqa: E402
from recmodel.models import DotProductBias  # noqa: E402
from recmodel.splits import random_split  # noqa: E402
from recmodel.train import Interactions, fit  # noqa: E402


def fastai_style(model: DotProductBias, data: Interactions, batch_size: int = 64) -> float:
    """Ratings/s of autograd + AdamW at fastai's default batch, one pass over ``data``."""
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.1)
    t0 = time.perf_counter()
    for s in range(0, len(data), batch_size):
        loss = nn.functional.mse_loss(
            model(data.users[s : s + batch_size], data.items[s : s + batch_size]), data.ratings[s : s + batch_size]
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return len(data) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="ml-25m", choices=list(synth.SHAPES))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--baseline-ratings", type=int, default=200_000)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="cuda: model and ratings on the GPU")
    ap.add_argument("--max-steps-per-epoch", type=int, default=TrainConfig().max_steps_per_epoch)
    args = ap.parse_args()
    t0 = time.perf_counter()
    frame = synth.generate(args.shape, seed=0)
    users = np.unique(frame["user_id"].to_numpy(), return_inverse=True)[1]
    items = np.unique(frame["item_id"].to_numpy(), return_inverse=True)[1]
    ratings = frame["rating"].to_numpy().astype(np.float32)
    del frame
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    print(
        f"{args.shape}: {ratings.size:,} ratings, {n_users:,} users x {n_items:,} items (generated in "
        f"{time.perf_counter() - t0:.1f}s); torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    cfg = TrainConfig(epochs=args.epochs, device=args.device, max_steps_per_epoch=args.max_steps_per_epoch)
    device = torch.device(args.device)
    tr, va = random_split(ratings.size, cfg.valid_pct, cfg.seed)
    data = Interactions.from_numpy(users, items, ratings, device)  # resident on the device for the whole fit
    train, valid = data.subset(torch.as_tensor(tr, device=device)), data.subset(torch.as_tensor(va, device=device))

    model = DotProductBias(n_users, n_items, cfg.n_factors, cfg.y_range, torch.Generator().manual_seed(cfg.seed))
    baseline = fastai_style(
        model.to(device), train.subset(torch.arange(min(args.baseline_ratings, len(train)), device=device))
    )
    print(f"baseline (autograd + AdamW, batch 64, fastai's loop): {baseline:,.0f} ratings/s")

    model = DotProductBias(n_users, n_items, cfg.n_factors, cfg.y_range, torch.Generator().manual_seed(cfg.seed))
    result = fit(model.to(device), train, valid, cfg)
    per_epoch = [len(train) / h.seconds for h in result.history]
    for h, rate in zip(result.history, per_epoch):
        print(f"epoch {h.epoch}: {h.seconds:.1f}s, {rate:,.0f} ratings/s, valid RMSE {h.valid_rmse:.4f}")
    bias = fit_bias_only(
        users[tr], items[tr], ratings[tr].astype(np.float64), n_users, n_items, rating_range=(0.5, 5.0)
    )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rate = len(train) * args.epochs / result.seconds
    bias_rmse = rmse(bias.predict(users[va], items[va]), ratings[va])
    print(
        f"dot model: valid RMSE {result.final.valid_rmse:.4f} (bias-only {bias_rmse:.4f}); "
        f"{result.seconds:.1f}s for {args.epochs} epochs incl. validation; peak RSS {peak_gb:.1f} GB"
    )
    print(f"speedup_vs_fastai_loop={rate / baseline:.1f}")
    print(f"ratings_per_second={rate:,.0f}")


if __name__ == "__main__":
    main()
