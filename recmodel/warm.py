"""What a night loads on first use, loaded ahead of time: numba's compiler, thread pool and cached kernels,
matplotlib's canvas."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit, prange

log = logging.getLogger(__name__)


@njit(parallel=True, cache=True)
def _parallel_sum(x: np.ndarray) -> float:  # pragma: no cover - compiled
    total = 0.0
    for k in prange(x.size):
        total += x[k]
    return total


def load_cached_kernels(prefix: str = "recmodel.") -> int:
    """Load, for every numba kernel of the imported modules named ``prefix*``, each compiled version that
    numba's on-disk cache holds for this machine and this source (3-13 ms each: ~0.1 s for a night's ~17
    kernels, otherwise spent inside its stages, at each kernel's first call). Returns how many were loaded.

    Only what a cache hit is certain for is loaded: the entry's key must be the one numba computes for this
    machine and code, and its data file must exist; so this never compiles. It reads numba's cache index (an
    internal format): should that change, nothing is loaded and the night loads each kernel on first use.
    """
    from numba.core.registry import CPUDispatcher  # noqa: PLC0415

    loaded = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith(prefix) or module is None:
            continue
        for kernel in list(vars(module).values()):
            if not isinstance(kernel, CPUDispatcher) or kernel.py_func.__module__ != name:
                continue  # imported from another module: loaded there
            try:
                cache: Any = getattr(kernel, "_cache")  # noqa: B009  (numba's internals, typed loosely)
                index = cache._cache_file._load_index()
                codegen = getattr(kernel.targetctx, "codegen")()  # noqa: B009
                folder = Path(cache.cache_path)
                for key, data_name in index.items():
                    sig = key[0]
                    fresh = key == cache._index_key(sig, codegen) and (folder / data_name).exists()
                    if fresh and sig not in kernel.overloads:
                        kernel.compile(sig)
                        loaded += 1
            except Exception:  # noqa: BLE001  (an optimisation: the kernel loads on first use as before)
                log.debug("could not load %s.%s from numba's cache", name, kernel.py_func.__name__, exc_info=True)
    return loaded


def warm_up() -> None:
    """Initialise numba (LLVM and the parallel thread pool: ~0.4 s before a night's first kernel can run,
    even from the cache), load the imported kernels from numba's cache (``load_cached_kernels``) and import
    matplotlib's Agg canvas for the report (~0.6 s). Safe in a background thread: ``collabflow run`` calls it
    in one while Prefect starts its temporary server, seconds in which the process only waits."""
    _parallel_sum(np.ones(2))
    load_cached_kernels()
    import matplotlib.backends.backend_agg  # noqa: F401, PLC0415
    import matplotlib.figure  # noqa: F401, PLC0415
