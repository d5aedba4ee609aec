"""An inbox that keeps every file ever delivered: how long a night takes to pass over what it has ingested.

Makes N small rating files (default 10,000, 5 ratings each) in one inbox folder, ingests them all as one
night (the ledger then knows them), and times the next night's ingest step over the same folder, where
every file is skipped by (path, size, mtime) from the ledger without being opened. Printed next to it,
from the same run: the floor (listing and stat-ing the folder, nothing else) and what the step would cost
if each file were read and hashed again (the behaviour before the ledger).

    python bench/inbox.py [--files 10000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel.io import list_rating_files  # noqa: E402
from store.ingest import InputRules, StagedNight, ledger, stage_file, warehouse_kind  # noqa: E402
from store.night import plan_night  # noqa: E402
from store.paths import new_run_id  # noqa: E402
from store.publish import load_night_data  # noqa: E402
from store.runs import start_run  # noqa: E402
from store.state import open_warehouse  # noqa: E402


def make_inbox(folder: Path, n_files: int) -> None:
    folder.mkdir(parents=True)
    for f in range(n_files):
        rows = "".join(
            f"{f % 900 + 1}\t{(f * 7 + r) % 1600 + 1}\t{1 + (f + r) % 5}\t{900000000 + f}\n" for r in range(5)
        )
        (folder / f"part-{f:06d}.tsv").write_text(rows)


def night(warehouse: Path, inbox: Path, rules: InputRules) -> tuple[float, int, int]:
    """One night's ingest step over the inbox: seconds, files staged, files skipped."""
    run_id = new_run_id()
    start_run(warehouse, run_id, str(inbox), {}, "bench", {})
    t = time.perf_counter()
    kind, known = warehouse_kind(warehouse), ledger(warehouse)
    staged = [stage_file(warehouse, run_id, p, rules, kind, known) for p in list_rating_files(inbox)]
    known.flush(warehouse)
    seconds = time.perf_counter() - t
    new = [s for s in staged if s.staged is not None]
    if new:
        from tests.store_helpers import night_kind

        plan, _ = plan_night(warehouse, StagedNight(run_id, staged, kind=night_kind(warehouse, new[0])))
        load_night_data(warehouse, plan)
    return seconds, len(new), sum(1 for s in staged if s.skipped)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=10_000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inbox, warehouse = Path(tmp) / "inbox", Path(tmp) / "wh"
        make_inbox(inbox, args.files)
        open_warehouse(warehouse)
        rules = InputRules(settle_seconds=0)
        first, staged, _ = night(warehouse, inbox, rules)
        print(f"night 1: {staged} files ingested in {first:.1f}s")

        t = time.perf_counter()
        for entry in os.scandir(inbox):
            entry.stat(follow_symlinks=False)
        floor = time.perf_counter() - t
        t = time.perf_counter()
        for entry in os.scandir(inbox):
            hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
        rehash = time.perf_counter() - t

        second, staged, skipped = night(warehouse, inbox, rules)
        assert staged == 0 and skipped == args.files, (staged, skipped)
        print(f"night 2: {skipped} files skipped in {second:.2f}s (ingest step: ledger load, listing, checks)")
        print(f"floor (scandir + lstat only): {floor:.3f}s; reading and hashing every file again: {rehash:.2f}s")
        print(f"ratio_to_floor={second / floor:.1f} ratio_to_rehash={second / rehash:.2f}")


if __name__ == "__main__":
    main()
