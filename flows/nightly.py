"""The nightly flow: ingest -> index -> train -> score all unseen pairs -> publish top-N to DuckDB."""
from __future__ import annotations

import logging
import platform
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal

import flows  # noqa: F401  (Prefect defaults and our log levels, also when a worker loads this file by path)
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.artifacts import comparison_table

from recmodel import synth
from recmodel.config import ColdStart, RatingModel, Ranker, RunConfig
from recmodel.device import resolve_device
from tasks import warehouse as wh
from tasks.index import build_index
from tasks.ingest import ingest_items, ingest_ratings, ingest_users
from tasks.publish import publish_run
from tasks.report import write_run_report
from tasks.score import combine, score_extra_lists, score_shard, shard_ranges
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


IO_HELP = {
    "source": "Rating file or folder of files (u.data, ratings.dat, ratings.csv, any CSV/TSV/Parquet, optionally "
              "gzipped). Omit to generate seeded synthetic MovieLens-shaped data into the warehouse.",
    "warehouse": "Warehouse folder; the database is WAREHOUSE/collabflow.duckdb.",
    "columns": "Column mapping role=column, e.g. 'user=uid,item=movie,rating=stars,timestamp=ts' "
               "(0-based positions for files without a header).",
    "delimiter": "Field delimiter; detected from the file name and first line if omitted.",
    "max_bad_fraction": "Refuse a file (loading nothing from it) when more than this share of its rows is bad.",
    "synthetic_shape": "Shape of the synthetic data generated when no source is given.",
    "items": "Optional item metadata (u.item, movies.csv, items.tsv, or any CSV/Parquet with item id and title) so "
             "the views show titles.",
    "item_columns": "Column mapping for --items, e.g. 'item=sku,title=name,genres=category'.",
    "users": "Optional user metadata (MovieLens u.user, or a CSV/Parquet with user_id and feature columns); "
             "users in it without ratings get cold-start lists.",
}
IO_PARAMS = tuple(IO_HELP)


def parameter_help() -> dict[str, str]:
    """One line per flow parameter: the I/O ones above, the rest from the config classes' field docs."""
    from recmodel.config import RankConfig, TrainConfig

    out = dict(IO_HELP)
    for model in (RunConfig, TrainConfig, RankConfig):
        out.update({name: f.description or "" for name, f in model.model_fields.items() if name not in ("train", "rank")})
    return out


def already_covered(warehouse: str) -> str | None:
    """For a scheduled run: why it is redundant, if a run that started after its slot already succeeded.

    After downtime Prefect runs every missed night; ``concurrency_limit=1`` queues them, and all but the
    first then find their night covered: a missed night runs once.
    """
    from prefect.runtime import deployment, flow_run

    if not deployment.id:
        return None
    slot = flow_run.scheduled_start_time
    newer = wh.succeeded_since(warehouse, slot)
    return f"run {newer} started after this run's slot ({slot}) and succeeded" if newer else None


def build_config(**params) -> RunConfig:
    """The run's typed config from the flow's flat parameters (I/O parameters are left out)."""
    return RunConfig.from_flat(**{k: v for k, v in params.items() if k not in IO_PARAMS})


@flow(name=FLOW_NAME, description=__doc__, validate_parameters=True)
def nightly(
    source: str | None = None,
    warehouse: str = "warehouse",
    top_n: int = 10,
    similar_n: int = 10,
    cold_start: ColdStart = "metadata",
    min_item_ratings: int = 1,
    columns: str | None = None,
    delimiter: str | None = None,
    rating_min: float = 0.5,
    rating_max: float = 5.0,
    max_bad_fraction: float = 0.5,
    rating_model: RatingModel = "dot",
    ranker: Ranker = "ials",
    n_factors: int = 50,
    epochs: int = 5,
    lr_max: float = 5e-3,
    wd: float = 0.1,
    batch_size: int = 512,
    max_steps_per_epoch: int = 1000,
    y_range: tuple[float, float] = (0.0, 5.5),
    valid_pct: float = 0.2,
    seed: int = 42,
    device: Literal["auto", "cpu", "cuda"] = "auto",
    score_memory_mb: int = 512,
    score_shards: int = 1,
    gate_tolerance: float | None = 0.05,
    keep_runs: int = 7,
    warm_start: bool = False,
    warm_epochs: int = 2,
    warm_rank_iterations: int = 3,
    refit_on_all: bool = True,
    refit_continue_from: int = 5_000_000,
    nn_hidden: int = 100,
    nn_epochs: int = 10,
    nn_lr_max: float = 1e-2,
    nn_wd: float = 0.5,
    relevance_threshold: float = 4.0,
    rank_low_rating_weight: float = 0.5,
    rank_factors: int = 128,
    rank_reg: float = 0.025,
    rank_unobserved_weight: float = 0.1,
    rank_iterations: int = 10,
    rank_cg_steps: int = 3,
    ease_lambda: float = 400.0,
    synthetic_shape: Literal["ml-100k", "ml-1m", "ml-10m", "ml-25m"] = "ml-100k",
    items: str | None = None,
    item_columns: str | None = None,
    users: str | None = None,
) -> dict:
    """One night: ingest new ratings, retrain, score every user, publish atomically.

    With no ``source``, a seeded synthetic MovieLens-shaped dataset is generated into the warehouse.
    Returns a small summary (run id, counts, metrics).
    """
    logger = get_run_logger()
    params = dict(locals())
    params.pop("logger")
    cfg = build_config(**params)
    with wh.exclusive(warehouse):
        wh.ensure_schema(warehouse)
        covered = already_covered(warehouse)
        if covered:
            logger.info("skipped: %s", covered)
            return {"skipped": covered}
        run_id = wh.new_run_id()
        wh.start_run(warehouse, run_id, source, {**cfg.model_dump(mode="json"), "columns": columns,
                     "delimiter": delimiter, "max_bad_fraction": max_bad_fraction}, cfg.config_hash(), versions())
        logger.info("run %s started; warehouse %s", run_id, Path(warehouse).resolve())
        try:
            timings: dict[str, float] = {}
            t = time.perf_counter()
            src, items_src = (source, items) if source else default_source(warehouse, synthetic_shape, seed)
            files = ingest_ratings(src, warehouse, columns, delimiter, rating_min, rating_max, max_bad_fraction)
            if items_src or items:
                ingest_items(items or items_src, warehouse, item_columns)
            if users:
                ingest_users(users, warehouse)
            timings["ingest"] = round(time.perf_counter() - t, 3)

            t = time.perf_counter()
            snap = build_index(warehouse, run_id)
            timings["index"] = round(time.perf_counter() - t, 3)

            dev = resolve_device(device).type  # resolved once; tasks get 'cpu' or 'cuda'
            run_path = wh.run_dir(warehouse, run_id)
            t = time.perf_counter()
            run_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": dev})})
            previous = wh.last_published(warehouse)
            fitted = fit_models(snap, run_cfg, str(run_path / "rater.safetensors"), str(run_path / "ranker.safetensors"),
                                {k: v for k, v in previous.items() if k != "metrics"} if previous else None)
            timings["train"] = round(time.perf_counter() - t, 3)

            t = time.perf_counter()
            # one task per range of users: on a Dask task runner they run on the cluster's workers
            lists = str(run_path / "recommendations")
            shards = [score_shard.submit(fitted["rater_path"], fitted["ranker_path"], snap, top_n, lists, lo, hi,
                                         score_memory_mb, dev, min_item_ratings)
                      for lo, hi in shard_ranges(snap["n_users"], score_shards)]
            parts = [f.result() for f in shards]  # then the rest, so the two never fight over the same cores
            extras = score_extra_lists(fitted["rater_path"], fitted["ranker_path"], snap, top_n, lists,
                                       score_memory_mb, dev, similar_n, warehouse, cold_start)
            scored = combine(lists, parts, extras, top_n)
            timings["score"] = round(time.perf_counter() - t, 3)

            t = time.perf_counter()
            metrics = {**fitted["metrics"], "history": fitted["history"], "users_short": scored["users_short"],
                       "cold_start_users": scored["cold_users"], "cold_start": cold_start}
            worse = wh.quality_gate(previous["metrics"] if previous else None, metrics, cfg.gate_tolerance)
            if worse:
                raise wh.RunRejected(f"quality gate: {worse} (run {previous['run_id']}); the published lists are kept")
            summary = {"n_ratings": snap["n_ratings"], "n_users": snap["n_users"], "n_items": snap["n_items"],
                       "device": dev, "data_hash": snap["data_hash"], "metrics": metrics, "timings": timings}
            n_recs = publish_run(warehouse, run_id, scored["path"], summary, top_n, cfg.keep_runs, scored["similar_path"],
                                 min_item_ratings)
            timings["publish"] = round(time.perf_counter() - t, 3)
        except wh.RunRejected as e:
            wh.reject_run(warehouse, run_id, str(e))
            logger.error("run %s rejected: %s", run_id, e)
            raise
        except BaseException as e:
            wh.fail_run(warehouse, run_id, f"{type(e).__name__}: {e}")
            logger.error("run %s failed: %s: %s", run_id, type(e).__name__, e)
            raise

    report_path = None
    try:  # the lists are already published: a report that fails is logged, not fatal
        report_path = write_run_report(warehouse, run_id, snap, fitted["rater_path"], fitted["ranker_path"],
                                       scored["path"], metrics, fitted["history"])
        create_markdown_artifact(
            key="collabflow-report", description=f"Run {run_id} report",
            markdown=Path(report_path).read_text().replace("](", f"]({Path(report_path).parent.resolve()}/")
            + f"\n\nFull report with plots: `{Path(report_path).resolve()}`",
        )
    except Exception as e:  # noqa: BLE001
        logger.warning("run %s: the report could not be written (%s: %s)", run_id, type(e).__name__, e)
    ingested = [f for f in files if not f["skipped"]]
    table = comparison_table(metrics.get("models", {}))
    create_table_artifact(key="collabflow-model-comparison", table=table or [{"model": "-", "note": "valid_pct=0"}],
                          description=f"Run {run_id}: validation metrics of the published models and the baselines")
    table = [
        {"metric": "rating_model", "value": metrics["rating_model"]},
        {"metric": "ranker", "value": metrics["ranker"]},
        {"metric": "valid_rmse", "value": metrics["valid_rmse"]},
        {"metric": "valid_mae", "value": metrics["valid_mae"]},
        {"metric": "ndcg_at_10", "value": metrics.get("ndcg_at_10")},
        {"metric": "coverage_at_10", "value": metrics.get("coverage_at_10")},
        {"metric": "train_seconds", "value": metrics["train_seconds"]},
        {"metric": "n_ratings", "value": snap["n_ratings"]},
        {"metric": "n_users", "value": snap["n_users"]},
        {"metric": "n_items", "value": snap["n_items"]},
        {"metric": "n_recommendations", "value": n_recs},
        {"metric": "files_ingested", "value": len(ingested)},
        {"metric": "rows_quarantined", "value": sum(f["rows_quarantined"] for f in ingested)},
    ]
    create_table_artifact(key="collabflow-run-metrics", table=table, description=f"Run {run_id} ({dev})")
    logger.info("run %s published %d recommendations for %d users (valid RMSE %.4f)", run_id, n_recs,
                scored["n_users"], metrics["valid_rmse"] or float("nan"))
    return {"run_id": run_id, "n_recommendations": n_recs, "report": report_path, "n_users_scored": scored["n_users"],
            "files": files, "metrics": {k: v for k, v in metrics.items() if k != "history"}, "timings": timings}
