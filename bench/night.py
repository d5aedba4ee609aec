"""A whole collabflow night against the script a user would write around implicit, on the same data (issue 16).

Both run as fresh processes on the same generated ratings file (Parquet), one after the other, and each is
timed from its start to its exit, with its peak RSS (``wait4``):

* **peer**: the bare night: read the file with polars, map ids to indices, implicit's
  ``AlternatingLeastSquares`` (CG solver; the same factors, passes and CG steps as collabflow's iALS),
  ``recommend`` the top-N unseen items for every user, write them to Parquet. Nothing validated, measured
  or published. Needs implicit (``pip install -e '.[bench]'``).
* **collabflow**: ``collabflow run --source FILE --json`` with its defaults (Prefect, validation against the
  baselines, a rating model, similar items, the report, the atomic publish), into a fresh warehouse.

    python bench/night.py [--shape ml-10m] [--top-n 10] [--repeat 3] [--collabflow-args "--tune-budget 0"]
Prints collabflow's own stage timings, then ``ratio_to_peer=<collabflow seconds / peer seconds>`` and
both peak RSS values; with ``--repeat``, that many pairs (each collabflow run into a fresh warehouse, the
order alternating) and the median of their ratios: on a shared 2-core machine one pair's ratio moves by
+-0.2 from hour to hour. Run it with nothing else running (2 cores: a second process skews both).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FACTORS, ITERATIONS = 128, 10  # collabflow's iALS defaults (RankConfig; both take 3 CG steps)


def peer(source: str, out: str, top_n: int) -> None:
    """The bare night (run in its own process by ``main``)."""
    import implicit  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import polars as pl  # noqa: PLC0415
    from scipy.sparse import csr_matrix  # noqa: PLC0415
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    frame = pl.read_parquet(source, columns=["user_id", "item_id"])
    user_ids, users = np.unique(frame["user_id"].to_numpy(), return_inverse=True)
    item_ids, items = np.unique(frame["item_id"].to_numpy(), return_inverse=True)
    matrix = csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(user_ids.size, item_ids.size)).tocsr()
    matrix.sum_duplicates()
    with threadpool_limits(1, "blas"):
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=FACTORS,
            iterations=ITERATIONS,
            use_cg=True,
            random_state=42,  # 3 CG steps: implicit's own
        )
        model.fit(matrix, show_progress=False)
        rows = np.arange(user_ids.size)
        ids, scores = model.recommend(rows, matrix, N=top_n, filter_already_liked_items=True)
    pl.DataFrame(
        {
            "user_id": np.repeat(user_ids, top_n),
            "item_id": item_ids[ids.reshape(-1)],
            "rank": np.tile(np.arange(1, top_n + 1), user_ids.size),
            "score": scores.reshape(-1),
        }
    ).write_parquet(out)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """``(seconds, peak RSS in GB, stdout)`` of a child process."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        sys.exit(f"{shlex.join(cmd)} failed with exit code {proc.returncode}:\n{text[-2000:]}")
    return seconds, usage.ru_maxrss / 2**20, text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="ml-10m", help="synthetic shape (recmodel.synth.SHAPES)")
    parser.add_argument("--top-n", type=int, default=10)
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs of runs; the ratio printed is their median (the machine drifts)"
    )
    parser.add_argument("--collabflow-args", default="", help="extra `collabflow run` options, quoted")
    parser.add_argument("--peer", nargs=2, metavar=("SOURCE", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--generate", metavar="FOLDER", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        peer(args.peer[0], args.peer[1], args.top_n)
        return
    if args.generate:
        from recmodel import synth  # noqa: PLC0415

        print(synth.write(synth.generate(args.shape, seed=42), Path(args.generate), "parquet"))
        return
    try:
        import implicit  # noqa: F401, PLC0415
    except ImportError:
        sys.exit("implicit is not installed (pip install -e '.[bench]'): there is no peer to compare with")
    with tempfile.TemporaryDirectory() as tmp:
        # generated in a child process: a child's peak RSS (wait4) starts from its parent's RSS at the fork,
        # so this process stays small (an ML-25M frame held here put a 3.1 GB floor under both peaks)
        made = subprocess.run(
            [sys.executable, __file__, "--shape", args.shape, "--generate", str(Path(tmp) / "inbox")],
            check=True,
            capture_output=True,
            text=True,
        )
        source = Path(made.stdout.strip().splitlines()[-1])
        print(f"{args.shape}: {source.stat().st_size / 2**20:.0f} MB of Parquet")
        peer_cmd = [sys.executable, __file__, "--top-n", str(args.top_n), "--peer", str(source)]
        peer_cmd.append(str(Path(tmp) / "peer.pq"))
        collabflow = Path(sys.executable).with_name("collabflow")
        pairs: list[tuple[float, float, float, float]] = []  # peer s, peer GB, collabflow s, collabflow GB
        for n in range(args.repeat):
            cmd = [str(collabflow), "run", "--source", str(source), "--warehouse", str(Path(tmp) / f"wh-{n}")]
            cmd += ["--top-n", str(args.top_n), "--json", *shlex.split(args.collabflow_args)]
            # the order alternates from pair to pair: a machine that speeds up or slows down during the bench
            # then favours neither side
            if n % 2 == 0:
                (peer_s, peer_gb, _), (ours_s, ours_gb, out) = timed(peer_cmd), timed(cmd)
            else:
                (ours_s, ours_gb, out), (peer_s, peer_gb, _) = timed(cmd), timed(peer_cmd)
            print(f"peer (polars + implicit ALS + recommend): {peer_s:.1f}s, peak RSS {peer_gb:.2f} GB")
            result = json.loads(out[out.index("{") :])
            peaks = result.get("peak_rss_gb", {})
            stages = ", ".join(f"{k} {v:.1f}s (RSS {peaks.get(k, 0):.2f} GB)" for k, v in result["timings"].items())
            print(f"collabflow run: {ours_s:.1f}s ({stages}), peak RSS {ours_gb:.2f} GB")
            print(f"pair {n + 1}: ratio {ours_s / peer_s:.2f}", flush=True)
            pairs.append((peer_s, peer_gb, ours_s, ours_gb))
        ratios = [ours / peer for peer, _, ours, _ in pairs]
        each = f" (median of {', '.join(f'{r:.2f}' for r in ratios)})" if len(pairs) > 1 else ""
        print(
            f"ratio_to_peer={statistics.median(ratios):.2f}{each} peak_rss_gb={max(p[3] for p in pairs):.2f} "
            f"peer_peak_rss_gb={max(p[1] for p in pairs):.2f}"
        )


if __name__ == "__main__":
    main()
