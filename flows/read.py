"""The read commands: ``recommend``, ``similar``, ``status``, ``sql``.

They only read the warehouse, so they stay light: stdlib ``argparse`` and DuckDB, nothing else (no
Prefect, torch, numba or pydantic; even typer would bring pydantic). They answer in a fraction of a
second on an ML-100K warehouse.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

COMMANDS = ("recommend", "similar", "status", "sql")
HELP = {
    "recommend": "Print a user's recommendations from the latest successful run.",
    "similar": "Print the items most similar to ITEM_ID (cosine on item factors) from the latest successful run.",
    "status": "The latest runs: state, timing, size and validation metrics (newest first).",
    "sql": "Query the warehouse read-only (it never blocks or changes the nightly run's data).",
}
STATUS_COLUMNS = (
    "run_id, status, version, started_at, finished_at, seconds, n_users, n_items, n_recommendations, valid_rmse, "
    "ndcg_at_10, error"
)


class CommandError(Exception):
    """A read command failed; the message is the one line the user sees."""


def fail(command: str, message: str, code: int = 1) -> NoReturn:
    print(f"collabflow {command}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def query(
    warehouse: Path, sql: str, params: list[Any] | None = None, *, state: bool = False
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run read statements on the served snapshot (sandboxed: nothing but reading is possible), or on the
    writer's state with ``state=True``; any failure becomes a ``CommandError`` with a one-line reason."""
    from store.db import ReadOnlyError, check_read_only, connect_served, connect_state

    try:
        check_read_only(sql)
        opened = connect_state(warehouse, read_only=True, lock_timeout_s=0) if state else connect_served(warehouse)
        with opened as con:
            cur = con.execute(sql, params or [])
            return [d[0] for d in cur.description or []], cur.fetchall()
    except ReadOnlyError as e:
        raise CommandError(str(e)) from None
    except (FileNotFoundError, RuntimeError) as e:
        raise CommandError(str(e)) from None
    except Exception as e:  # a SQL error: say it plainly
        raise CommandError(" ".join(str(e).split())) from None


def print_table(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    cells = [[_fmt(v) if v is not None else "" for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def by_id(warehouse: Path, sql: str, raw_id: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` for one raw id given on the command line: ids are matched as the warehouse holds them
    (integers or strings), and a non-integer id asked of an integer warehouse is simply not there."""
    try:
        return query(warehouse, sql, [raw_id])[1]
    except CommandError as e:
        if "Conversion Error" not in str(e):
            raise
        return []


def recommend(args: argparse.Namespace) -> None:
    rows = by_id(
        args.warehouse,
        "select run_id, rank, item_id, score, source, title, user_id "
        "from latest_recommendations where user_id = ? order by rank",
        args.user_id,
    )
    if not rows:
        known = by_id(args.warehouse, "select count(*) from ratings where user_id = ?", args.user_id)
        why = (
            "the user has ratings but no list in the latest run; rerun `collabflow run`"
            if known and known[0][0]
            else "no such user in the warehouse (ids are the raw ids of the rating files)"
        )
        raise CommandError(f"no recommendations for user {args.user_id}: {why}")
    rows = rows[: args.n] if args.n else rows
    if args.json:
        print(
            json.dumps(
                {
                    "user_id": rows[0][6],
                    "run_id": rows[0][0],
                    "source": rows[0][4],
                    "recommendations": [
                        {"rank": r, "item_id": i, "score": s, "title": t} for _, r, i, s, _, t, _ in rows
                    ],
                }
            )
        )
        return
    print(f"user {args.user_id} (run {rows[0][0]}, {rows[0][4]})")
    print_table(["rank", "item_id", "score", "title"], [(r, i, s, t or "") for _, r, i, s, _, t, _ in rows])


def similar(args: argparse.Namespace) -> None:
    rows = by_id(
        args.warehouse,
        "select run_id, title, rank, similar_item_id, similar_title, similarity, item_id "
        "from latest_similar_items where item_id = ? order by rank",
        args.item_id,
    )
    if not rows:
        raise CommandError(
            f"no similar items for item {args.item_id}: not in the latest run's catalog "
            "(ids are the raw ids of the rating files)"
        )
    rows = rows[: args.n] if args.n else rows
    if args.json:
        print(
            json.dumps(
                {
                    "item_id": rows[0][6],
                    "title": rows[0][1],
                    "run_id": rows[0][0],
                    "similar": [{"rank": r, "item_id": i, "title": t, "similarity": s} for _, _, r, i, t, s, _ in rows],
                }
            )
        )
        return
    print(f"item {args.item_id}{f' ({rows[0][1]})' if rows[0][1] else ''} (run {rows[0][0]})")
    print_table(["rank", "item_id", "similarity", "title"], [(r, i, s, t or "") for _, _, r, i, t, s, _ in rows])


def status(args: argparse.Namespace) -> None:
    """The state has every run, failed ones included; while a night holds it, the served snapshot (runs up to
    the last publish) answers instead."""
    text = f"select {STATUS_COLUMNS} from run_history limit ?"
    try:
        columns, rows = query(args.warehouse, text, [args.last], state=True)
    except CommandError:
        columns, rows = query(args.warehouse, text, [args.last])
        print("(the writer's state is busy or missing: runs up to the last publish shown)", file=sys.stderr)
    try:
        _, latest = query(args.warehouse, "select version, run_id, kind from latest_run")
    except CommandError:
        latest = []
    if args.json:
        served = dict(zip(("version", "run_id", "kind"), latest[0])) if latest else None
        print(json.dumps({"served": served, "runs": [dict(zip(columns, row)) for row in rows]}, default=str))
        return
    if not rows:
        print("no runs yet")
        return
    if latest:
        version, run_id, kind = latest[0]
        print(
            f"readers see version {version}: the lists of run {run_id}"
            + (" (a rollback)" if kind == "rollback" else "")
        )
    print_table(columns[:-1], [row[:-1] for row in rows])
    for row in rows:
        if row[-1]:
            print(f"{row[0]} {row[1]}: {row[-1]}")


def sql(args: argparse.Namespace) -> None:
    text = args.file.read_text() if args.file is not None else args.query
    if text is not None:
        _run_sql(args, text)
        return
    if sys.stdin.isatty():
        print("collabflow sql: type a query ending in ';' (Ctrl-D to quit)", file=sys.stderr)
    buffer = ""
    for line in sys.stdin:
        buffer += line
        if buffer.strip().endswith(";"):
            _run_sql(args, buffer)
            buffer = ""
    if buffer.strip():
        _run_sql(args, buffer)


def _run_sql(args: argparse.Namespace, text: str) -> None:
    columns, rows = query(args.warehouse, text)
    if args.json:
        print(json.dumps([dict(zip(columns, row)) for row in rows], default=str))
    else:
        print_table(columns, rows)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="collabflow", description="Read the warehouse.")
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        p.add_argument(
            "--warehouse",
            type=Path,
            default=Path("warehouse"),
            help="Warehouse folder; the database is WAREHOUSE/collabflow.duckdb (default: warehouse).",
        )
        p.add_argument("--json", action="store_true", help="Machine-readable JSON on stdout.")
        return p

    p = command("recommend")
    p.add_argument("user_id", help="Raw user id, as in the rating files (an integer or a string).")
    p.add_argument("--n", type=int, default=None, help="Show at most this many (default: the whole list).")
    p = command("similar")
    p.add_argument("item_id", help="Raw item id, as in the rating files (an integer or a string).")
    p.add_argument("--n", type=int, default=None, help="Show at most this many (default: all kept).")
    p = command("status")
    p.add_argument("--last", type=int, default=10, help="How many recent runs to show (default: 10).")
    p = command("sql")
    p.add_argument("query", nargs="?", default=None, help="SQL to run; omit to read queries from stdin (';' ends one).")
    p.add_argument("--file", "-f", type=Path, default=None, help="Run the SQL in this file (e.g. sql/queries/*.sql).")
    return top


def main(argv: list[str]) -> None:
    args = parser().parse_args(argv)
    try:
        {"recommend": recommend, "similar": similar, "status": status, "sql": sql}[args.command](args)
    except CommandError as e:
        fail(args.command, str(e))
