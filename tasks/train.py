"""Fit the rating model and the ranker on the run's snapshot; measure both against baselines."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from recmodel.config import RunConfig
from recmodel.fitting import FitOutcome, WarmSource, fit_night
from recmodel.snapshot import Snapshot
from store import faults


@task(name="fit-models")
def fit_models(snapshot: Snapshot, cfg: RunConfig, run_dir: str, previous: WarmSource | None = None) -> FitOutcome:
    """Train both models, measure them next to the baselines, save them in the run's folder (safetensors)."""
    fitted = fit_night(
        snapshot, cfg, Path(run_dir) / "rater.safetensors", Path(run_dir) / "ranker.safetensors", previous
    )
    faults.point("train")
    return fitted
