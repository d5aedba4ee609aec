"""Similar items: cosine similarity of item factors, top-k per item, self excluded, in blocks."""

from __future__ import annotations

import numpy as np
import torch

from .score import TopN, top_n_unseen


def similar_items(item_factors: torch.Tensor, k: int, *, memory_mb: int = 512, items: np.ndarray | None = None) -> TopN:
    """For each item (``items``, default all): the ``k`` most cosine-similar other items.

    ``TopN.scores`` are cosine similarities in [-1, 1]; ties break by item index like scoring.
    Items whose factor vector is zero (nothing learned) get no neighbours and are nobody's neighbour.
    """
    norms = item_factors.norm(dim=1, keepdim=True)
    unit = item_factors / norms.clamp_min(1e-12)
    dead = norms.squeeze(1) <= 1e-12
    n = item_factors.shape[0]
    items = np.arange(n, dtype=np.int64) if items is None else np.asarray(items, dtype=np.int64)
    # "seen" = the item itself, masked like a user's rated items; dead items are masked for everyone
    dead_idx = torch.nonzero(dead).flatten().cpu().numpy()
    indptr, indices = np.arange(n + 1, dtype=np.int64), np.arange(n, dtype=np.int64)
    top = top_n_unseen(unit, unit, indptr, indices, k, users=items, memory_mb=memory_mb, exclude_items=dead_idx)
    rows = dead.cpu().numpy()[items]
    top.items[rows], top.scores[rows] = -1, np.nan
    return top
