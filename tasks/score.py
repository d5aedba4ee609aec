"""Rank every unseen (user, item) pair of a run and write the top-N per user as Parquet (raw ids)."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from prefect import task

from recmodel.device import resolve_device
from recmodel.persist import load_model, load_ranker
from recmodel.implicit import FactorRanker
from recmodel.pipeline import predict, recommend
from recmodel.similar import similar_items

from . import warehouse as wh
from .train import load_snapshot

log = logging.getLogger(__name__)


def score_snapshot(rater_path: str | Path, ranker_path: str | Path, snapshot: dict, top_n: int, out_path: str | Path,
                   memory_mb: int = 512, device: str = "auto", similar_n: int = 10) -> dict:
    """Lists ordered by the ranker; ``score`` is the rating model's predicted rating for each listed pair.
    Also writes ``similar.parquet`` next to ``out_path``: each item's ``similar_n`` nearest items by cosine
    on the ranker's item factors (iALS), or the rating model's item embeddings for other rankers."""
    dev = resolve_device(device)
    saved = load_model(rater_path, dev)
    ranker = load_ranker(ranker_path, dev)
    seen = load_snapshot(snapshot)
    users = np.unique(seen.users)  # every user with at least one rating
    last = [time.perf_counter()]
    t0 = time.perf_counter()

    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        wh.fault_point("score")
        if tty:  # a live progress bar for a person at a terminal; logs (below) for the UI and cron
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar = "#" * int(30 * done / total)
            sys.stderr.write(f"\rscoring [{bar:<30}] {done}/{total} users, {rate:,.0f}/s, "
                             f"ETA {(total - done) / max(rate, 1e-9):.0f}s" + ("\n" if done == total else ""))
            sys.stderr.flush()
        if time.perf_counter() - last[0] > 5 or done == total:
            last[0] = time.perf_counter()
            rate = done / max(time.perf_counter() - t0, 1e-9)
            log.info("scored %d/%d users (%.0f%%, %.0f users/s, ETA %.0fs)", done, total, 100 * done / total, rate,
                     (total - done) / max(rate, 1e-9))

    top = recommend(ranker, seen, users, top_n, memory_mb=memory_mb, device=dev, progress=progress)
    keep = top.items >= 0
    rows, ranks = np.nonzero(keep)
    user_idx, item_idx = top.users[rows], top.items[keep]
    frame = pl.DataFrame({
        "user_id": saved.user_ids[user_idx],
        "rank": (ranks + 1).astype(np.int32),
        "item_id": saved.item_ids[item_idx],
        "score": predict(saved.model, user_idx, item_idx),
    })
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, out_path)
    factors = ranker.item_factors if isinstance(ranker, FactorRanker) else saved.model.item_emb.weight.detach()
    near = similar_items(factors, similar_n, memory_mb=memory_mb)
    has = near.items >= 0
    rows, ranks = np.nonzero(has)
    similar_path = out_path.with_name("similar.parquet")
    pl.DataFrame({
        "item_id": saved.item_ids[near.users[rows]],
        "rank": (ranks + 1).astype(np.int32),
        "similar_item_id": saved.item_ids[near.items[has]],
        "similarity": near.scores[has].astype(np.float64),
    }).write_parquet(similar_path)
    short = int((keep.sum(axis=1) < top_n).sum())
    if short:
        log.info("%d users have fewer than %d unseen items and get shorter lists", short, top_n)
    return {"path": str(out_path), "similar_path": str(similar_path), "n_rows": frame.height, "n_users": int(users.size), "users_short": short,
            "seconds": round(time.perf_counter() - t0, 3)}


@task(name="score-users")
def score_users(rater_path: str, ranker_path: str, snapshot: dict, top_n: int, out_path: str, memory_mb: int = 512,
                device: str = "auto", similar_n: int = 10) -> dict:
    """Top-N unseen items for every user with ratings, and similar items, in memory-bounded blocks."""
    return score_snapshot(rater_path, ranker_path, snapshot, top_n, out_path, memory_mb, device, similar_n)
