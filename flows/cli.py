"""``collabflow``: run or serve the nightly flow, evaluate models, and read the warehouse.

Exit codes: 0 success, 1 the work failed (the reason is the last line on stderr), 2 bad usage.

The read commands (``recommend``, ``similar``, ``status``, ``sql``) live in ``flows.read``: ``main``
hands them over before anything heavy is imported (not even typer, which brings pydantic), so they
answer in a fraction of a second.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from flows import read

if TYPE_CHECKING:
    from pydantic import ValidationError

HELP = (
    "collabflow: a nightly collaborative-filtering recommender that publishes top-N lists to DuckDB. "
    "Settings: defaults < collabflow.toml (or --config / $COLLABFLOW_CONFIG) < COLLABFLOW_<NAME> "
    "environment variables < flags."
)
WAREHOUSE_OPTION = typer.Option(
    Path("warehouse"), help="Warehouse folder; the database is WAREHOUSE/collabflow.duckdb."
)
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def fail(command: str, message: str, code: int = 1) -> None:
    typer.echo(f"collabflow {command}: error: {message}", err=True)
    raise typer.Exit(code)


def fail_invalid(command: str, e: ValidationError) -> None:
    """Exit 2 naming the first setting pydantic refused, as ``field: message``."""
    err = e.errors()[0]
    fail(command, f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}", 2)


# ---------------------------------------------------------------- run, serve, evaluate, config, generate


def _last_words(command: str) -> list[str]:
    """Prefect stops its temporary server in an atexit hook, logging one more line; a hook registered
    before the flow starts runs after it (LIFO), so the reason stays the last line a cron mail shows."""
    words: list[str] = []
    # a fresh line first: a library's last message may lack its newline (seen when the API went away)
    atexit.register(lambda: words and print("\n" + words[0], file=sys.stderr, flush=True))
    return words


def _state_error(state: Any) -> str:
    exc = state.result(raise_on_failure=False)
    message = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(state.message)
    return " ".join(message.split())


def with_nightly_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command one option per setting (``flows.parameters``: same names, types, defaults, help)."""
    from flows.parameters import helps, signature

    text = helps()
    extra = [
        inspect.Parameter(
            p.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=p.annotation,
            default=typer.Option(p.default, help=text.get(p.name, ""), show_default=True),
        )
        for p in signature().parameters.values()
    ]
    own = list(inspect.signature(func).parameters.values())

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        params = {k: kwargs.pop(k) for k in list(kwargs) if k not in {p.name for p in own}}
        return func(params=params, **kwargs)

    wrapper.__signature__ = inspect.Signature([p for p in own if p.name != "params"] + extra)  # type: ignore[attr-defined]
    return wrapper


def _served(warehouse: str) -> tuple[int, str] | None:
    """The served snapshot's latest ``(version, run_id)``; None without one."""
    from store.db import connect_served

    try:
        with connect_served(warehouse) as con:
            row = con.execute("select version, run_id from latest_run").fetchone()
        return (int(row[0]), str(row[1])) if row else None
    except Exception:  # noqa: BLE001  (no warehouse yet, or an old layout: nothing published by us)
        return None


def _published_here(warehouse: str, before: tuple[int, str] | None) -> tuple[int, str] | None:
    """``(version, run_id)`` if this process's night became the served version (run ids end in the pid)."""
    import os

    now = _served(warehouse)
    if now is None or (before is not None and now[0] <= before[0]) or not now[1].endswith(f"-{os.getpid()}"):
        return None
    return now


def _validated(command: str, params: dict[str, Any]) -> dict[str, Any]:
    from pydantic import ValidationError

    from recmodel.config import split_flat

    try:
        split_flat(**params)
    except ValidationError as e:
        fail_invalid(command, e)
    if params.get("source") and not Path(params["source"]).exists():
        fail(command, f"--source {params['source']} does not exist", 2)
    return params


DASK_ADDRESS_OPTION = typer.Option(
    None,
    help="Run the scoring shards (--score-shards) on this Dask scheduler, e.g. tcp://10.0.0.5:8786. Needs "
    "`pip install 'collabflow[dask]'` here and on the workers, the same warehouse path on every machine, and a "
    "Prefect server (PREFECT_API_URL).",
)
DASK_WORKERS_OPTION = typer.Option(
    0,
    help="Start a local Dask cluster of this many worker processes for the "
    "scoring shards (0: no Dask). Needs a Prefect server (PREFECT_API_URL).",
)


def _warm_up_while_prefect_starts(early: object | None) -> threading.Thread | None:
    """While Prefect's temporary server boots (``early``: the one ``flows.server`` started with the command;
    None and no ``PREFECT_API_URL``: the one Prefect starts at the flow's first call), this process only
    waits, a core idle: load numba and matplotlib then (``recmodel.warm``), not inside the night's stages.
    Returns the thread, or None with a configured server (no wait to fill)."""
    from prefect.settings import PREFECT_API_URL

    if early is None and PREFECT_API_URL.value():
        return None

    def warm() -> None:
        try:
            from recmodel.warm import warm_up

            warm_up()
        except Exception:  # noqa: BLE001  (an optimisation: the night loads the same on first use)
            logging.getLogger(__name__).debug("warm-up failed", exc_info=True)

    thread = threading.Thread(target=warm, name="collabflow-warm-up", daemon=True)
    thread.start()
    return thread


def run(
    params: dict[str, Any],
    as_json: bool = JSON_OPTION,
    dask_address: str | None = DASK_ADDRESS_OPTION,
    dask_workers: int = DASK_WORKERS_OPTION,
) -> None:
    """Run the nightly flow once: ingest, train, score every user, publish to DuckDB."""
    from flows import heap

    heap.quiet_start()  # the flow's first line turns the collector back on (flows.heap)
    # SIGTERM (a scheduler's time limit, `kill`) ends the night as Ctrl-C does: Python unwinds, locks are
    # released, Prefect records the run and stops its temporary server. By default SIGTERM ended the
    # process on the spot and left that server running, orphaned.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    params = _validated("run", params)  # a bad option is refused before the flow's heavy imports (~7 s)
    last_words = _last_words("run")
    before = _served(params["warehouse"])
    try:
        from flows import server

        # boots on the other core while this process imports the night; Dask needs a server of its own
        early = None if dask_address or dask_workers else server.start_early()
        from flows.nightly import nightly
        from flows.scaleout import nightly_on_dask

        try:
            flow = nightly_on_dask(dask_address, dask_workers) if dask_address or dask_workers else nightly
        except RuntimeError as e:
            fail("run", str(e), 2)
        _warm_up_while_prefect_starts(early)  # early sets PREFECT_API_URL: the wait is ours
        server.wait_until_up(early)
        with server.night_settings(early):
            state: Any = flow(**params, return_state=True)
        error = None if state.is_completed() else _state_error(state)
    except typer.Exit:
        raise
    except Exception as e:  # noqa: BLE001  (the orchestration API can fail after the night's own work)
        state, error = None, " ".join(f"{type(e).__name__}: {e}".split())
    except KeyboardInterrupt:
        published = _published_here(params["warehouse"], before)
        last_words.append(
            "collabflow run: interrupted (Ctrl-C or SIGTERM): "
            + (
                "nothing was published; the served version is unchanged"
                if published is None
                else f"run {published[1]} was published as version {published[0]} before the interruption"
            )
        )
        raise typer.Exit(130) from None
    if error is not None:
        published = _published_here(params["warehouse"], before)
        if published is None:
            last_words.append(f"collabflow run: error: {error}")
            raise typer.Exit(1)
        version, run_id = published  # exit 0 exactly when the night is published
        last_words.append(
            f"collabflow run: warning: run {run_id} was published as version {version}, but the "
            f"orchestration failed afterwards: {error}"
        )
        if as_json:
            typer.echo(json.dumps({"run_id": run_id, "version": version, "warning": error}))
        return
    summary = state.result()
    if as_json:
        typer.echo(json.dumps(summary, default=str))
        return
    if summary.get("skipped"):
        typer.echo(f"skipped: {summary['skipped']}")
        return
    m = summary["metrics"]
    k = params.get("metric_k", 10)
    rated = f"{m['rating_model']} valid RMSE {_fmt(m['valid_rmse'])}, " if m.get("rating_model") else ""
    typer.echo(
        f"run {summary['run_id']}: {summary['n_recommendations']} recommendations for "
        f"{summary['n_users_scored']} users; {rated}"
        f"{m['ranker']} NDCG@{k} {_fmt(m.get(f'ndcg_at_{k}'))}; database "
        f"{Path(params['warehouse']) / 'collabflow.duckdb'}"
    )


def serve(
    params: dict[str, Any],
    cron: str = typer.Option("0 2 * * *", help="When the nightly run starts (cron syntax)."),
    timezone: str = typer.Option("UTC", help="Time zone of the cron schedule, e.g. Europe/Berlin."),
    name: str = typer.Option("nightly", help="Deployment name, shown in the Prefect UI."),
) -> None:
    """Register the nightly flow as a scheduled Prefect deployment and serve it until stopped.

    Needs a Prefect server (PREFECT_API_URL). Stopping `serve` leaves the schedule active, two nights
    never overlap, and after downtime the missed night runs once.
    """
    params = _validated("serve", params)
    from flows.deploy import serve_nightly

    try:
        serve_nightly(params, cron=cron, timezone=timezone, name=name)
    except (ValueError, RuntimeError) as e:
        fail("serve", str(e))


class SplitChoice(StrEnum):
    random = "random"
    temporal = "temporal"
    leave_last = "leave-last"


def evaluate(
    source: Path | None = typer.Option(None, help="Ratings to split into train and test (any format `run` reads)."),
    train: Path | None = typer.Option(None, help="Your own training file (use with --test instead of --source)."),
    test: Path | None = typer.Option(None, help="Your own test file (use with --train)."),
    split: SplitChoice = typer.Option(
        SplitChoice.random,
        help="random (seeded), temporal (latest ratings are the test) "
        "or leave-last (each user's latest --leave-last-n ratings).",
    ),
    test_pct: float = typer.Option(0.2, help="Share of ratings in the test part (random and temporal)."),
    leave_last_n: int = typer.Option(1, help="Ratings per user held out by the leave-last split."),
    seed: int = typer.Option(42, help="Seed for the split and every model."),
    warehouse: Path | None = typer.Option(
        None, help="Also store the results in WAREHOUSE/collabflow.duckdb (table evaluations)."
    ),
    columns: str | None = typer.Option(None, help="Column mapping, as for `run`."),
    delimiter: str | None = typer.Option(None, help="Field delimiter, as for `run`."),
    rating_min: float = typer.Option(0.5, help="Lowest valid rating."),
    rating_max: float = typer.Option(5.0, help="Highest valid rating."),
    feedback: str = typer.Option(
        "auto", help="auto (explicit when a rating column is found or mapped), explicit, or implicit (clicks, plays)."
    ),
    rating_model: str = typer.Option("dot", help="Rating model the nightly flow would publish: dot, neural or bayes."),
    ranker: str = typer.Option(
        "ials", help="Ranker the nightly flow would publish: ials, ease, hybrid, rating or popularity."
    ),
    device: str = typer.Option("auto", help="auto (CUDA when available, else CPU), cpu or cuda."),
    tune_budget: float = typer.Option(
        30.0,
        help="Seconds (by plan) the nightly flow's tuning may spend; 'published' is then the tuned choice "
        "(tuned on a validation part of the training part), 0: the configured models.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print one JSON object: models and baselines by name, 'published' for the nightly flow's configuration.",
    ),
) -> None:
    """Compare every model with the baselines (global mean, bias-only, popularity) on one split."""
    from pydantic import ValidationError

    from recmodel.config import RunConfig

    config = dict(
        seed=seed,
        rating_min=rating_min,
        rating_max=rating_max,
        rating_model=rating_model,
        ranker=ranker,
        device=device,
        tune_budget=tune_budget,
    )
    try:
        cfg = RunConfig.from_flat(**config)
    except ValidationError as e:
        fail_invalid("evaluate", e)
    if (train is None) != (test is None) or (train is None) == (source is None):
        fail("evaluate", "give either --source (to be split) or both --train and --test", 2)
    for path in (source, train, test):
        if path is not None and not path.exists():
            fail("evaluate", f"{path} does not exist", 2)
    from flows.artifacts import metric_columns  # the flow's heavy imports, once the options are known good
    from flows.evaluate import evaluate as evaluate_flow

    last_words = _last_words("evaluate")
    state = evaluate_flow(
        source=str(source) if source else None,
        train=str(train) if train else None,
        test=str(test) if test else None,
        split=split.value,
        test_pct=test_pct,
        leave_last_n=leave_last_n,
        warehouse=str(warehouse) if warehouse else None,
        columns=columns,
        delimiter=delimiter,
        config=config,
        feedback=feedback,
        return_state=True,
    )
    if not state.is_completed():
        last_words.append(f"collabflow evaluate: error: {_state_error(state)}")
        raise typer.Exit(1)
    evaluation = state.result()
    results = evaluation["results"]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    **results,
                    "evaluation": {
                        "split": evaluation["split"],
                        **evaluation["details"],
                        "evaluation_id": evaluation.get("evaluation_id"),
                    },
                },
                default=str,
            )
        )
        return
    d = evaluation["details"]
    implicit = d.get("feedback") == "implicit"
    shown = metric_columns(cfg.metric_k)[2 if implicit else 0 :]
    relevant = (
        "every held-out interaction is relevant"
        if implicit
        else (f"relevant = test rating >= {d['config']['rank']['relevance_threshold']}")
    )
    what = "interactions" if implicit else "ratings"
    typer.echo(f"{evaluation['split']} split: {d['n_train']} train / {d['n_test']} test {what}; {relevant}")
    typer.echo(f"{'model':<12}" + "".join(f"{m:>16}" for m in shown))
    for name, metrics in results.items():
        typer.echo(
            f"{name:<12}"
            + "".join(f"{metrics[m]:>16.4f}" if isinstance(metrics.get(m), float) else f"{'':>16}" for m in shown)
        )
    pub = results["published"]
    scores = f" with {pub['rating_model']} scores" if pub.get("rating_model") else " (scores are the ranker's)"
    typer.echo(f"published = {pub['ranker']} lists{scores}")


def config_show(
    config: Path | None = typer.Option(None, help="Config file (default: $COLLABFLOW_CONFIG, else ./collabflow.toml)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Print every nightly parameter's effective value and where it came from (before CLI flags)."""
    from pydantic import ValidationError

    from flows.settings import layered
    from recmodel.config import split_flat

    try:
        values = layered(config)
        _, cfg = split_flat(**{name: value for name, (value, _) in values.items()})
    except ValidationError as e:
        fail_invalid("config show", e)
    except (ValueError, FileNotFoundError) as e:
        fail("config show", str(e), 2)
    scaled = {"y_range": cfg.train.y_range, "relevance_threshold": cfg.rank.relevance_threshold}
    for name, value in scaled.items():  # a default made for stars, moved to the configured scale
        if values[name][1] == "default" and values[name][0] != value:
            values[name] = (value, "default, fitted to rating_min..rating_max")
    if as_json:
        typer.echo(json.dumps({k: {"value": v, "from": o} for k, (v, o) in values.items()}, default=str))
        return
    for name, (value, origin) in values.items():
        typer.echo(f"{name} = {json.dumps(value, default=str)}    # {origin}")


def generate(
    out: Path = typer.Option(..., help="Folder to write into."),
    shape: str = typer.Option(
        "ml-100k", help="Users x items x ratings of a MovieLens release: ml-100k, ml-1m, ml-10m, ml-25m."
    ),
    seed: int = typer.Option(42, help="Same shape and seed give identical data."),
    fmt: str = typer.Option(
        "parquet",
        "--format",
        help="parquet, csv (ratings.csv or interactions.csv), udata (u.data) or hetrec (user_artists.dat, implicit).",
    ),
    feedback: str = typer.Option(
        "explicit", help="explicit (1-5 star ratings) or implicit (play counts in a weight column)."
    ),
    string_ids: bool = typer.Option(False, "--string-ids", help="Hashed user ids and SKU-style item ids."),
) -> None:
    """Write seeded synthetic MovieLens-shaped data that `collabflow run --source` reads."""
    from recmodel import synth

    if fmt not in synth.FORMATS:
        fail("generate", f"--format must be one of {', '.join(synth.FORMATS)}", 2)
    if feedback not in ("explicit", "implicit"):
        fail("generate", "--feedback must be explicit or implicit", 2)
    try:
        if feedback == "implicit":
            frame = synth.generate_implicit(shape, seed, string_ids=string_ids)
        else:
            frame = synth.generate(shape, seed)
            frame = synth.with_string_ids(frame) if string_ids else frame
        path = synth.write(frame, out, fmt)
    except ValueError as e:
        fail("generate", str(e), 2)
    typer.echo(str(path))


def _forward(name: str) -> Callable[..., None]:
    def forward(ctx: typer.Context) -> None:
        read.main([name, *ctx.args])

    return forward


def rollback(
    run_id: str | None = typer.Argument(
        None,
        help="The run whose lists to serve again (default: the one the "
        "previous version served); `collabflow status` lists runs and versions.",
    ),
    warehouse: Path = WAREHOUSE_OPTION,
    as_json: bool = JSON_OPTION,
) -> None:
    """Serve an earlier night's lists again, as a new version (readers switch at once; recorded as a rollback)."""
    from store.lock import WarehouseBusy, exclusive
    from store.publish import rollback as rollback_to
    from store.state import open_warehouse

    if not (warehouse / "collabflow.duckdb").exists() and not (warehouse / "state").exists():
        fail("rollback", f"no warehouse at {warehouse}")
    try:
        with exclusive(warehouse):
            open_warehouse(warehouse)
            published = rollback_to(warehouse, run_id)
    except (ValueError, WarehouseBusy) as e:
        fail("rollback", str(e))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "version": published.version,
                    "run_id": published.run_id,
                    "n_recommendations": published.n_recommendations,
                }
            )
        )
        return
    typer.echo(
        f"version {published.version} serves the lists of run {published.run_id} "
        f"({published.n_recommendations} recommendations)"
    )


def full_app() -> typer.Typer:
    """Every command (``collabflow --help`` lists them all)."""
    app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
    app.command()(with_nightly_options(run))  # one option per setting: built here, not on the light path
    app.command()(with_nightly_options(serve))
    app.command()(evaluate)
    for name in read.COMMANDS:  # listed in --help; `main` hands them to flows.read before typer is loaded
        app.command(
            name,
            help=read.HELP[name],
            add_help_option=False,
            context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        )(_forward(name))
    config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
    config_app.command("show")(config_show)
    app.add_typer(config_app, name="config")
    app.command()(rollback)
    app.command()(generate)
    return app


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in read.COMMANDS:
        read.main(sys.argv[1:])
        return
    from flows.settings import default_map

    config_path = None
    if "--config" in sys.argv[1:] and sys.argv[1:2] != ["config"]:
        i = sys.argv.index("--config")
        config_path = sys.argv[i + 1] if i + 1 < len(sys.argv) else None
        del sys.argv[i : i + 2]
    try:
        defaults = default_map(config_path)
    except (ValueError, FileNotFoundError) as e:
        typer.echo(f"collabflow: error: {e}", err=True)
        sys.exit(2)
    full_app()(default_map=defaults)


if __name__ == "__main__":
    main()
