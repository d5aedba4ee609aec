"""Rank every unseen (user, item) pair of a run and write the top-N per user as Parquet (raw ids)."""
from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from prefect import task

from recmodel import coldstart
from recmodel.device import resolve_device
from recmodel.implicit import FactorRanker
from recmodel.models import DotProductBias
from recmodel.persist import load_model, load_ranker
from recmodel.pipeline import predict, recommend
from recmodel.similar import similar_items

from . import warehouse as wh
from .train import load_snapshot

log = logging.getLogger(__name__)


def cold_start_rows(warehouse: str | Path, policy: str, saved, ranker, seen, top_n: int,
                    item_counts: np.ndarray) -> pl.DataFrame:
    """Lists for users in the users table who have no ratings, with ``source`` = the policy used."""
    empty = pl.DataFrame(schema={"user_id": pl.Int64, "rank": pl.Int32, "item_id": pl.Int64, "score": pl.Float64,
                                 "source": pl.String})
    path = Path(warehouse) / "users.parquet"
    if not path.exists():
        return empty
    meta = pl.read_parquet(path)
    warm_ids = saved.user_ids[np.unique(seen.users)]
    cold = meta.filter(~pl.col("user_id").is_in(warm_ids.tolist()))
    if cold.height == 0:
        return empty
    model = saved.model
    features = [c for c in meta.columns if c != "user_id"]
    if policy != "popularity" and (not isinstance(ranker, FactorRanker) or not isinstance(model, DotProductBias)
                                   or (policy == "metadata" and not features)):
        log.info("cold start: %s needs iALS factors, the dot model and (for metadata) features; using popularity", policy)
        policy = "popularity"
    known = np.unique(seen.users)
    n, k = cold.height, min(top_n, seen.n_items)
    with torch.no_grad():
        emb, ubias = model.user_emb.weight.cpu(), model.user_bias.weight.squeeze(1).cpu()
        if policy == "popularity":
            items = np.tile(coldstart.popularity_order(item_counts)[:k], (n, 1))
            user_vec, user_b = torch.zeros(n, emb.shape[1]), torch.full((n,), float(ubias[known].mean()))
        else:
            if policy == "average_taste":
                rep = coldstart.representative_user(ranker.user_factors.cpu(), known)
                rank_vec = ranker.user_factors.cpu()[[rep] * n]
                user_vec, user_b = emb[[rep] * n], ubias[[rep] * n]
            else:
                idx_of = pl.DataFrame({"user_id": saved.user_ids[known], "idx": known})
                train = meta.join(idx_of, on="user_id").sort("idx")
                encoder = coldstart.UserFeatures.fit(train.drop("idx"))
                rows_known = torch.from_numpy(train["idx"].to_numpy().copy())
                targets = torch.cat([ranker.user_factors.cpu()[rows_known], emb[rows_known], ubias[rows_known, None]], dim=1)
                W = coldstart.fit_metadata_regression(encoder.transform(train.drop("idx")), targets.double().numpy())
                guess = torch.as_tensor(encoder.transform(cold) @ W, dtype=torch.float32)
                f = ranker.user_factors.shape[1]
                rank_vec, user_vec, user_b = guess[:, :f], guess[:, f:f + emb.shape[1]], guess[:, -1]
            scores = rank_vec @ ranker.item_factors.cpu().T
            items = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k].numpy()
        rows = np.repeat(np.arange(n), k)
        flat = items.ravel()
        logits = (user_vec[rows] * model.item_emb.weight.cpu()[flat]).sum(1) + user_b[rows] + \
            model.item_bias.weight.cpu().squeeze(1)[flat]
        score = model.to_rating(logits).double().numpy()
    log.info("cold start: %d users without ratings get %s lists", n, policy)
    return pl.DataFrame({
        "user_id": cold["user_id"].to_numpy()[rows], "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), n),
        "item_id": saved.item_ids[flat], "score": score, "source": [policy] * rows.size,
    }, schema=empty.schema)


def shard_ranges(n_users: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous user-index ranges ``[lo, hi)`` covering ``0..n_users`` (fewer if there are fewer users)."""
    shards = max(1, min(shards, n_users))
    bounds = np.linspace(0, n_users, shards + 1).round().astype(int)
    return [(int(lo), int(hi)) for lo, hi in zip(bounds[:-1], bounds[1:])]


def snapshot_item_counts(snapshot: dict) -> np.ndarray:
    items = pl.read_parquet(snapshot["interactions_path"], columns=["item_idx"])["item_idx"].to_numpy()
    return np.bincount(items, minlength=snapshot["n_items"])


def score_shard_users(rater_path: str | Path, ranker_path: str | Path, snapshot: dict, top_n: int,
                      out_dir: str | Path, lo: int, hi: int, memory_mb: int = 512, device: str = "auto",
                      min_item_ratings: int = 1) -> dict:
    """Lists for the users with ratings whose index is in ``[lo, hi)``, written to ``out_dir/part-<lo>.parquet``.

    Ordered by the ranker; ``score`` is the rating model's predicted rating for each listed pair. Shards
    are independent (each user's list depends on that user's ratings and the two models only), so any
    split of the users gives the same table.
    """
    dev = resolve_device(device)
    saved = load_model(rater_path, dev)
    ranker = load_ranker(ranker_path, dev)
    part = load_snapshot(snapshot, users=(lo, hi))
    users = np.unique(part.users)
    t0 = time.perf_counter()
    last = [t0]
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        wh.fault_point("score")
        if tty:  # a live progress bar for a person at a terminal; logs (below) for the UI and cron
            rate = done / max(time.perf_counter() - t0, 1e-9)
            bar = "#" * int(30 * done / total)
            sys.stderr.write(f"\rscoring [{bar:<30}] {done:,}/{total:,} users, {rate:,.0f}/s, "
                             f"ETA {(total - done) / max(rate, 1e-9):.0f}s" + ("\n" if done == total else ""))
            sys.stderr.flush()
        if time.perf_counter() - last[0] > 5 or done == total:
            last[0] = time.perf_counter()
            rate = done / max(time.perf_counter() - t0, 1e-9)
            log.info("users %d-%d: scored %d/%d (%.0f%%, %.0f users/s, ETA %.0fs)", lo, hi - 1, done, total,
                     100 * done / total, rate, (total - done) / max(rate, 1e-9))

    if users.size == 0:
        return {"path": None, "n_rows": 0, "n_users": 0, "users_short": 0, "seconds": 0.0}
    item_counts = snapshot_item_counts(snapshot)
    rare = np.flatnonzero(item_counts < min_item_ratings)
    if rare.size and lo == 0:
        log.info("%d items with fewer than %d ratings are not recommended", rare.size, min_item_ratings)
    top = recommend(ranker, part, users, top_n, memory_mb=memory_mb, device=dev, progress=progress, exclude_items=rare)
    keep = top.items >= 0
    rows, ranks = np.nonzero(keep)
    user_idx, item_idx = top.users[rows], top.items[keep]
    frame = pl.DataFrame({
        "user_id": saved.user_ids[user_idx],
        "rank": (ranks + 1).astype(np.int32),
        "item_id": saved.item_ids[item_idx],
        "score": predict(saved.model, user_idx, item_idx),
        "source": "model",
    })
    out = Path(out_dir) / f"part-{lo:010d}.parquet"
    _write_atomic(frame, out)
    short = int((keep.sum(axis=1) < top_n).sum())
    return {"path": str(out), "n_rows": frame.height, "n_users": int(users.size), "users_short": short,
            "seconds": round(time.perf_counter() - t0, 3)}


def _write_atomic(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def score_extras(rater_path: str | Path, ranker_path: str | Path, snapshot: dict, top_n: int, out_dir: str | Path,
                 memory_mb: int = 512, device: str = "auto", similar_n: int = 10, warehouse: str | Path | None = None,
                 cold_start: str = "metadata") -> dict:
    """Cold-start users' lists (``out_dir/cold.parquet``, when there are any) and each item's ``similar_n``
    nearest items by cosine on the ranker's item factors (iALS), or the rating model's item embeddings for
    other rankers (``similar.parquet`` beside ``out_dir``)."""
    dev = resolve_device(device)
    saved = load_model(rater_path, dev)
    ranker = load_ranker(ranker_path, dev)
    seen = load_snapshot(snapshot)
    item_counts = np.bincount(seen.items, minlength=seen.n_items)
    cold = cold_start_rows(warehouse, cold_start, saved, ranker, seen, top_n, item_counts) if warehouse else None
    out_dir = Path(out_dir)
    if cold is not None and cold.height:
        _write_atomic(cold, out_dir / "cold.parquet")
    factors = ranker.item_factors if isinstance(ranker, FactorRanker) else saved.model.item_emb.weight.detach()
    near = similar_items(factors, similar_n, memory_mb=memory_mb)
    has = near.items >= 0
    rows, ranks = np.nonzero(has)
    similar_path = out_dir.parent / "similar.parquet"
    _write_atomic(pl.DataFrame({
        "item_id": saved.item_ids[near.users[rows]],
        "rank": (ranks + 1).astype(np.int32),
        "similar_item_id": saved.item_ids[near.items[has]],
        "similarity": near.scores[has].astype(np.float64),
    }), similar_path)
    return {"similar_path": str(similar_path), "n_rows": 0 if cold is None else cold.height,
            "cold_users": 0 if cold is None else int(cold["user_id"].n_unique())}


def combine(out_dir: str | Path, shards: list[dict], extras: dict, top_n: int) -> dict:
    """What the flow publishes: a glob over every part file (DuckDB and polars read it as one table)."""
    short = sum(s["users_short"] for s in shards)
    if short:
        log.info("%d users have fewer than %d unseen items and get shorter lists", short, top_n)
    return {"path": str(Path(out_dir) / "*.parquet"), "similar_path": extras["similar_path"],
            "n_rows": sum(s["n_rows"] for s in shards) + extras["n_rows"], "cold_users": extras["cold_users"],
            "n_users": sum(s["n_users"] for s in shards), "users_short": short,
            "seconds": round(max(s["seconds"] for s in shards), 3)}


def score_snapshot(rater_path: str | Path, ranker_path: str | Path, snapshot: dict, top_n: int, out_dir: str | Path,
                   memory_mb: int = 512, device: str = "auto", similar_n: int = 10, warehouse: str | Path | None = None,
                   cold_start: str = "metadata", min_item_ratings: int = 1, shards: int = 1) -> dict:
    """Every shard, then the extras, in this process (the flow submits the same pieces as tasks instead)."""
    parts = [score_shard_users(rater_path, ranker_path, snapshot, top_n, out_dir, lo, hi, memory_mb, device,
                               min_item_ratings) for lo, hi in shard_ranges(snapshot["n_users"], shards)]
    extras = score_extras(rater_path, ranker_path, snapshot, top_n, out_dir, memory_mb, device, similar_n, warehouse,
                          cold_start)
    return combine(out_dir, parts, extras, top_n)


@task(name="score-shard")
def score_shard(rater_path: str, ranker_path: str, snapshot: dict, top_n: int, out_dir: str, lo: int, hi: int,
                memory_mb: int = 512, device: str = "auto", min_item_ratings: int = 1) -> dict:
    """Top-N unseen items for the users with ratings in one range of user indices (one Parquet part)."""
    return score_shard_users(rater_path, ranker_path, snapshot, top_n, out_dir, lo, hi, memory_mb, device,
                             min_item_ratings)


@task(name="score-extras")
def score_extra_lists(rater_path: str, ranker_path: str, snapshot: dict, top_n: int, out_dir: str,
                      memory_mb: int = 512, device: str = "auto", similar_n: int = 10, warehouse: str | None = None,
                      cold_start: str = "metadata") -> dict:
    """Cold-start users' lists and similar items."""
    return score_extras(rater_path, ranker_path, snapshot, top_n, out_dir, memory_mb, device, similar_n, warehouse,
                        cold_start)
