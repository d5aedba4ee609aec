"""Ratings by contiguous index: the one in-memory form every model trains and is measured on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from .sparse import csr_from_pairs

NO_TIMESTAMPS = np.zeros(0, dtype=np.int64)  # ratings loaded without their times (nothing may split by time)


@dataclass
class Ratings:
    """Ratings by contiguous index (numpy), with the catalog size they index into. With implicit feedback
    ``ratings`` holds each pair's total weight (1 per event without one). ``timestamps`` is empty when
    the times were not loaded (``NO_TIMESTAMPS``)."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    n_users: int
    n_items: int
    feedback: str = "explicit"

    @property
    def implicit(self) -> bool:
        return self.feedback == "implicit"

    @property
    def noun(self) -> str:
        """What one row is, for log lines."""
        return "interactions" if self.implicit else "ratings"

    def __len__(self) -> int:
        return int(self.users.size)

    def take(self, idx: np.ndarray) -> Ratings:
        return Ratings(
            self.users[idx],
            self.items[idx],
            self.ratings[idx],
            self.timestamps[idx] if self.timestamps.size else self.timestamps,
            self.n_users,
            self.n_items,
            self.feedback,
        )

    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        """Each user's rated items as CSR ``(indptr, indices)``."""
        return csr_from_pairs(self.users, self.items, self.n_users)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)


def index_frames(*frames: pl.DataFrame, feedback: str = "explicit") -> tuple[list[Ratings], np.ndarray, np.ndarray]:
    """Index raw ``user_id``/``item_id`` frames jointly: ``(ratings per frame, user ids, item ids)``."""
    user_ids = np.unique(np.concatenate([f["user_id"].to_numpy() for f in frames]))
    item_ids = np.unique(np.concatenate([f["item_id"].to_numpy() for f in frames]))
    out = [
        Ratings(
            np.searchsorted(user_ids, f["user_id"].to_numpy()),
            np.searchsorted(item_ids, f["item_id"].to_numpy()),
            f["rating"].to_numpy().astype(np.float32),
            f["timestamp"].to_numpy(),
            len(user_ids),
            len(item_ids),
            feedback,
        )
        for f in frames
    ]
    return out, user_ids, item_ids
