"""The nightly flow: ingest -> index -> train -> score all unseen pairs -> publish a new served snapshot.

One night is one unit: what it reads becomes visible to readers only with its publish (``store.publish``),
and a refused, rejected or crashed night leaves the served snapshot exactly as it was.
"""

from __future__ import annotations

import json
import logging
import platform
import resource
import time
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import httpx
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import PrefectFuture

import flows  # noqa: F401  (Prefect defaults and our log levels, also when a worker loads this file by path)
from flows import heap
from flows.artifacts import comparison_table
from flows.parameters import from_config
from recmodel import synth
from recmodel.config import DataConfig, RunConfig, split_flat
from recmodel.device import resolve_device
from recmodel.fitting import FitOutcome, WarmSource
from recmodel.lists import RunLists, combine, shard_ranges
from recmodel.snapshot import Snapshot
from store import faults, gate, runs
from store.ingest import InputRules, StagedNight
from store.lock import exclusive
from store.night import IngestedFile
from store.paths import new_run_id, run_dir
from store.publish import Published
from store.retention import remove_run_folders
from store.state import open_warehouse
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


def _stage(run_id: str, data: DataConfig, cfg: RunConfig) -> StagedNight:
    """Tonight's rating files, item and user metadata, validated into the run's folder."""
    src, items_src = (
        (data.source, data.items)
        if data.source
        else default_source(data.warehouse, data.synthetic_shape, cfg.train.seed)
    )
    items_src = data.items or items_src
    rules = InputRules(
        data.columns,
        data.delimiter,
        cfg.rating_min,
        cfg.rating_max,
        data.max_bad_fraction,
        data.feedback,
        data.timestamp_min,
        data.settle_seconds if Path(src).is_dir() else 0.0,
        data.max_line_bytes,
        data.max_field_bytes,
        data.max_file_bytes,
    )
    files, kind = ingest_ratings(data.warehouse, run_id, src, rules)
    bad: list[str] = []
    items = users = None
    if items_src:
        items, quarantined = ingest_items(
            data.warehouse, run_id, items_src, data.item_columns, kind.id_types.get("item", "int")
        )
        bad += [quarantined] if quarantined else []
    if data.users:
        users, quarantined = ingest_users(data.warehouse, run_id, data.users, kind.id_types.get("user", "int"))
        bad += [quarantined] if quarantined else []
    return StagedNight(run_id, files, items, users, bad, kind)


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
    return combine(parts, extras, cfg.top_n)


def _artifacts(
    run_id: str,
    metrics: dict[str, Any],
    snap: Snapshot,
    published: Published,
    files: list[IngestedFile],
    device: str,
    k: int,
) -> None:
    loaded = [f for f in files if f.staged is not None]
    table = comparison_table(metrics.get("models", {}), k)
    create_table_artifact(
        key="collabflow-model-comparison",
        table=table or [{"model": "-", "note": "valid_pct=0"}],
        description=f"Run {run_id}: validation metrics of the published models and the baselines",
    )
    tuning = metrics.get("tuning")
    if tuning and tuning.get("trials"):
        create_table_artifact(
            key="collabflow-tuning",
            table=[
                {
                    "model": t["model"],
                    "changed": json.dumps(t["params"]) if t["params"] else "(configured)",
                    "score": t["score"],
                    "seconds": t["seconds"],
                }
                for t in tuning["trials"]
            ],
            description=f"Run {run_id}: tuning trials on the validation part (rankers: "
            f"{tuning['metric']['ranker']}, higher is better; rating models: RMSE, lower is better); chosen: "
            f"{json.dumps(tuning['changed']) if tuning['changed'] else 'the configured settings'}",
        )
    rows = {
        "version": published.version,
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
        "n_recommendations": published.n_recommendations,
        "files_ingested": len(loaded),
        "files_refused": sum(1 for f in files if f.refused),
        "rows_quarantined": sum(f.rows_quarantined for f in loaded),
    }
    create_table_artifact(
        key="collabflow-run-metrics",
        table=[{"metric": m, "value": v} for m, v in rows.items()],
        description=f"Run {run_id} ({device})",
    )


def _after_publish(
    run_id: str,
    data: DataConfig,
    cfg: RunConfig,
    snap: Snapshot,
    metrics: dict[str, Any],
    published: Published,
    files: list[IngestedFile],
    device: str,
    report: PrefectFuture[Path],
) -> str | None:
    """Retention, the report (``report``: its task, submitted before the publish) and the artifacts. The night
    is published already: nothing here can unpublish it, so every failure is a warning. Once a step has found
    the Prefect API unreachable, the artifacts are skipped: every call to a lost API waits for its retries (the
    report is a file and is written anyway)."""
    logger = get_run_logger()
    report_path = None
    api_lost = False
    steps = ("retention", "report", "artifacts")
    for step in steps:
        try:
            if step == "retention":
                remove_run_folders(data.warehouse, keep=cfg.keep_runs)
            elif step == "report":
                path = report.result()
                report_path = str(path)
                folder = Path(path).parent.resolve()
                create_markdown_artifact(
                    key="collabflow-report",
                    description=f"Run {run_id} report",
                    markdown=Path(path).read_text().replace("](", f"]({folder}/")
                    + f"\n\nFull report with plots: `{Path(path).resolve()}`",
                )
            elif not api_lost:
                _artifacts(run_id, metrics, snap, published, files, device, cfg.metric_k)
            else:
                logger.warning(
                    "run %s is published (version %d); the Prefect API is unreachable, so no artifacts tonight",
                    run_id,
                    published.version,
                )
        except Exception as e:  # noqa: BLE001
            api_lost = api_lost or isinstance(e, httpx.TransportError)
            logger.warning(
                "run %s is published (version %d), but its %s failed: %s: %s",
                run_id,
                published.version,
                step,
                type(e).__name__,
                " ".join(str(e).split())[:500],
            )
    return report_path


@flow(name=FLOW_NAME, validate_parameters=True)
@from_config
def nightly(**params: Any) -> dict[str, Any]:
    """One night: ingest new ratings, retrain, score every user, publish a new version for readers.

    With no ``source``, a seeded synthetic MovieLens-shaped dataset is generated into the warehouse.
    Returns a small summary (run id, version, counts, metrics). Every parameter is a setting of
    ``recmodel.config`` (same name, type and default).
    """
    heap.settle()
    logger = get_run_logger()
    data, cfg = split_flat(**params)
    warehouse = data.warehouse
    k = cfg.metric_k
    with exclusive(warehouse):
        open_warehouse(warehouse)
        covered = already_covered(warehouse)
        if covered:
            logger.info("skipped: %s", covered)
            return {"skipped": covered}
        run_id = new_run_id()
        config = {
            **cfg.model_dump(mode="json"),
            "columns": data.columns,
            "delimiter": data.delimiter,
            "max_bad_fraction": data.max_bad_fraction,
        }
        runs.start_run(warehouse, run_id, data.source, config, cfg.config_hash(), versions())
        logger.info("run %s started; warehouse %s", run_id, Path(warehouse).resolve())
        try:
            report: PrefectFuture[Path] | None = None
            timings: dict[str, float] = {}
            peaks: dict[str, float] = {}  # the process's peak RSS (GB) after each stage: where memory goes

            def done(stage: str, since: float) -> None:
                timings[stage] = round(time.perf_counter() - since, 3)
                peaks[stage] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
                logger.info("%s took %.1fs; peak memory so far %.2f GB", stage, timings[stage], peaks[stage])

            t = time.perf_counter()
            staged = _stage(run_id, data, cfg)
            done("ingest", t)

            t = time.perf_counter()
            plan, snap = build_index(warehouse, staged)
            done("index", t)

            dev = resolve_device(cfg.train.device).type  # resolved once; tasks get 'cpu' or 'cuda'
            run_path = run_dir(warehouse, run_id)
            t = time.perf_counter()
            run_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"device": dev})})
            previous = runs.last_published(warehouse)
            warm = (
                WarmSource(
                    previous["run_id"],
                    previous["run_dir"],
                    previous["metrics"].get("tuning"),
                    previous["metrics"].get("model_files"),
                )
                if previous
                else None
            )
            fitted = fit_models(snap, run_cfg, str(run_path), warm)
            runs.record_trained_config(warehouse, run_id, fitted.config)
            done("train", t)

            t = time.perf_counter()
            scored = _score(fitted, snap, cfg, str(run_path / "recommendations"))
            done("score", t)

            t = time.perf_counter()
            metrics = {
                **fitted.metrics,
                "history": fitted.history,
                "users_short": scored.users_short,
                "cold_start_users": scored.cold_users,
                "cold_start": cfg.cold_start,
                "measured": gate.measured(fitted.metrics, k),
            }
            last = runs.last_measured(warehouse, k)
            worse = gate.quality_gate(
                last["metrics"] if last else None, metrics, cfg.gate_tolerance, k, cfg.allow_unmeasured
            )
            if worse:
                raise runs.RunRejected(
                    f"quality gate: {worse}"
                    + (f" (compared with run {last['run_id']})" if last else "")
                    + "; the published lists are kept"
                )
            summary = {
                "n_ratings": snap.n_ratings,
                "n_users": snap.n_users,
                "n_items": snap.n_items,
                "device": dev,
                "data_hash": snap.data_hash,
                "metrics": metrics,
                "timings": timings,
                "peak_rss_gb": peaks,
            }
            # the report reads only this run's own files: drawn (matplotlib, mostly one core) while the
            # publish's DuckDB work runs, and collected after it (a failed report is a warning, as before)
            report = write_run_report.submit(
                str(run_path / "report"),
                run_id,
                snap,
                fitted.rater_path,
                fitted.ranker_path,
                scored.parts,
                metrics,
                fitted.history,
            )
            published = publish_run(
                warehouse, run_id, plan, scored, summary, cfg.top_n, cfg.keep_runs, cfg.min_item_ratings
            )
            done("publish", t)
            faults.point("published")
        except runs.RunRejected as e:
            runs.reject_run(warehouse, run_id, str(e))
            logger.error("run %s rejected: %s", run_id, e)
            raise
        except BaseException as e:
            runs.fail_run(warehouse, run_id, f"{type(e).__name__}: {e}")
            logger.error("run %s failed: %s: %s", run_id, type(e).__name__, e)
            if report is not None:  # drawing a report of a run that failed: let it end before the flow does
                report.wait()
            raise
        t = time.perf_counter()  # after the publish, so only in the summary: retention, report, artifacts
        report_path = _after_publish(run_id, data, cfg, snap, metrics, published, plan.files, dev, report)
        done("report", t)

    for f in plan.files:
        if f.refused:
            logger.warning("file refused and parked (skipped until it changes): %s", f.refused)
    k = cfg.metric_k
    measured = f"{metrics['ranker']} NDCG@{k} {metrics.get(f'ndcg_at_{k}') or float('nan'):.4f}"
    if metrics.get("valid_rmse") is not None:
        measured += f", {metrics['rating_model']} valid RMSE {metrics['valid_rmse']:.4f}"
    logger.info(
        "run %s published as version %d: %d recommendations for %d users (%s)",
        run_id,
        published.version,
        published.n_recommendations,
        scored.n_users,
        measured,
    )
    return {
        "run_id": run_id,
        "version": published.version,
        "n_recommendations": published.n_recommendations,
        "report": report_path,
        "n_users_scored": scored.n_users,
        "files": [asdict(f) for f in plan.files],
        "metrics": {key: v for key, v in metrics.items() if key != "history"},
        "timings": timings,
        "peak_rss_gb": peaks,
    }
