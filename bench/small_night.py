"""Small nights (issue 16, item 3): is training, scoring and publishing 100k ratings small next to start-up?

Two `collabflow run --json` nights into one fresh warehouse, each a fresh process timed to its exit:
night 1 gets the first 90% of MovieLens 100K by time (the tuning search runs), night 2 the last 10% as a
second inbox file (last night's tuned values are reused: the data grew by less than ``tune_regrowth``).
For each night it prints the stages the flow timed (the work after the publish, the report, included) and
``start`` = the process's wall time outside them (imports, the temporary Prefect server, the flow run's
creation, teardown), then
``ratio=<wall / (start + ingest)>``, the median over ``--repeat`` pairs of nights (3): the bar is 1.5 (what a
night costs beyond starting and reading).

    python bench/small_night.py [path/to/u.data] [--collabflow-args "--tune-budget 0"] [--repeat 3]
Without the file, a synthetic ML-100K-shaped file is used.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.night import timed  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"


def frame_of(path: Path) -> pl.DataFrame:
    if path.exists():
        return pl.read_csv(
            path, separator="\t", has_header=False, new_columns=["user_id", "item_id", "rating", "timestamp"]
        )
    from recmodel import synth  # noqa: PLC0415

    print(f"{path} not found: a synthetic ML-100K-shaped file instead")
    return synth.generate("ml-100k", seed=42)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT))
    parser.add_argument("--collabflow-args", default="", help="extra `collabflow run` options, quoted")
    parser.add_argument("--repeat", type=int, default=3, help="pairs of nights, each into a fresh warehouse")
    args = parser.parse_args()
    frame = frame_of(Path(args.path)).sort("timestamp", maintain_order=True)
    cut = int(frame.height * 0.9)
    collabflow = Path(sys.executable).with_name("collabflow")
    ratios: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            inbox = Path(tmp) / "inbox"
            inbox.mkdir()
            for night, part in enumerate((frame[:cut], frame[cut:]), start=1):
                part.write_csv(inbox / f"ratings-{night}.csv")
                # delivered complete: without the marker a file younger than settle_seconds waits a night
                (inbox / f"ratings-{night}.csv.ready").touch()
                cmd = [str(collabflow), "run", "--source", str(inbox), "--warehouse", str(Path(tmp) / "wh"), "--json"]
                seconds, rss, out = timed([*cmd, *shlex.split(args.collabflow_args)])
                result = json.loads(out[out.index("{") :])
                stages = result["timings"]
                start = seconds - sum(stages.values())
                timed_stages = ", ".join(f"{k} {v:.1f}s" for k, v in stages.items())
                tuning = (result.get("metrics") or {}).get("tuning") or {}
                trials = len(tuning.get("trials", []))
                how = "reused" if tuning.get("reused_from") else f"searched ({trials} trials)" if trials else "off"
                ratios[night].append(seconds / (start + stages.get("ingest", 0.0)))
                print(
                    f"night {night}: {part.height} new ratings, tuning {how}: {seconds:.1f}s wall = start "
                    f"{start:.1f}s + {timed_stages}; peak RSS {rss:.2f} GB; ratio {ratios[night][-1]:.2f}"
                )
    for night, values in ratios.items():  # the start-up alone moves by seconds from run to run: the median
        print(
            f"night {night}: ratio={statistics.median(values):.2f} (median of {', '.join(f'{v:.2f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
