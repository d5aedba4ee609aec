"""``collabflow``: run or serve the nightly flow, evaluate models, and read the warehouse.

Exit codes: 0 success, 1 the work failed (the reason is the last line on stderr), 2 bad usage.
"""
from __future__ import annotations

import atexit
import functools
import inspect
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import typer

import flows  # noqa: F401  (sets Prefect defaults before Prefect is imported)
from flows.nightly import nightly, parameter_help

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="collabflow: a nightly collaborative-filtering recommender that publishes top-N lists to DuckDB. "
         "Settings: defaults < collabflow.toml (or --config / $COLLABFLOW_CONFIG) < COLLABFLOW_<NAME> "
         "environment variables < flags.",
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")

WAREHOUSE_OPTION = typer.Option(Path("warehouse"), help="Warehouse folder; the database is WAREHOUSE/collabflow.duckdb.")
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def _fmt(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def fail(command: str, message: str, code: int = 1) -> None:
    typer.echo(f"collabflow {command}: error: {message}", err=True)
    raise typer.Exit(code)


def _last_words(command: str) -> list[str]:
    """Prefect stops its temporary server in an atexit hook, logging one more line; a hook registered
    before the flow starts runs after it (LIFO), so the reason stays the last line a cron mail shows."""
    words: list[str] = []
    atexit.register(lambda: words and print(words[0], file=sys.stderr, flush=True))
    return words


def _state_error(state) -> str:
    exc = state.result(raise_on_failure=False)
    message = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(state.message)
    return " ".join(message.split())


def with_nightly_options(func: Callable) -> Callable:
    """Give a command one option per nightly-flow parameter (same names, types and defaults)."""
    from flows.settings import flow_parameters

    helps = parameter_help()
    extra = []
    for name, p in flow_parameters().items():
        extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=p.annotation,
                                       default=typer.Option(p.default, help=helps.get(name, ""), show_default=True)))
    own = list(inspect.signature(func).parameters.values())

    @functools.wraps(func)
    def wrapper(**kwargs):
        params = {k: kwargs.pop(k) for k in list(kwargs) if k not in {p.name for p in own}}
        return func(params=params, **kwargs)

    wrapper.__signature__ = inspect.Signature([p for p in own if p.name != "params"] + extra)
    return wrapper


def _validated(command: str, params: dict[str, Any]) -> dict[str, Any]:
    from pydantic import ValidationError

    from flows.nightly import build_config

    try:
        build_config(**params)
    except ValidationError as e:
        err = e.errors()[0]
        fail(command, f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}", 2)
    if params.get("source") and not Path(params["source"]).exists():
        fail(command, f"--source {params['source']} does not exist", 2)
    return params


DASK_ADDRESS_OPTION = typer.Option(
    None, help="Run the scoring shards (--score-shards) on this Dask scheduler, e.g. tcp://10.0.0.5:8786. Needs "
    "`pip install 'collabflow[dask]'` here and on the workers, the same warehouse path on every machine, and a "
    "Prefect server (PREFECT_API_URL).")
DASK_WORKERS_OPTION = typer.Option(0, help="Start a local Dask cluster of this many worker processes for the "
                                   "scoring shards (0: no Dask). Needs a Prefect server (PREFECT_API_URL).")


@app.command()
@with_nightly_options
def run(params: dict, as_json: bool = JSON_OPTION, dask_address: Optional[str] = DASK_ADDRESS_OPTION,
        dask_workers: int = DASK_WORKERS_OPTION) -> None:
    """Run the nightly flow once: ingest, train, score every user, publish to DuckDB."""
    from flows.scaleout import nightly_on_dask

    params = _validated("run", params)
    try:
        flow = nightly_on_dask(dask_address, dask_workers) if dask_address or dask_workers else nightly
    except RuntimeError as e:
        fail("run", str(e), 2)
    last_words = _last_words("run")
    state = flow(**params, return_state=True)
    if not state.is_completed():
        last_words.append(f"collabflow run: error: {_state_error(state)}")
        raise typer.Exit(1)
    summary = state.result()
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    if summary.get("skipped"):
        typer.echo(f"skipped: {summary['skipped']}")
        return
    m = summary["metrics"]
    typer.echo(f"run {summary['run_id']}: {summary['n_recommendations']} recommendations for "
               f"{summary['n_users_scored']} users; {m['rating_model']} valid RMSE {_fmt(m['valid_rmse'])}, "
               f"{m['ranker']} NDCG@10 {_fmt(m.get('ndcg_at_10'))}; database {Path(params['warehouse']) / 'collabflow.duckdb'}")


@app.command()
@with_nightly_options
def serve(
    params: dict,
    cron: str = typer.Option("0 2 * * *", help="When the nightly run starts (cron syntax)."),
    timezone: str = typer.Option("UTC", help="Time zone of the cron schedule, e.g. Europe/Berlin."),
    name: str = typer.Option("nightly", help="Deployment name, shown in the Prefect UI."),
) -> None:
    """Register the nightly flow as a scheduled Prefect deployment and serve it until stopped.

    Needs a Prefect server (PREFECT_API_URL). Stopping `serve` leaves the schedule active, two nights
    never overlap, and after downtime the missed night runs once.
    """
    from flows.deploy import serve_nightly

    params = _validated("serve", params)
    try:
        serve_nightly(params, cron=cron, timezone=timezone, name=name)
    except (ValueError, RuntimeError) as e:
        fail("serve", str(e))


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
    rating_model: str = typer.Option("dot", help="Rating model the nightly flow would publish: dot or neural."),
    ranker: str = typer.Option("ials", help="Ranker the nightly flow would publish: ials, ease, rating or popularity."),
    device: str = typer.Option("auto", help="auto (CUDA when available, else CPU), cpu or cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: models and baselines by name, "
                                 "'published' for the nightly flow's configuration."),
) -> None:
    """Compare every model with the baselines (global mean, bias-only, popularity) on one split."""
    from pydantic import ValidationError

    from flows.evaluate import TABLE_METRICS, evaluate as evaluate_flow
    from recmodel.config import RunConfig

    config = dict(seed=seed, rating_min=rating_min, rating_max=rating_max, rating_model=rating_model,
                  ranker=ranker, device=device)
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
    last_words = _last_words("evaluate")
    state = evaluate_flow(source=str(source) if source else None, train=str(train) if train else None,
                          test=str(test) if test else None, split=split.value, test_pct=test_pct,
                          leave_last_n=leave_last_n, warehouse=str(warehouse) if warehouse else None,
                          columns=columns, delimiter=delimiter, config=config, return_state=True)
    if not state.is_completed():
        last_words.append(f"collabflow evaluate: error: {_state_error(state)}")
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


def _read(command: str, warehouse: Path, sql: str, params: list | None = None) -> tuple[list[str], list[tuple]]:
    from tasks import warehouse as wh

    try:
        with wh.connect(warehouse, read_only=True) as con:
            cur = con.execute(sql, params or [])
            return [d[0] for d in cur.description or []], cur.fetchall()
    except (FileNotFoundError, RuntimeError) as e:
        fail(command, str(e))
    except Exception as e:  # a SQL error: say it plainly
        fail(command, " ".join(str(e).split()))
    raise AssertionError("unreachable")


def _print_table(columns: list[str], rows: list[tuple]) -> None:
    cells = [[_fmt(v) if v is not None else "" for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    typer.echo("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        typer.echo("  ".join(v.rjust(w) for v, w in zip(row, widths)))


@app.command()
def recommend(
    user_id: int = typer.Argument(..., help="Raw user id, as in the rating files."),
    warehouse: Path = WAREHOUSE_OPTION,
    n: Optional[int] = typer.Option(None, "--n", help="Show at most this many (default: the whole list)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print a user's recommendations from the latest successful run."""
    _, rows = _read("recommend", warehouse, "select run_id, rank, item_id, score, source, title "
                    "from latest_recommendations where user_id = ? order by rank", [user_id])
    if not rows:
        _, known = _read("recommend", warehouse, "select count(*) from ratings where user_id = ?", [user_id])
        why = ("the user has ratings but no list in the latest run; rerun `collabflow run`" if known[0][0]
               else "no such user in the warehouse (ids are the raw ids of the rating files)")
        fail("recommend", f"no recommendations for user {user_id}: {why}")
    rows = rows[:n] if n else rows
    if as_json:
        typer.echo(json.dumps({"user_id": user_id, "run_id": rows[0][0], "source": rows[0][4], "recommendations": [
            {"rank": r, "item_id": i, "score": s, "title": t} for _, r, i, s, _, t in rows]}))
        return
    typer.echo(f"user {user_id} (run {rows[0][0]}, {rows[0][4]})")
    _print_table(["rank", "item_id", "score", "title"], [(r, i, s, t or "") for _, r, i, s, _, t in rows])


@app.command()
def similar(
    item_id: int = typer.Argument(..., help="Raw item id, as in the rating files."),
    warehouse: Path = WAREHOUSE_OPTION,
    n: Optional[int] = typer.Option(None, "--n", help="Show at most this many (default: all kept)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print the items most similar to ITEM_ID (cosine on item factors) from the latest successful run."""
    _, rows = _read("similar", warehouse, "select run_id, title, rank, similar_item_id, similar_title, similarity "
                    "from latest_similar_items where item_id = ? order by rank", [item_id])
    if not rows:
        fail("similar", f"no similar items for item {item_id}: not in the latest run's catalog "
                        "(ids are the raw ids of the rating files)")
    rows = rows[:n] if n else rows
    if as_json:
        typer.echo(json.dumps({"item_id": item_id, "title": rows[0][1], "run_id": rows[0][0], "similar": [
            {"rank": r, "item_id": i, "title": t, "similarity": s} for _, _, r, i, t, s in rows]}))
        return
    typer.echo(f"item {item_id}{f' ({rows[0][1]})' if rows[0][1] else ''} (run {rows[0][0]})")
    _print_table(["rank", "item_id", "similarity", "title"], [(r, i, s, t or "") for _, _, r, i, t, s in rows])


STATUS_SQL = """
select run_id, status, started_at, finished_at,
       round(epoch(finished_at) - epoch(started_at), 1) as seconds,
       n_users, n_items, n_recommendations,
       cast(metrics->>'valid_rmse' as double) as valid_rmse,
       cast(metrics->>'ndcg_at_10' as double) as ndcg_at_10,
       error
from runs order by started_at desc limit ?
"""


@app.command()
def status(
    warehouse: Path = WAREHOUSE_OPTION,
    last: int = typer.Option(10, "--last", help="How many recent runs to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The latest runs: state, timing, size and validation metrics (newest first)."""
    columns, rows = _read("status", warehouse, STATUS_SQL, [last])
    if as_json:
        typer.echo(json.dumps({"runs": [dict(zip(columns, row)) for row in rows]}, default=str))
        return
    if not rows:
        typer.echo("no runs yet")
        return
    _print_table(columns[:-1], [row[:-1] for row in rows])
    for row in rows:
        if row[-1]:
            typer.echo(f"{row[0]} {row[1]}: {row[-1]}")


@app.command()
def sql(
    query: Optional[str] = typer.Argument(None, help="SQL to run; omit to read queries from stdin (';' ends one)."),
    warehouse: Path = WAREHOUSE_OPTION,
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Run the SQL in this file (e.g. sql/queries/*.sql)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Query the warehouse read-only (it never blocks or changes the nightly run's data)."""
    if file is not None:
        query = file.read_text()
    if query is None:
        if sys.stdin.isatty():
            typer.echo("collabflow sql: type a query ending in ';' (Ctrl-D to quit)", err=True)
        buffer = ""
        for line in sys.stdin:
            buffer += line
            if buffer.strip().endswith(";"):
                _run_sql(warehouse, buffer, as_json)
                buffer = ""
        if buffer.strip():
            _run_sql(warehouse, buffer, as_json)
        return
    _run_sql(warehouse, query, as_json)


def _run_sql(warehouse: Path, query: str, as_json: bool) -> None:
    columns, rows = _read("sql", warehouse, query)
    if as_json:
        typer.echo(json.dumps([dict(zip(columns, row)) for row in rows], default=str))
    else:
        _print_table(columns, rows)


@config_app.command("show")
def config_show(
    config: Optional[Path] = typer.Option(None, help="Config file (default: $COLLABFLOW_CONFIG, else ./collabflow.toml)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print every nightly parameter's effective value and where it came from (before CLI flags)."""
    from flows.settings import layered

    try:
        values = layered(config)
    except (ValueError, FileNotFoundError) as e:
        fail("config show", str(e), 2)
    if as_json:
        typer.echo(json.dumps({k: {"value": v, "from": o} for k, (v, o) in values.items()}, default=str))
        return
    for name, (value, origin) in values.items():
        typer.echo(f"{name} = {json.dumps(value, default=str)}    # {origin}")


@app.command()
def generate(
    out: Path = typer.Option(..., help="Folder to write into."),
    shape: str = typer.Option("ml-100k", help="Users x items x ratings of a MovieLens release: ml-100k, ml-1m, ml-10m, ml-25m."),
    seed: int = typer.Option(42, help="Same shape and seed give identical data."),
    fmt: str = typer.Option("parquet", "--format", help="parquet (ratings.parquet), csv (ratings.csv) or udata (u.data)."),
) -> None:
    """Write seeded synthetic MovieLens-shaped ratings that `collabflow run --source` reads."""
    from recmodel import synth

    if fmt not in synth.FORMATS:
        fail("generate", f"--format must be one of {', '.join(synth.FORMATS)}", 2)
    try:
        path = synth.write(synth.generate(shape, seed), out, fmt)
    except ValueError as e:
        fail("generate", str(e), 2)
    typer.echo(str(path))


def main() -> None:
    from flows.settings import default_map

    config_path = None
    if "--config" in sys.argv[1:] and sys.argv[1:2] != ["config"]:
        i = sys.argv.index("--config")
        config_path = sys.argv[i + 1] if i + 1 < len(sys.argv) else None
        del sys.argv[i:i + 2]
    try:
        defaults = default_map(config_path)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"collabflow: error: {e}", err=True)
        sys.exit(2)
    app(default_map=defaults)


if __name__ == "__main__":
    main()
