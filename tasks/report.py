"""Write the run's report (Markdown + PNG plots) next to its models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
from prefect import task

from recmodel.implicit import FactorRanker
from recmodel.models import DotProductBias
from recmodel.persist import load_model, load_ranker
from recmodel.report import write_report

from . import warehouse as wh
from .train import load_snapshot


def report_run(warehouse: str | Path, run_id: str, snapshot: dict, rater_path: str, ranker_path: str,
               recommendations_path: str, metrics: dict, history: list[dict]) -> str:
    saved = load_model(rater_path)
    ranker = load_ranker(ranker_path)
    seen = load_snapshot(snapshot)
    with wh.connect(warehouse) as con:
        titles = dict(con.execute("select item_id, title from items where title is not null").fetchall())
    factors = ranker.item_factors if isinstance(ranker, FactorRanker) else saved.model.item_emb.weight
    bias = saved.model.item_bias.weight.detach().squeeze(1).numpy() if isinstance(saved.model, DotProductBias) else None
    per_user = np.bincount(seen.users, minlength=seen.n_users)
    path = write_report(
        wh.run_dir(warehouse, run_id) / "report", run_id=run_id,
        metrics={**metrics, "users_thin": int(((per_user > 0) & (per_user < 5)).sum())}, history=history,
        item_ids=saved.item_ids, item_factors=factors, item_bias=bias,
        item_counts=np.bincount(seen.items, minlength=seen.n_items), recommendations=pl.read_parquet(recommendations_path),
        titles=titles, n_users=int((per_user > 0).sum()),
    )
    return str(path)


@task(name="write-report")
def write_run_report(warehouse: str, run_id: str, snapshot: dict, rater_path: str, ranker_path: str,
                     recommendations_path: str, metrics: dict, history: list[dict]) -> str:
    """Training curve, models vs baselines, item biases and PCA map, what was recommended: Markdown + PNGs."""
    return report_run(warehouse, run_id, snapshot, rater_path, ranker_path, recommendations_path, metrics, history)
