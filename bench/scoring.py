"""Scoring all unseen pairs against the GEMM floor, measured in the same run (issue 4).

Shape: ML-25M (162,541 users x 59,047 items) with d = 64 factors and top-100, or a share of the
users with --users-share. The floor is the same-size float32 matrix product alone (numpy, blocked
to the same memory budget, no masking, no top-k); the product is collabflow's blocked scorer
(product + in-place mask of rated items + exact top-N with deterministic ties). Floor and product run
``--repeat`` times, interleaved, and the best of each is kept. Also timed once, for reference: the
torch.topk path (what a GPU runs) on this CPU, and implicit's ``recommend`` when installed
(``pip install -e '.[bench]'``). Exactness: for a sample of users the lists must equal a float64
reference.

    python bench/scoring.py [--users-share 0.1] [--memory-mb 512] [--repeat 3]
Ends with a line ``ratio_to_floor=<x>``.
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

from recmodel import synth  # noqa: E402
from recmodel.score import top_n_unseen  # noqa: E402
from recmodel.sparse import csr_from_pairs  # noqa: E402


def best_of(repeat: int, *fns):
    """Run each function ``repeat`` times, interleaved (drift on a shared machine hits all alike); best times."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for t, fn in zip(times, fns):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [min(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users-share", type=float, default=1.0, help="score this share of ML-25M's users")
    ap.add_argument("--memory-mb", type=int, default=512)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--top-n", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3, help="best of this many interleaved runs of floor and product")
    ap.add_argument("--no-reference", action="store_true", help="skip torch.topk and implicit (when installed)")
    ap.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="cuda: factors on the GPU, floor = torch.mm on the GPU; the lists still come back to the host",
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    ratings = synth.generate("ml-25m", seed=0)
    users = ratings["user_id"].to_numpy() - 1
    items = np.unique(ratings["item_id"].to_numpy(), return_inverse=True)[1]
    del ratings
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    print(f"generated {users.size:,} ratings in {time.perf_counter() - t0:.1f}s")
    scored = np.arange(int(n_users * args.users_share))
    rng = np.random.default_rng(0)
    U = rng.standard_normal((n_users, args.factors), dtype=np.float32)
    V = rng.standard_normal((n_items, args.factors), dtype=np.float32)
    indptr, indices = csr_from_pairs(users, items, n_users)
    block = max(1, args.memory_mb * 2**20 // (n_items * 8))
    Vt = np.ascontiguousarray(V.T)
    out = np.empty((block, n_items), dtype=np.float32)

    Ud, Vd = torch.from_numpy(U).to(args.device), torch.from_numpy(V).to(args.device)
    cuda = args.device == "cuda"
    if cuda:
        block = max(1, 8 * 2**30 // (n_items * 8))  # GPU blocks: 8 GB of scores at a time

    def floor() -> None:  # the same product alone: numpy/OpenBLAS at its default threads (or torch.mm on the GPU)
        for s in range(0, scored.size, block):
            b = scored[s : s + block]
            if cuda:
                Ud[torch.as_tensor(b, device="cuda")] @ Vd.T
            else:
                np.matmul(U[b], Vt, out=out[: b.size])
        if cuda:
            torch.cuda.synchronize()

    t0 = time.perf_counter()  # the first call loads (or compiles) the numba kernel / CUDA kernels: timed on its own
    top_n_unseen(Ud, Vd, indptr, indices, args.top_n, users=scored[:64])
    jit = time.perf_counter() - t0
    result = {}

    def product() -> None:
        result["top"] = top_n_unseen(
            Ud, Vd, indptr, indices, args.top_n, users=scored, memory_mb=8 * 1024 if cuda else args.memory_mb
        )

    floor_s, product_s = best_of(args.repeat, floor, product)
    top = result["top"]

    sample = rng.choice(scored, size=min(50, scored.size), replace=False)
    exact = 0
    for u in sample:
        scores = U[u].astype(np.float64) @ V.T.astype(np.float64)
        scores[indices[indptr[u] : indptr[u + 1]]] = -np.inf
        expected = np.lexsort((np.arange(n_items), -scores))[: args.top_n]
        got = top.items[np.searchsorted(scored, u)]
        exact += int(np.array_equal(expected, got))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"users scored {scored.size:,} x {n_items:,} items, d={args.factors}, top-{args.top_n}, best of {args.repeat}"
    )
    print(f"floor (numpy float32 GEMM, blocks of {block} users): {floor_s:.2f}s")
    print(f"collabflow scoring: {product_s:.2f}s (kernel load before it: {jit:.2f}s)")
    if not args.no_reference and not cuda:
        t0 = time.perf_counter()
        torch_top = top_n_unseen(
            torch.from_numpy(U),
            torch.from_numpy(V),
            indptr,
            indices,
            args.top_n,
            users=scored,
            memory_mb=args.memory_mb,
            engine="torch",
        )
        torch_s = time.perf_counter() - t0
        same = np.array_equal(torch_top.items, top.items)
        print(
            f"torch.topk path (the GPU algorithm, on this CPU): {torch_s:.2f}s, ratio {torch_s / floor_s:.2f}, "
            f"identical lists: {same}"
        )
        del torch_top
        try:
            import scipy.sparse as sp
            from implicit.cpu.als import AlternatingLeastSquares
        except ImportError:
            print("implicit: not installed (pip install -e '.[bench]')")
        else:
            model = AlternatingLeastSquares(factors=args.factors)
            model.user_factors, model.item_factors = U, V
            user_items = sp.csr_matrix((np.ones(indices.size, np.float32), indices, indptr), shape=(n_users, n_items))
            t0 = time.perf_counter()
            model.recommend(scored, user_items[scored], N=args.top_n, filter_already_liked_items=True)
            implicit_s = time.perf_counter() - t0
            print(f"implicit recommend: {implicit_s:.2f}s, ratio {implicit_s / floor_s:.2f}")
    print(f"exact vs float64 reference: {exact}/{sample.size} sampled users identical; peak RSS {peak_gb:.1f} GB")
    print(f"ratio_to_floor={product_s / floor_s:.2f}")


if __name__ == "__main__":
    main()
