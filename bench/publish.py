"""Publishing at ML-25M shape: how long a night's publish takes, and how big the served snapshot gets.

A real warehouse, through the real path (stage -> plan -> publish): a first night of 25M ratings, then
seven more nights, each with a small file of new ratings (0.5%), lists for every user (1.6M rows at
top-10), similar items (590k rows) and the history of the last ``keep_runs`` versions. The lists are
random unseen items (the checks need them valid, not good): training is not what this measures.

    python bench/publish.py [--shape ml-25m] [--nights 8]

Prints each publish's time with its steps (copy, apply incl. data checks, checkpoint, serve, promote), the
served file's size, and, as a baseline measured in the same run, the time to copy the state file once.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel import synth  # noqa: E402
from recmodel.lists import RunLists  # noqa: E402
from store import paths, runs  # noqa: E402
from store.ingest import InputRules, StagedNight, WarehouseKind, stage_file  # noqa: E402
from store.night import plan_night  # noqa: E402
from store.publish import publish_night  # noqa: E402
from store.state import open_warehouse  # noqa: E402

TOP_N, SIMILAR_N = 10, 10


def random_lists(folder: Path, interactions: Path, users: Path, items: Path, seed: int) -> RunLists:
    """Every user's top-N as random items they have not rated, and every item's random neighbours."""
    rng = np.random.default_rng(seed)
    seen = pl.read_parquet(interactions, columns=["user_idx", "item_idx"])
    user_ids = pl.read_parquet(users)["user_id"].to_numpy()
    item_ids = pl.read_parquet(items)["item_id"].to_numpy()
    n_users, n_items = user_ids.size, item_ids.size
    keys = np.sort(seen["user_idx"].to_numpy().astype(np.int64) * n_items + seen["item_idx"].to_numpy())
    picks = rng.integers(0, n_items, (n_users, TOP_N * 5))  # plenty: heavy raters reject some
    cand = np.arange(n_users)[:, None] * n_items + picks
    pos = np.searchsorted(keys, cand).clip(max=keys.size - 1)
    ok = keys[pos] != cand
    rows = []
    for u in range(n_users):  # first TOP_N distinct unseen picks
        chosen = list(dict.fromkeys(picks[u][ok[u]].tolist()))[:TOP_N]
        if len(chosen) < TOP_N:
            raise RuntimeError(f"user {u}: too few unseen picks; raise the number of candidates")
        rows.append(chosen)
    items_idx = np.array(rows)
    frame = pl.DataFrame(
        {
            "user_id": np.repeat(user_ids, TOP_N),
            "rank": np.tile(np.arange(1, TOP_N + 1, dtype=np.int32), n_users),
            "item_id": item_ids[items_idx.ravel()],
            "score": rng.random(n_users * TOP_N) * 5,
            "source": ["model"] * (n_users * TOP_N),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / "part-0000000000.parquet"
    frame.write_parquet(part)
    near = (np.arange(n_items)[:, None] + rng.integers(1, n_items, (n_items, SIMILAR_N))) % n_items
    similar = folder.parent / "similar.parquet"
    pl.DataFrame(
        {
            "item_id": np.repeat(item_ids, SIMILAR_N),
            "rank": np.tile(np.arange(1, SIMILAR_N + 1, dtype=np.int32), n_items),
            "similar_item_id": item_ids[near.ravel()],
            "similarity": rng.random(n_items * SIMILAR_N),
        }
    ).write_parquet(similar)
    return RunLists([str(part)], str(similar), frame.height, 0, n_users, 0, 0.0)


class Steps(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("publish steps"):
            self.last = record.getMessage()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="ml-25m", choices=list(synth.SHAPES))
    parser.add_argument("--nights", type=int, default=8)
    parser.add_argument("--keep-runs", type=int, default=7)
    args = parser.parse_args()
    steps = Steps()
    logging.getLogger("store").addHandler(steps)
    logging.getLogger("store").setLevel(logging.INFO)
    tmp = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    try:
        t0 = time.perf_counter()
        ratings = synth.generate(args.shape, 42)
        rng = np.random.default_rng(7)
        print(f"{args.shape}: {ratings.height:,} ratings generated in {time.perf_counter() - t0:.0f}s", flush=True)
        warehouse = tmp / "wh"
        open_warehouse(warehouse)
        later = int(ratings["timestamp"].to_numpy().max()) + 1
        for night in range(1, args.nights + 1):
            if night == 1:
                frame = ratings
            else:  # 0.5% new ratings of existing users and items, later than everything before
                rows = rng.integers(0, ratings.height, ratings.height // 200)
                frame = ratings[rows].with_columns(pl.col("rating").reverse(), pl.lit(later + night).alias("timestamp"))
            src = tmp / f"night{night}.parquet"
            frame.write_parquet(src)
            run_id = paths.new_run_id()
            runs.start_run(warehouse, run_id, str(src), {}, "bench", {})
            staged = stage_file(warehouse, run_id, src, InputRules(rating_min=0.5, rating_max=5.0))
            kind = WarehouseKind(staged.feedback, dict(staged.id_types))
            plan, snap = plan_night(warehouse, StagedNight(run_id, [staged], kind=kind))
            lists = random_lists(
                paths.run_dir(warehouse, run_id) / "recommendations",
                Path(snap.interactions_path),
                Path(snap.users_path),
                Path(snap.items_path),
                night,
            )
            summary = {
                "n_ratings": snap.n_ratings,
                "n_users": snap.n_users,
                "n_items": snap.n_items,
                "device": "cpu",
                "data_hash": snap.data_hash,
                "metrics": {},
                "timings": {},
            }
            t0 = time.perf_counter()
            published = publish_night(warehouse, run_id, plan, lists, summary, TOP_N, keep_runs=args.keep_runs)
            seconds = time.perf_counter() - t0
            size = paths.db_path(warehouse).stat().st_size / 2**20
            print(
                f"night {night}: {frame.height:,} new ratings, {published.n_recommendations:,} list rows: publish "
                f"{seconds:.2f}s ({steps.last.removeprefix('publish steps: ')}); served snapshot {size:.0f} MB",
                flush=True,
            )
        t0 = time.perf_counter()
        shutil.copyfile(paths.state_db(warehouse), tmp / "copy.duckdb")
        print(
            f"baseline: one copy of the {paths.state_db(warehouse).stat().st_size / 2**20:.0f} MB state file: "
            f"{time.perf_counter() - t0:.2f}s"
        )
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
