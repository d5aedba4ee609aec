"""iALS fit time against implicit's, on the same generated data, in one run (issue 16).

Same data (a MovieLens-shaped set from ``recmodel.synth``, every rating an interaction), same factors,
iterations and conjugate-gradient steps, both float32 on the CPU with the machine's threads. implicit
(``pip install -e '.[bench]'``) fits ``AlternatingLeastSquares(use_cg=True)`` (3 CG steps, fixed); collabflow fits
``recmodel.ials.fit_factors`` (the fused numba kernel on the CPU). The torch sparse path (what a GPU
runs) is timed on the CPU too, for reference. Each is timed after a small warm-up fit (numba and
implicit compile or load once). Quality check: NDCG@10 of both collabflow paths on a held-out 20%.

    python bench/ials.py [--shape ml-10m] [--factors 128] [--iterations 10] [--cg-steps 3]
Ends with ``ratio_to_implicit=<collabflow seconds / implicit seconds>`` (lower is better; 1.0 = as fast).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recmodel import ials, synth  # noqa: E402
from recmodel.metrics import ranking_metrics  # noqa: E402
from recmodel.score import top_n_unseen  # noqa: E402
from recmodel.sparse import csr_from_pairs  # noqa: E402


def held_out_ndcg(X, Y, users, items, test_users, test_items, n_users, n_items, k=10) -> float:
    indptr, indices = csr_from_pairs(users, items, n_users)
    rows = np.unique(test_users)
    top = top_n_unseen(X, Y, indptr, indices, k, users=rows).items
    row_of = np.full(n_users, -1)
    row_of[rows] = np.arange(rows.size)
    return ranking_metrics(top, row_of[test_users], test_items, k, n_items)[f"ndcg_at_{k}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="ml-10m", choices=list(synth.SHAPES))
    parser.add_argument("--factors", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--cg-steps", type=int, default=3)
    parser.add_argument("--skip-torch", action="store_true", help="do not time the torch sparse path")
    args = parser.parse_args()
    frame = synth.generate(args.shape, seed=42)
    users = frame["user_id"].to_numpy().astype(np.int64) - 1
    items_raw = frame["item_id"].to_numpy()
    _, items = np.unique(items_raw, return_inverse=True)
    items = items.astype(np.int64)
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    rng = np.random.default_rng(0)
    test = rng.random(users.size) < 0.2
    tu, ti = users[~test], items[~test]
    w = np.ones(tu.size, np.float32)
    print(
        f"{args.shape}: {n_users:,} users x {n_items:,} items, {tu.size:,} training interactions; "
        f"{args.factors} factors, {args.iterations} iterations, {args.cg_steps} CG steps, "
        f"{torch.get_num_threads()} threads"
    )
    kw = dict(factors=args.factors, iterations=args.iterations, cg_steps=args.cg_steps, seed=42)
    small = slice(0, min(tu.size, 50_000))
    ials.fit_factors(tu[small], ti[small], w[small], n_users, n_items, **{**kw, "iterations": 1})  # compile
    t0 = time.perf_counter()
    X, Y = ials.fit_factors(tu, ti, w, n_users, n_items, device="cpu", **kw)
    ours = time.perf_counter() - t0
    print(f"collabflow fused CPU kernel: {ours:.2f}s ({args.iterations * tu.size / ours / 1e6:.2f}M interactions/s)")
    ndcg = held_out_ndcg(X, Y, tu, ti, users[test], items[test], n_users, n_items)
    print(f"  held-out NDCG@10 {ndcg:.4f}")
    if not args.skip_torch:
        t0 = time.perf_counter()
        Xt, Yt = ials.fit_factors(tu, ti, w, n_users, n_items, device="cpu", torch_sparse=True, **kw)
        took = time.perf_counter() - t0
        print(f"collabflow torch sparse path (the GPU's) on this CPU: {took:.2f}s, ratio_to_fused={took / ours:.2f}")
        print(f"  held-out NDCG@10 {held_out_ndcg(Xt, Yt, tu, ti, users[test], items[test], n_users, n_items):.4f}")
    try:
        import implicit  # noqa: PLC0415
        from scipy.sparse import csr_matrix  # noqa: PLC0415
    except ImportError:
        sys.exit("implicit is not installed (pip install -e '.[bench]'): no ratio to print")
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    matrix = csr_matrix((w, (tu, ti)), shape=(n_users, n_items))
    with threadpool_limits(1, "blas"):  # implicit's own advice: its threads, BLAS single-threaded
        warm = implicit.cpu.als.AlternatingLeastSquares(factors=args.factors, iterations=1, random_state=42)
        warm.fit(matrix[:1000], show_progress=False)
        model = implicit.cpu.als.AlternatingLeastSquares(
            factors=args.factors,
            iterations=args.iterations,
            use_cg=True,
            regularization=0.05,
            random_state=42,
        )
        t0 = time.perf_counter()
        model.fit(matrix, show_progress=False)
        theirs = time.perf_counter() - t0
    print(f"implicit {implicit.__version__} CG: {theirs:.2f}s ({args.iterations * tu.size / theirs / 1e6:.2f}M/s)")
    Xi, Yi = torch.from_numpy(model.user_factors), torch.from_numpy(model.item_factors)
    print(f"  held-out NDCG@10 {held_out_ndcg(Xi, Yi, tu, ti, users[test], items[test], n_users, n_items):.4f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GB")
    print(f"ratio_to_implicit={ours / theirs:.2f}")


if __name__ == "__main__":
    main()
