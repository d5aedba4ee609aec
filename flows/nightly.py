"""The nightly flow: ingest -> index -> train -> score all unseen pairs -> publish top-N to DuckDB."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

import flows  # noqa: F401  (Prefect defaults and our log levels, also when a worker loads this file by path)
from flows.artifacts import comparison_table
from flows.parameters import from_config
from recmodel import synth
from recmodel.config import DataConfig, RunConfig, split_flat
from recmodel.device import resolve_device
from recmodel.fitting import FitOutcome, WarmSource
from recmodel.lists import RunLists, combine, shard_ranges
from recmodel.snapshot import Snapshot
from store import gate, runs
from store.db import ensure_schema
from store.lock import exclusive
from store.paths import new_run_id, run_dir
from tasks.index import build_index
from tasks.ingest import ingest_items, ingest_ratings, ingest_users
from tasks.publish import publish_run
from tasks.report import write_run_report
from tasks.score import score_extras, score_shard
from tasks.train import fit_models

log = logging.getLogger(__name__)
FLOW_NAME = "collabflow-nightly"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("collabflow", "torch", "prefect", "duckdb", "polars", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def default_source(warehouse: str, shape: str, seed: int) -> tuple[str, str]:
    """Seeded synthetic MovieLens-shaped ratings and item titles, generated once per (shape, seed) inside
    the warehouse; returns ``(ratings path, items path)``."""
    out = Path(warehouse) / "synthetic" / f"{shape}-seed{seed}"
    path, items_path = out / "ratings.parquet", out / "items.csv"
    if not path.exists() or not items_path.exists():
        ratings = synth.generate(shape, seed)
        out.mkdir(parents=True, exist_ok=True)
        synth.items(ratings, seed).write_csv(items_path)
        synth.write(ratings, out, "parquet")
    return str(path), str(items_path)


def already_covered(warehouse: str) -> str | None:
    """For a scheduled run: why it is redundant, if a run that started after its slot already succeeded.

    After downtime Prefect runs every missed night; ``concurrency_limit=1`` queues them, and all but the
    first then find their night covered: a missed night runs once.
    """
    from prefect.runtime import deployment, flow_run

    if not deployment.id:
        return None
    slot = flow_run.scheduled_start_time
    newer = runs.succeeded_since(warehouse, slot)
    return f"run {newer} started after this run's slot ({slot}) and succeeded" if newer else None


def _ingest(data: DataConfig, cfg: RunConfig) -> list[dict[str, Any]]:
    src, items_src = (
        (data.source, data.items)
        if data.source
        else default_source(data.warehouse, data.synthetic_shape, cfg.train.seed)
    )
    items_src = data.items or items_src
    files = ingest_ratings(
        src, data.warehouse, data.columns, data.delimiter, cfg.rating_min, cfg.rating_max, data.max_bad_fraction
    )
    if items_src:
        ingest_items(data.warehouse, items_src, data.item_columns)
    if data.users:
        ingest_users(data.warehouse, data.users)
    return [asdict(f) for f in files]


def _score(fitted: FitOutcome, snap: Snapshot, cfg: RunConfig, lists_dir: str) -> RunLists:
    # one task per range of users: on a Dask task runner they run on the cluster's workers
    shards = [
        score_shard.submit(fitted, snap, cfg.top_n, lists_dir, lo, hi, cfg.score_memory_mb, cfg.min_item_ratings)
        for lo, hi in shard_ranges(snap.n_users, cfg.score_shards)
    ]
    parts = [f.result() for f in shards]  # then the rest, so the two never fight over the same cores
    extras = score_extras(
        fitted.rater_path,
        fitted.ranker_path,
        snap,
        cfg.top_n,
        lists_dir,
        cfg.score_memory_mb,
        fitted.device,
        cfg.similar_n,
        cfg.cold_start,
        cfg.min_item_ratings,
    )
    return combine(lists_dir, parts, extras, cfg.top_n)


def _artifacts(
    run_id: str, metrics: dict[str, Any], snap: Snapshot, n_recs: int, files: list[dict[str, Any]], device: str, k: int
) -> None:
    ingested = [f for f in files if not f["skipped"]]
    table = comparison_table(metrics.get("models", {}), k)
    create_table_artifact(
        key="collabflow-model-comparison",
        table=table or [{"model": "-", "note": "valid_pct=0"}],
        description=f"Run {run_id}: validation metrics of the published models and the baselines",
    )
    rows = {
        "rating_model": metrics["rating_model"],
        "ranker": metrics["ranker"],
        "valid_rmse": metrics["valid_rmse"],
        "valid_mae": metrics["valid_mae"],
        f"ndcg_at_{k}": metrics.get(f"ndcg_at_{k}"),
        f"coverage_at_{k}": metrics.get(f"coverage_at_{k}"),
        "train_seconds": metrics["train_seconds"],
        "n_ratings": snap.n_ratings,
        "n_users": snap.n_users,
        "n_items": snap.n_items,
        "n_recommendations": n_recs,
        "files_ingested": len(ingested),
        "rows_quarantined": sum(f["rows_quarantined"] for f in ingested),
    }
    create_table_artifact(
        key="collabflow-run-metrics",
        table=[{"metric": m, "value": v} for m, v in rows.items()],
        description=f"Run {run_id} ({device})",
    )


def _report(
    run_id: str, data: DataConfig, snap: Snapshot, fitted: FitOutcome, scored: RunLists, metrics: dict[str, Any]
) -> str | None:
    """The run's report and its markdown artifact; the lists are already published, so a failure is a warning."""
    logger = get_run_logger()
    try:
        report_path = write_run_report(
            run_dir(data.warehouse, run_id) / "report",
            run_id,
            snap,
            fitted.rater_path,
            fitted.ranker_path,
            scored.path,
            metrics,
            fitted.history,
        )
        folder = Path(report_path).parent.resolve()
        create_markdown_artifact(
            key="collabflow-report",
            description=f"Run {run_id} report",
            markdown=Path(report_path).read_text().replace("](", f"]({folder}/")
            + f"\n\nFull report with plots: `{Path(report_path).resolve()}`",
        )
        return str(report_path)
    except Exception as e:  # noqa: BLE001
        logger.warning("run %s: the report could not be written (%s: %s)", run_id, type(e).__name__, e)
        return None


@flow(name=FLOW_NAME, validate_parameters=True)
@from_config
def nightly(**params: Any) -> dict[str, Any]:
    """One night: ingest new ratings, retrain, score every user, publish atomically.

    With no ``source``, a seeded synthetic MovieLens-shaped dataset is generated into the warehouse.
    Returns a small summary (run id, counts, metrics). Every parameter is a setting of
    ``recmodel.config`` (same name, type and default).
    """
    logger = get_run_logger()
    data, cfg = split_flat(**params)
    warehouse = data.warehouse
    with exclusive(warehouse):
        ensure_schema(warehouse)
        covered = already_covered(warehouse)
        if covered:
            logger.info("skipped: %s", covered)
            return {"skipped": covered}
        run_id = new_run_id()
        runs.start_run(
            warehouse,
            run_id,
            data.source,
            {
                **cfg.model_dump(mode="json"),
                "columns": data.columns,
                "delimiter": data.delimiter,
                "max_bad_fraction": data.max_bad_fraction,
            },
            cfg.config_hash(),
            versions(),
        )
        logger.info("run %s started; warehouse %s", run_id, Path(warehouse).resolve())
        try:
            timings: dict[str, float] = {}
            t = time.perf_counter()
            files = _ingest(data, cfg)
            timings["ingest"] = round(time.perf_counter() - t, 3)

            t = time.perf_counter()
            snap = build_index(warehouse, run_id)
            timings["index"] = round(time.perf_counter() - t, 3)

            dev = resolve_device(cfg.train.device).type  # resolved once; tasks get 'cpu' or 'cuda'
            run_path = run_dir(warehouse, run_id)
            t = time.perf_counter()
            run_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": dev})})
            previous = runs.last_published(warehouse)
            warm = WarmSource(previous["run_id"], previous["run_dir"], previous["finished_at"]) if previous else None
            fitted = fit_models(snap, run_cfg, str(run_path), warm)
            timings["train"] = round(time.perf_counter() - t, 3)

            t = time.perf_counter()
            scored = _score(fitted, snap, cfg, str(run_path / "recommendations"))
            timings["score"] = round(time.perf_counter() - t, 3)

            t = time.perf_counter()
            metrics = {
                **fitted.metrics,
                "history": fitted.history,
                "users_short": scored.users_short,
                "cold_start_users": scored.cold_users,
                "cold_start": cfg.cold_start,
            }
            worse = gate.quality_gate(
                previous["metrics"] if previous else None, metrics, cfg.gate_tolerance, cfg.metric_k
            )
            if worse:
                raise runs.RunRejected(
                    f"quality gate: {worse} (run {previous['run_id'] if previous else '-'}); "
                    "the published lists are kept"
                )
            summary = {
                "n_ratings": snap.n_ratings,
                "n_users": snap.n_users,
                "n_items": snap.n_items,
                "device": dev,
                "data_hash": snap.data_hash,
                "metrics": metrics,
                "timings": timings,
            }
            n_recs = publish_run(
                warehouse,
                run_id,
                scored.path,
                summary,
                cfg.top_n,
                cfg.keep_runs,
                scored.similar_path,
                cfg.min_item_ratings,
            )
            timings["publish"] = round(time.perf_counter() - t, 3)
        except runs.RunRejected as e:
            runs.reject_run(warehouse, run_id, str(e))
            logger.error("run %s rejected: %s", run_id, e)
            raise
        except BaseException as e:
            runs.fail_run(warehouse, run_id, f"{type(e).__name__}: {e}")
            logger.error("run %s failed: %s: %s", run_id, type(e).__name__, e)
            raise

    report_path = _report(run_id, data, snap, fitted, scored, metrics)
    _artifacts(run_id, metrics, snap, n_recs, files, dev, cfg.metric_k)
    logger.info(
        "run %s published %d recommendations for %d users (valid RMSE %.4f)",
        run_id,
        n_recs,
        scored.n_users,
        metrics["valid_rmse"] or float("nan"),
    )
    return {
        "run_id": run_id,
        "n_recommendations": n_recs,
        "report": report_path,
        "n_users_scored": scored.n_users,
        "files": files,
        "metrics": {k: v for k, v in metrics.items() if k != "history"},
        "timings": timings,
    }
