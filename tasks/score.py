"""Rank every unseen (user, item) pair and write the top-N per user as Parquet (raw ids)."""

from __future__ import annotations

from prefect import task

from recmodel.fitting import FitOutcome
from recmodel.lists import ShardLists, extra_lists, shard_lists
from recmodel.snapshot import Snapshot
from store import faults


@task(name="score-shard")
def score_shard(
    fitted: FitOutcome,
    snapshot: Snapshot,
    top_n: int,
    out_dir: str,
    lo: int,
    hi: int,
    memory_mb: int = 512,
    min_item_ratings: int = 1,
) -> ShardLists:
    """Top-N unseen items for the users with ratings in one range of user indices (one Parquet part)."""
    return shard_lists(
        fitted.rater_path,
        fitted.ranker_path,
        snapshot,
        top_n,
        out_dir,
        lo,
        hi,
        memory_mb,
        fitted.device,
        min_item_ratings,
        on_block=lambda: faults.point("score"),
        source=fitted.source,
    )


score_extras = task(name="score-extras")(extra_lists)
