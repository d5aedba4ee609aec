"""What a night loads on first use, loaded ahead of time: numba's compiler and thread pool, matplotlib's canvas."""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _parallel_sum(x: np.ndarray) -> float:  # pragma: no cover - compiled
    total = 0.0
    for k in prange(x.size):
        total += x[k]
    return total


def warm_up() -> None:
    """Initialise numba (LLVM and the parallel thread pool: ~0.4 s before a night's first kernel can run,
    even from the cache) and import matplotlib's Agg canvas for the report (~0.6 s). Safe in a background
    thread: ``collabflow run`` calls it in one while Prefect starts its temporary server, seconds in which
    the process only waits."""
    _parallel_sum(np.ones(2))
    import matplotlib.backends.backend_agg  # noqa: F401, PLC0415
    import matplotlib.figure  # noqa: F401, PLC0415
