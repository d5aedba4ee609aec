"""Scale-out: the nightly flow with its scoring shards on a Dask cluster (``collabflow run --dask-...``).

What runs where: ingest, index, training, the quality gate and the publish transaction stay in the
flow's process (they are one DuckDB writer and one model fit); each ``score-shard`` task (a range of
user indices -> one Parquet part) is shipped to a Dask worker. Tasks pass paths, so every worker must
see the warehouse folder at the same path (a shared file system, or run the workers on the flow's
machine). The published table is the same whatever the number of shards or workers.
"""

from __future__ import annotations

import os

from prefect.settings import PREFECT_API_URL

from flows.nightly import nightly


def dask_runner(address: str | None = None, workers: int = 0):
    """A ``DaskTaskRunner`` for an existing scheduler (``address``) or a local cluster of ``workers`` processes."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as e:
        raise RuntimeError("Dask scale-out needs prefect-dask: pip install 'collabflow[dask]'") from e
    if address:
        return DaskTaskRunner(address=address)
    # Each worker process scores with torch.get_num_threads() threads: share the cores, don't oversubscribe.
    threads = max(1, (os.cpu_count() or 1) // workers)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "host": "127.0.0.1",
            "dashboard_address": None,
            "env": {"OMP_NUM_THREADS": str(threads)},
        }
    )


def nightly_on_dask(address: str | None = None, workers: int = 0):
    """The nightly flow with a Dask task runner. Refuses to start without a Prefect server: without one
    every Dask worker would start a temporary server of its own (slow, and they share one SQLite file)."""
    if not PREFECT_API_URL.value():
        raise RuntimeError(
            "Dask scale-out needs a running Prefect server: start one with `prefect server start` "
            "and set PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    if workers < 0:
        raise RuntimeError(f"--dask-workers must be >= 0, got {workers}")
    return nightly.with_options(task_runner=dask_runner(address, workers))
