"""The evaluation flow: every model next to the baselines on a split you choose, stored and shown."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

import flows  # noqa: F401  (Prefect defaults and our log levels, also when a worker loads this file by path)
from flows.artifacts import comparison_table
from recmodel.config import Feedback, RunConfig
from recmodel.device import resolve_device
from recmodel.evaluation import compare
from recmodel.io import parse_column_mapping, read_ratings
from recmodel.ratings import index_frames
from recmodel.splits import split_leave_last, split_random, split_temporal
from store.db import connect_state
from store.lock import exclusive
from store.paths import DB_NAME, new_run_id, now
from store.state import materialize, open_warehouse

log = logging.getLogger(__name__)
Split = Literal["random", "temporal", "leave-last"]


def _load(
    path: str, columns: str | None, delimiter: str | None, cfg: RunConfig, feedback: Feedback
) -> tuple[pl.DataFrame, str]:
    """One file's rows (one per pair) and its feedback kind."""
    parsed = read_ratings(
        path,
        separator=delimiter,
        columns=parse_column_mapping(columns),
        rating_min=cfg.rating_min,
        rating_max=cfg.rating_max,
        feedback=feedback,
    )
    if parsed.quarantine.height:
        log.warning(
            "%s: %d rows quarantined (not evaluated), e.g. row %d: %s",
            path,
            parsed.quarantine.height,
            parsed.quarantine["row_number"][0],
            parsed.quarantine["reason"][0],
        )
    return parsed.ratings, parsed.feedback


@task(name="compare-models")
def compare_models(
    source: str | None,
    train: str | None,
    test: str | None,
    split: Split,
    test_pct: float,
    leave_last_n: int,
    columns: str | None,
    delimiter: str | None,
    cfg: RunConfig,
    feedback: Feedback = "auto",
) -> dict:
    """Read the data, split it, fit every model and baseline, measure them on the test part."""
    if (train is None) != (test is None) or (train is None) == (source is None):
        raise ValueError("give either --source (to be split) or both --train and --test")
    details: dict[str, Any]
    if train is not None and test is not None:
        (train_rows, kind), (test_rows, _) = (_load(p, columns, delimiter, cfg, feedback) for p in (train, test))
        (tr, te), _, _ = index_frames(train_rows, test_rows, feedback=kind)
        split_name, details = "files", {"train": train, "test": test}
    else:
        assert source is not None  # checked above
        rows, kind = _load(source, columns, delimiter, cfg, feedback)
        (everything,), _, _ = index_frames(rows, feedback=kind)
        if split == "random":
            tr, te = split_random(everything, test_pct, cfg.train.seed)
        elif split == "temporal":
            tr, te = split_temporal(everything, test_pct)
        else:
            tr, te = split_leave_last(everything, leave_last_n)
        split_name, details = (
            split,
            {"source": source, "test_pct": test_pct, "leave_last_n": leave_last_n, "seed": cfg.train.seed},
        )
    if not len(tr) or not len(te):
        raise ValueError(f"the split left {len(tr)} train and {len(te)} test ratings; both must be non-empty")
    device = resolve_device(cfg.train.device)
    results = compare(tr, te, cfg, device)
    details.update(n_train=len(tr), n_test=len(te), feedback=kind, config=cfg.model_dump(mode="json"))
    return {"split": split_name, "details": details, "results": results}


def store(warehouse: str, evaluation: dict) -> str:
    evaluation_id = new_run_id()
    rows = [
        (evaluation_id, now(), evaluation["split"], model, metric, float(value), json.dumps(evaluation["details"]))
        for model, metrics in evaluation["results"].items()
        for metric, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    with exclusive(warehouse):  # the writer's lock: not while a night runs
        open_warehouse(warehouse)
        with connect_state(warehouse) as con:
            con.executemany("insert into evaluations values (?, ?, ?, ?, ?, ?, ?)", rows)
        materialize(warehouse)  # readers see it at once (the same version, one table more)
    return evaluation_id


@flow(name="collabflow-evaluate", validate_parameters=True)
def evaluate(
    source: str | None = None,
    train: str | None = None,
    test: str | None = None,
    split: Split = "random",
    test_pct: float = 0.2,
    leave_last_n: int = 1,
    warehouse: str | None = None,
    columns: str | None = None,
    delimiter: str | None = None,
    config: dict | None = None,
    feedback: Feedback = "auto",
) -> dict:
    """Every model and baseline on one split; ``published`` is what the nightly flow would publish.

    ``feedback``: ``auto`` (explicit when a rating column is found or mapped), ``explicit`` or ``implicit``;
    implicit data is measured with ranking metrics only, against popularity and a random control.
    ``config`` holds flat overrides of the nightly parameters (e.g. ``{"ranker": "ials", "seed": 43}``).
    """
    logger = get_run_logger()
    cfg = RunConfig.from_flat(**(config or {}))
    evaluation = compare_models(source, train, test, split, test_pct, leave_last_n, columns, delimiter, cfg, feedback)
    results = evaluation["results"]
    create_table_artifact(
        key="collabflow-evaluation",
        table=comparison_table(results, cfg.metric_k),
        description=f"{evaluation['split']} split: {evaluation['details'].get('n_train')} train / "
        f"{evaluation['details'].get('n_test')} test ratings",
    )
    if warehouse:
        evaluation["evaluation_id"] = store(warehouse, evaluation)
        logger.info("stored as evaluation %s in %s", evaluation["evaluation_id"], Path(warehouse) / DB_NAME)
    pub = results["published"]
    rated = f", {pub['rating_model']} rates: RMSE {pub['rmse']:.4f}" if pub.get("rating_model") else ""
    logger.info(
        "published: %s ranks, NDCG@%d %.4f%s", pub["ranker"], cfg.metric_k, pub[f"ndcg_at_{cfg.metric_k}"], rated
    )
    return evaluation
