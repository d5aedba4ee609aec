"""``collabflow``: run the nightly flow once, read recommendations, generate synthetic data."""
from __future__ import annotations

import atexit
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

import flows  # noqa: F401  (sets Prefect defaults before Prefect is imported)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="collabflow: a nightly collaborative-filtering recommender that publishes top-N lists to DuckDB.",
)

WAREHOUSE_HELP = "Warehouse folder; the database is WAREHOUSE/collabflow.duckdb."


class DeviceChoice(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class RatingModelChoice(str, Enum):
    dot = "dot"
    neural = "neural"


class RankerChoice(str, Enum):
    auto = "auto"
    ials = "ials"
    ease = "ease"
    rating = "rating"
    popularity = "popularity"


class ShapeChoice(str, Enum):
    ml_100k = "ml-100k"
    ml_1m = "ml-1m"
    ml_10m = "ml-10m"
    ml_25m = "ml-25m"


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def fail(command: str, message: str, code: int = 1) -> None:
    typer.echo(f"collabflow {command}: error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def run(
    source: Optional[Path] = typer.Option(
        None, help="Rating file or folder of files (u.data, ratings.dat, ratings.csv, any CSV/TSV/Parquet). "
        "Omit to generate seeded synthetic MovieLens-shaped data."),
    warehouse: Path = typer.Option(Path("warehouse"), help=WAREHOUSE_HELP),
    top_n: int = typer.Option(10, help="Recommendations per user."),
    columns: Optional[str] = typer.Option(
        None, help="Column mapping role=column, e.g. 'user=uid,item=movie,rating=stars,timestamp=ts' "
        "(0-based positions for files without a header)."),
    delimiter: Optional[str] = typer.Option(None, help="Field delimiter; detected from the file name and first line if omitted."),
    rating_min: float = typer.Option(0.5, help="Lowest valid rating; rows below are quarantined."),
    rating_max: float = typer.Option(5.0, help="Highest valid rating; rows above are quarantined."),
    max_bad_fraction: float = typer.Option(0.5, help="Stop (loading nothing from the file) when more than this share of its rows is bad."),
    rating_model: RatingModelChoice = typer.Option(RatingModelChoice.dot, help="Model behind the published score: dot product with biases, or the neural EmbeddingNN."),
    ranker: RankerChoice = typer.Option(RankerChoice.auto, help="Model that orders the lists: auto (EASE up to 10k items, else iALS), ials, ease, rating (the rating model; ranks below popularity) or popularity."),
    relevance_threshold: float = typer.Option(4.0, help="Ratings at or above this count as liked (ranking weight 1, and relevant in metrics)."),
    rank_factors: int = typer.Option(128, help="iALS latent factors."),
    rank_iterations: int = typer.Option(10, help="iALS alternating passes."),
    refit_on_all: bool = typer.Option(True, help="Refit both models on all ratings after measuring them on the validation split."),
    factors: int = typer.Option(50, "--factors", help="Latent factors per user and item (dot model)."),
    epochs: int = typer.Option(5, help="Training epochs."),
    lr: float = typer.Option(5e-3, "--lr", help="Peak learning rate of the one-cycle schedule."),
    wd: float = typer.Option(0.1, help="Weight decay."),
    batch_size: int = typer.Option(512, help="Ratings per optimizer step."),
    valid_pct: float = typer.Option(0.2, help="Share of ratings held out for validation metrics."),
    seed: int = typer.Option(42, help="Seed for the split, initialisation, shuffling and synthetic data."),
    device: DeviceChoice = typer.Option(DeviceChoice.auto, help="auto = CUDA when available, else CPU."),
    score_memory_mb: int = typer.Option(512, help="Memory budget (MB) for one block of scores."),
    synthetic_shape: ShapeChoice = typer.Option(ShapeChoice.ml_100k, help="Shape of the synthetic data used without --source."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Run the nightly flow once: ingest, train, score every user, publish to DuckDB."""
    from pydantic import ValidationError

    from flows.nightly import build_config, nightly

    params = dict(
        source=str(source) if source else None, warehouse=str(warehouse), top_n=top_n, columns=columns,
        delimiter=delimiter, rating_min=rating_min, rating_max=rating_max, max_bad_fraction=max_bad_fraction,
        rating_model=rating_model.value, ranker=ranker.value, relevance_threshold=relevance_threshold,
        rank_factors=rank_factors, rank_iterations=rank_iterations, refit_on_all=refit_on_all,
        n_factors=factors, epochs=epochs, lr_max=lr, wd=wd, batch_size=batch_size, valid_pct=valid_pct,
        seed=seed, device=device.value, score_memory_mb=score_memory_mb, synthetic_shape=synthetic_shape.value,
    )
    try:  # reject bad values before starting Prefect
        build_config(**params)
    except ValidationError as e:
        err = e.errors()[0]
        fail("run", f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}", 2)
    if source is not None and not source.exists():
        fail("run", f"--source {source} does not exist", 2)
    # Prefect stops its temporary server in an atexit hook, logging one more line; a hook registered
    # before the flow starts runs after it (LIFO), so the reason stays the last line a cron mail shows.
    last_words: list[str] = []
    atexit.register(lambda: last_words and print(last_words[0], file=sys.stderr, flush=True))
    state = nightly(**params, return_state=True)
    if not state.is_completed():
        exc = state.result(raise_on_failure=False)
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(state.message)
        last_words.append(f"collabflow run: error: {' '.join(message.split())}")
        raise typer.Exit(1)
    summary = state.result()
    if as_json:
        typer.echo(json.dumps(summary, default=str))
    else:
        m = summary["metrics"]
        typer.echo(f"run {summary['run_id']}: {summary['n_recommendations']} recommendations for "
                   f"{summary['n_users_scored']} users; {m['rating_model']} valid RMSE {_fmt(m['valid_rmse'])}, "
                   f"{m['ranker']} NDCG@10 {_fmt(m.get('ndcg_at_10'))}; database {warehouse / 'collabflow.duckdb'}")


class SplitChoice(str, Enum):
    random = "random"
    temporal = "temporal"
    leave_last = "leave-last"


@app.command()
def evaluate(
    source: Optional[Path] = typer.Option(None, help="Ratings to split into train and test (any format `run` reads)."),
    train: Optional[Path] = typer.Option(None, help="Your own training file (use with --test instead of --source)."),
    test: Optional[Path] = typer.Option(None, help="Your own test file (use with --train)."),
    split: SplitChoice = typer.Option(SplitChoice.random, help="random (seeded), temporal (latest ratings are the test) "
                                      "or leave-last (each user's latest --leave-last-n ratings)."),
    test_pct: float = typer.Option(0.2, help="Share of ratings in the test part (random and temporal)."),
    leave_last_n: int = typer.Option(1, help="Ratings per user held out by the leave-last split."),
    seed: int = typer.Option(42, help="Seed for the split and every model."),
    warehouse: Optional[Path] = typer.Option(None, help="Also store the results in WAREHOUSE/collabflow.duckdb (table evaluations)."),
    columns: Optional[str] = typer.Option(None, help="Column mapping, as for `run`."),
    delimiter: Optional[str] = typer.Option(None, help="Field delimiter, as for `run`."),
    rating_min: float = typer.Option(0.5, help="Lowest valid rating."),
    rating_max: float = typer.Option(5.0, help="Highest valid rating."),
    rating_model: RatingModelChoice = typer.Option(RatingModelChoice.dot, help="Rating model the nightly flow would publish."),
    ranker: RankerChoice = typer.Option(RankerChoice.auto, help="Ranker the nightly flow would publish."),
    device: DeviceChoice = typer.Option(DeviceChoice.auto, help="auto = CUDA when available, else CPU."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: models and baselines by name, "
                                 "'published' for the nightly flow's configuration."),
) -> None:
    """Compare every model with the baselines (global mean, bias-only, popularity) on one split."""
    from pydantic import ValidationError

    from flows.evaluate import TABLE_METRICS, evaluate as evaluate_flow
    from recmodel.config import RunConfig

    config = dict(seed=seed, rating_min=rating_min, rating_max=rating_max, rating_model=rating_model.value,
                  ranker=ranker.value, device=device.value)
    try:
        RunConfig.from_flat(**config)
    except ValidationError as e:
        err = e.errors()[0]
        fail("evaluate", f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}", 2)
    if (train is None) != (test is None) or (train is None) == (source is None):
        fail("evaluate", "give either --source (to be split) or both --train and --test", 2)
    for path in (source, train, test):
        if path is not None and not path.exists():
            fail("evaluate", f"{path} does not exist", 2)
    last_words: list[str] = []
    atexit.register(lambda: last_words and print(last_words[0], file=sys.stderr, flush=True))
    state = evaluate_flow(source=str(source) if source else None, train=str(train) if train else None,
                          test=str(test) if test else None, split=split.value, test_pct=test_pct,
                          leave_last_n=leave_last_n, warehouse=str(warehouse) if warehouse else None,
                          columns=columns, delimiter=delimiter, config=config, return_state=True)
    if not state.is_completed():
        exc = state.result(raise_on_failure=False)
        message = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(state.message)
        last_words.append(f"collabflow evaluate: error: {' '.join(message.split())}")
        raise typer.Exit(1)
    evaluation = state.result()
    results = evaluation["results"]
    if as_json:
        typer.echo(json.dumps({**results, "evaluation": {"split": evaluation["split"], **evaluation["details"],
                                                         "evaluation_id": evaluation.get("evaluation_id")}}, default=str))
        return
    d = evaluation["details"]
    typer.echo(f"{evaluation['split']} split: {d['n_train']} train / {d['n_test']} test ratings; "
               f"relevant = test rating >= {d['config']['rank']['relevance_threshold']}")
    typer.echo(f"{'model':<12}" + "".join(f"{m:>16}" for m in TABLE_METRICS))
    for name, metrics in results.items():
        typer.echo(f"{name:<12}" + "".join(
            f"{metrics[m]:>16.4f}" if isinstance(metrics.get(m), float) else f"{'':>16}" for m in TABLE_METRICS))
    pub = results["published"]
    typer.echo(f"published = {pub['ranker']} lists with {pub['rating_model']} scores")


@app.command()
def recommend(
    user_id: int = typer.Argument(..., help="Raw user id, as in the rating files."),
    warehouse: Path = typer.Option(Path("warehouse"), help=WAREHOUSE_HELP),
    n: Optional[int] = typer.Option(None, "--n", help="Show at most this many (default: the whole list)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print a user's recommendations from the latest successful run."""
    from tasks import warehouse as wh

    try:
        with wh.connect(warehouse, read_only=True) as con:
            rows = con.execute(
                "select run_id, rank, item_id, score from latest_recommendations where user_id = ? order by rank",
                [user_id],
            ).fetchall()
            known = rows or con.execute("select count(*) from ratings where user_id = ?", [user_id]).fetchone()[0]
    except (FileNotFoundError, RuntimeError) as e:
        fail("recommend", str(e))
    if not rows:
        why = ("the user has ratings but no list in the latest run; rerun `collabflow run`" if known
               else "no such user in the warehouse (ids are the raw ids of the rating files)")
        fail("recommend", f"no recommendations for user {user_id}: {why}")
    rows = rows[:n] if n else rows
    if as_json:
        typer.echo(json.dumps({"user_id": user_id, "run_id": rows[0][0], "recommendations": [
            {"rank": r, "item_id": i, "score": s} for _, r, i, s in rows]}))
        return
    typer.echo(f"user {user_id} (run {rows[0][0]})")
    typer.echo(f"{'rank':>4}  {'item_id':>10}  {'score':>6}")
    for _, rank, item, score in rows:
        typer.echo(f"{rank:>4}  {item:>10}  {score:>6.3f}")


@app.command()
def generate(
    out: Path = typer.Option(..., help="Folder to write into."),
    shape: ShapeChoice = typer.Option(ShapeChoice.ml_100k, help="Users x items x ratings of a MovieLens release."),
    seed: int = typer.Option(42, help="Same shape and seed give identical data."),
    fmt: str = typer.Option("parquet", "--format", help="parquet (ratings.parquet), csv (ratings.csv) or udata (u.data)."),
) -> None:
    """Write seeded synthetic MovieLens-shaped ratings that `collabflow run --source` reads."""
    from recmodel import synth

    if fmt not in synth.FORMATS:
        fail("generate", f"--format must be one of {', '.join(synth.FORMATS)}", 2)
    try:
        path = synth.write(synth.generate(shape.value, seed), out, fmt)
    except ValueError as e:
        fail("generate", str(e), 2)
    typer.echo(str(path))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
