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


class ShapeChoice(str, Enum):
    ml_100k = "ml-100k"
    ml_1m = "ml-1m"
    ml_10m = "ml-10m"
    ml_25m = "ml-25m"


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
    factors: int = typer.Option(50, "--factors", help="Latent factors per user and item."),
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
        n_factors=factors, epochs=epochs, lr_max=lr, wd=wd, batch_size=batch_size, valid_pct=valid_pct,
        seed=seed, device=device.value, score_memory_mb=score_memory_mb, synthetic_shape=synthetic_shape.value,
    )
    try:  # reject bad values before starting Prefect
        build_config(**{k: v for k, v in params.items() if k not in (
            "source", "warehouse", "columns", "delimiter", "max_bad_fraction", "synthetic_shape")})
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
                   f"{summary['n_users_scored']} users; valid RMSE {m['valid_rmse']}; database {warehouse / 'collabflow.duckdb'}")


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
