"""Score every unseen (user, item) pair of a run and write the top-N per user as Parquet (raw ids)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from prefect import task

from recmodel.device import resolve_device
from recmodel.persist import load_model
from recmodel.score import csr_from_pairs, top_n_unseen

log = logging.getLogger(__name__)


def score_snapshot(model_path: str | Path, snapshot: dict, top_n: int, out_path: str | Path,
                   memory_mb: int = 512, device: str = "auto") -> dict:
    dev = resolve_device(device)
    saved = load_model(model_path, dev)
    model = saved.model.eval()
    seen = pl.read_parquet(snapshot["interactions_path"], columns=["user_idx", "item_idx"])
    seen_users = seen["user_idx"].to_numpy()
    indptr, indices = csr_from_pairs(seen_users, seen["item_idx"].to_numpy(), len(saved.user_ids))
    users = np.unique(seen_users)  # every user with at least one rating
    user_f, item_f = model.ranking_factors()

    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 5 or done == total:
            last[0] = time.perf_counter()
            log.info("scored %d/%d users (%.0f%%)", done, total, 100 * done / total)

    t0 = time.perf_counter()
    top = top_n_unseen(user_f, item_f, indptr, indices, top_n, users=users, memory_mb=memory_mb, progress=progress)
    keep = top.items >= 0
    rows, ranks = np.nonzero(keep)
    logits = torch.from_numpy(top.scores[keep])
    frame = pl.DataFrame({
        "user_id": saved.user_ids[top.users[rows]],
        "rank": (ranks + 1).astype(np.int32),
        "item_id": saved.item_ids[top.items[keep]],
        "score": model.to_rating(logits).double().numpy(),
    })
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, out_path)
    short = int((keep.sum(axis=1) < top_n).sum())
    if short:
        log.info("%d users have fewer than %d unseen items and get shorter lists", short, top_n)
    return {"path": str(out_path), "n_rows": frame.height, "n_users": int(users.size), "users_short": short,
            "seconds": round(time.perf_counter() - t0, 3)}


@task(name="score-users")
def score_users(model_path: str, snapshot: dict, top_n: int, out_path: str, memory_mb: int = 512,
                device: str = "auto") -> dict:
    """Top-N unseen items for every user with ratings, in memory-bounded blocks."""
    return score_snapshot(model_path, snapshot, top_n, out_path, memory_mb, device)
