"""A run's published lists as Parquet with raw ids: top-N per user (in shards), cold start, similar items.

Lists are ordered by the ranker; ``score`` is the rating model's predicted rating of each listed pair
(explicit feedback), or the ranker's score (implicit feedback: there is no rating model).
Shards are independent (a user's list depends on that user's ratings and the two models only), so any
split of the users gives the same table.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .coldstart import cold_start_lists
from .device import resolve_device
from .persist import load_model, load_ranker
from .score import recommend
from .similar import similar_items
from .snapshot import Snapshot

log = logging.getLogger(__name__)
SIMILAR_SCHEMA = {"item_id": pl.Int64, "rank": pl.Int32, "similar_item_id": pl.Int64, "similarity": pl.Float64}


@dataclass(frozen=True)
class ShardLists:
    """One shard's Parquet part and its size."""

    path: str | None
    n_rows: int
    n_users: int
    users_short: int  # users with fewer than top_n unseen items (shorter lists)
    seconds: float


@dataclass(frozen=True)
class ExtraLists:
    """Cold-start lists (in the recommendations folder, when there are any) and similar items."""

    cold_path: str | None
    similar_path: str
    n_rows: int
    cold_users: int


@dataclass(frozen=True)
class RunLists:
    """Everything scoring produced: the Parquet parts of the lists (one table) and the similar items."""

    parts: list[str]
    similar_path: str
    n_rows: int
    cold_users: int
    n_users: int
    users_short: int
    seconds: float


def shard_ranges(n_users: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous user-index ranges ``[lo, hi)`` covering ``0..n_users`` (fewer if there are fewer users)."""
    shards = max(1, min(shards, n_users))
    bounds = np.linspace(0, n_users, shards + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def write_atomic(frame: pl.DataFrame, path: Path) -> None:
    """Whole or not at all, and on disk (fsync) before the publish that reads it commits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.write_parquet(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _progress(lo: int, hi: int, on_block: Callable[[], None] | None) -> Callable[[int, int], None]:
    """A progress bar on a terminal, and a log line every 5 s (the Prefect UI and cron mails show those)."""
    t0 = time.perf_counter()
    last = [t0]
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if on_block is not None:
            on_block()
        rate = done / max(time.perf_counter() - t0, 1e-9)
        if tty:
            bar = "#" * int(30 * done / total)
            sys.stderr.write(
                f"\rscoring [{bar:<30}] {done:,}/{total:,} users, {rate:,.0f}/s, "
                f"ETA {(total - done) / max(rate, 1e-9):.0f}s" + ("\n" if done == total else "")
            )
            sys.stderr.flush()
        if time.perf_counter() - last[0] > 5 or done == total:
            last[0] = time.perf_counter()
            log.info(
                "users %d-%d: scored %d/%d (%.0f%%, %.0f users/s, ETA %.0fs)",
                lo,
                hi - 1,
                done,
                total,
                100 * done / total,
                rate,
                (total - done) / max(rate, 1e-9),
            )

    return progress


def rare_items(snapshot: Snapshot, min_item_ratings: int) -> np.ndarray:
    """Items with fewer than ``min_item_ratings`` ratings: never recommended."""
    return np.flatnonzero(snapshot.item_counts() < min_item_ratings)


def shard_lists(
    rater_path: str | None,
    ranker_path: str,
    snapshot: Snapshot,
    top_n: int,
    out_dir: str,
    lo: int,
    hi: int,
    memory_mb: int = 512,
    device: str = "auto",
    min_item_ratings: int = 1,
    on_block: Callable[[], None] | None = None,
    source: str = "model",
) -> ShardLists:
    """Lists for the users with ratings whose index is in ``[lo, hi)``, written to ``out_dir/part-<lo>.parquet``.

    ``score`` is the rating model's predicted rating (explicit feedback) or, without a rating model
    (implicit feedback), the ranker's score of the pair, in float64 either way.
    """
    dev = resolve_device(device)
    rater = load_model(rater_path, dev).model if rater_path else None
    ranker = load_ranker(ranker_path, dev)
    part = snapshot.ratings(users=(lo, hi), timestamps=False)
    users = lo + np.flatnonzero(np.bincount(part.users - lo))  # np.unique without its sort
    t0 = time.perf_counter()
    if users.size == 0:
        return ShardLists(None, 0, 0, 0, 0.0)
    rare = rare_items(snapshot, min_item_ratings)
    if rare.size and lo == 0:
        log.info("%d items with fewer than %d ratings are not recommended", rare.size, min_item_ratings)
    top = recommend(
        ranker,
        part,
        users,
        top_n,
        memory_mb=memory_mb,
        device=dev,
        progress=_progress(lo, hi, on_block),
        exclude_items=rare,
    )
    keep = top.items >= 0
    rows, ranks = np.nonzero(keep)
    user_idx, item_idx = top.users[rows], top.items[keep]
    user_ids, item_ids = snapshot.user_ids(), snapshot.item_ids()
    score = rater.predict(user_idx, item_idx) if rater is not None else ranker.score_pairs(user_idx, item_idx)
    frame = pl.DataFrame(
        {
            "user_id": user_ids[user_idx],
            "rank": (ranks + 1).astype(np.int32),
            "item_id": item_ids[item_idx],
            "score": score,
            "source": source,
        }
    )
    out = Path(out_dir) / f"part-{lo:010d}.parquet"
    write_atomic(frame, out)
    short = int((keep.sum(axis=1) < top_n).sum())
    return ShardLists(str(out), frame.height, int(users.size), short, round(time.perf_counter() - t0, 3))


def extra_lists(
    rater_path: str | None,
    ranker_path: str,
    snapshot: Snapshot,
    top_n: int,
    out_dir: str,
    memory_mb: int = 512,
    device: str = "auto",
    similar_n: int = 10,
    cold_start: str = "metadata",
    min_item_ratings: int = 1,
) -> ExtraLists:
    """Cold-start users' lists (``out_dir/cold.parquet``) and each item's ``similar_n`` nearest items by cosine
    on the ranker's item factors, or the rating model's item embeddings for other rankers (``similar.parquet``
    beside ``out_dir``)."""
    dev = resolve_device(device)
    rater = load_model(rater_path, dev).model if rater_path else None
    ranker = load_ranker(ranker_path, dev)
    seen = snapshot.ratings(timestamps=False)
    user_ids, item_ids = snapshot.user_ids(), snapshot.item_ids()
    cold, _ = cold_start_lists(
        cold_start,
        snapshot.user_features(),
        rater,
        ranker,
        seen,
        user_ids,
        item_ids,
        top_n,
        exclude_items=rare_items(snapshot, min_item_ratings),
    )
    out = Path(out_dir)
    cold_path = None
    if cold.height:
        cold_path = out / "cold.parquet"
        write_atomic(cold, cold_path)
    similar_path = out.parent / "similar.parquet"
    vectors = ranker.item_vectors()
    if vectors is None and rater is not None:
        vectors = rater.item_vectors()
    cold_users = int(cold["user_id"].n_unique()) if cold.height else 0
    if vectors is None:  # neither model has an item space (EASE with the bias-only baseline, say)
        log.info("no item factors to compare: no similar items tonight")
        write_atomic(pl.DataFrame(schema=SIMILAR_SCHEMA), similar_path)
        return ExtraLists(str(cold_path) if cold_path else None, str(similar_path), cold.height, cold_users)
    near = similar_items(vectors, similar_n, memory_mb=memory_mb)
    has = near.items >= 0
    rows, ranks = np.nonzero(has)
    write_atomic(
        pl.DataFrame(
            {
                "item_id": item_ids[near.users[rows]],
                "rank": (ranks + 1).astype(np.int32),
                "similar_item_id": item_ids[near.items[has]],
                "similarity": near.scores[has].astype(np.float64),
            }
        ),
        similar_path,
    )
    return ExtraLists(str(cold_path) if cold_path else None, str(similar_path), cold.height, cold_users)


def combine(shards: list[ShardLists], extras: ExtraLists, top_n: int) -> RunLists:
    """What the flow publishes: every part file (one table), similar items, counts."""
    short = sum(s.users_short for s in shards)
    if short:
        log.info("%d users have fewer than %d unseen items and get shorter lists", short, top_n)
    parts = [s.path for s in shards if s.path is not None] + ([extras.cold_path] if extras.cold_path else [])
    return RunLists(
        parts,
        extras.similar_path,
        sum(s.n_rows for s in shards) + extras.n_rows,
        extras.cold_users,
        sum(s.n_users for s in shards),
        short,
        round(max(s.seconds for s in shards), 3),
    )
