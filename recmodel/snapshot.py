"""A run's inputs, frozen as Parquet files by the warehouse's index step: the one thing training,
scoring, cold start and the report read (never the warehouse itself)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from .ratings import NO_TIMESTAMPS, Ratings


@dataclass(frozen=True)
class Snapshot:
    """Paths and sizes of one run's inputs.

    ``interactions``: ``user_idx, item_idx, rating, timestamp, is_new`` (one row per current rating; ``is_new``:
    it arrived with tonight's files, so yesterday's models never saw it);
    ``users`` / ``items``: ``*_idx, *_id`` (the raw id of each index; items also ``title``);
    ``user_features`` (optional): the sign-up metadata the run saw (``user_id`` plus feature columns).
    """

    interactions_path: str
    users_path: str
    items_path: str
    n_ratings: int
    n_users: int
    n_items: int
    new_users: int = 0
    new_items: int = 0
    data_hash: str = ""
    user_features_path: str | None = None
    feedback: str = "explicit"  # or "implicit": ``rating`` then holds each pair's total weight

    def ratings(self, users: tuple[int, int] | None = None, timestamps: bool = True) -> Ratings:
        """The run's ratings by index; with ``users=(lo, hi)`` only those of user indices in ``[lo, hi)`` (a
        scoring shard reads just its part: the filter is pushed into the Parquet scan). Training, scoring and
        the report never look at times: ``timestamps=False`` leaves them out (8 bytes a rating)."""
        scan = pl.scan_parquet(self.interactions_path, glob=False)
        if users is not None:
            scan = scan.filter(pl.col("user_idx").is_between(users[0], users[1], closed="left"))
        # cast while reading (polars: in parallel), not afterwards with numpy (one thread, one more copy)
        frame = scan.select(
            pl.col("user_idx").cast(pl.Int64),
            pl.col("item_idx").cast(pl.Int64),
            pl.col("rating").cast(pl.Float32),
            *(["timestamp"] if timestamps else []),
        ).collect()
        return Ratings(
            frame["user_idx"].to_numpy(),
            frame["item_idx"].to_numpy(),
            frame["rating"].to_numpy(),
            frame["timestamp"].to_numpy() if timestamps else NO_TIMESTAMPS,
            self.n_users,
            self.n_items,
            self.feedback,
        )

    def is_new(self) -> np.ndarray:
        """Whether each rating (in ``ratings()`` order) arrived tonight."""
        return pl.read_parquet(self.interactions_path, columns=["is_new"], glob=False)["is_new"].to_numpy()

    def item_counts(self) -> np.ndarray:
        items = pl.read_parquet(self.interactions_path, columns=["item_idx"], glob=False)["item_idx"].to_numpy()
        return np.bincount(items, minlength=self.n_items)

    def rating_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ratings per user index, ratings per item index)``, from the two index columns alone."""
        frame = pl.read_parquet(self.interactions_path, columns=["user_idx", "item_idx"], glob=False)
        return (
            np.bincount(frame["user_idx"].to_numpy(), minlength=self.n_users),
            np.bincount(frame["item_idx"].to_numpy(), minlength=self.n_items),
        )

    def user_ids(self) -> np.ndarray:
        return pl.read_parquet(self.users_path, glob=False)["user_id"].to_numpy()

    def item_ids(self) -> np.ndarray:
        return pl.read_parquet(self.items_path, glob=False)["item_id"].to_numpy()

    def titles(self) -> dict[int, str]:
        """Item titles the run knew (``--items``), by raw item id."""
        frame = pl.read_parquet(self.items_path, glob=False)
        if "title" not in frame.columns:
            return {}
        return dict(frame.filter(pl.col("title").is_not_null()).select("item_id", "title").iter_rows())

    def user_features(self) -> pl.DataFrame | None:
        if self.user_features_path is None or not Path(self.user_features_path).exists():
            return None
        return pl.read_parquet(self.user_features_path, glob=False)
