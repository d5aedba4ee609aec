"""Behaviour fingerprints (issue 14): the same data, seed and settings give the same published lists.

The fingerprints below were taken on the code *before* the "one home per concept" renovation; every
refactoring since must reproduce them exactly. Every setting is pinned here, so a change of a default
does not move them; a deliberate change of a model's maths does, and its commit says so and re-takes
them (run this file with ``COLLABFLOW_PRINT_FINGERPRINTS=1`` to print the new values).

Only item lists are hashed, never scores: a score's last bits depend on the CPU's vector width, a list
does not (neighbouring scores differ by far more than that).
"""

import hashlib
import os

import duckdb
import numpy as np
import pytest
import torch

from recmodel import synth

PINNED = dict(
    epochs=3,
    n_factors=8,
    top_n=5,
    rating_min=1,
    rating_max=5,
    seed=3,
    rating_model="dot",
    ranker="ials",
    rank_factors=16,
    rank_iterations=4,
    similar_n=5,
    valid_pct=0.2,
    gate_tolerance=None,
)

# taken before the renovation (see the module docstring)
FLOW_LISTS = "dc2792457e1ae2d80e2f39351141e652fb5b52787e159ca21bb233bedc81cc39"
FLOW_SIMILAR = "082897aacf6900f7b943585d2fdf8337168cff37f127b1bed91249026fb37669"
LIBRARY = {
    "ials": "2ad22511c678378634ffb4e853ade1ae22ff217ab30da1334ec66fafdb7d36cf",
    "ease": "09812ff82f90deafcd2b2d8e4fb43a66051b9db4a6118bc49f62946bb73954cd",
    "popularity": "2646d089c262ef04cc7b58e97f49561c2f827f01b8a27134cbbda5e6cde8fb2f",
    "dot": "0d135c377acbcee04cbd043926486249d754b5691490cf742d87d2e20e81eb63",
    "neural": "47a8ca628c833772d2b2e1e8878a477cfa3b5eac2ad6e7f10a73277d4078a45a",
}


def digest(rows) -> str:
    h = hashlib.sha256()
    for row in rows:
        h.update(repr(tuple(int(v) for v in row)).encode())
    return h.hexdigest()


def check(name: str, got: str, expected: str) -> None:
    if os.environ.get("COLLABFLOW_PRINT_FINGERPRINTS"):
        print(f"{name} = {got!r}")
        return
    assert got == expected, f"{name}: the lists changed (fingerprint {got}, expected {expected})"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frame = synth.generate(synth.custom_shape(300, 200, 9_000), seed=21)
    return synth.write(frame, tmp_path_factory.mktemp("fingerprint"), "udata")


def test_nightly_flow_lists_are_unchanged(prefect_harness, data, tmp_path):
    from flows.nightly import nightly

    warehouse = tmp_path / "wh"
    nightly(source=str(data), warehouse=str(warehouse), **PINNED)
    with duckdb.connect(str(warehouse / "collabflow.duckdb"), read_only=True) as con:
        lists = con.execute("select user_id, rank, item_id from latest_recommendations order by all").fetchall()
        similar = con.execute("select item_id, rank, similar_item_id from latest_similar_items order by all").fetchall()
    check("FLOW_LISTS", digest(lists), FLOW_LISTS)
    check("FLOW_SIMILAR", digest(similar), FLOW_SIMILAR)


def library_lists(data) -> dict[str, str]:
    """Top-10 of every ranker and rating model for every user, fitted through the library directly."""
    import polars as pl

    from recmodel.config import RankConfig, TrainConfig
    from recmodel.rankers import fit_ranker
    from recmodel.ratings import index_frames
    from recmodel.score import recommend
    from recmodel.train import fit_rater

    frame = pl.read_csv(
        data, separator="\t", has_header=False, new_columns=["user_id", "item_id", "rating", "timestamp"]
    )
    (ratings,), _, _ = index_frames(frame)
    cpu = torch.device("cpu")
    users = np.arange(ratings.n_users)
    out = {}
    for name in ("ials", "ease", "popularity"):
        cfg = RankConfig(ranker=name, rank_factors=16, rank_iterations=4)
        top = recommend(fit_ranker(ratings, cfg, cpu, seed=5), ratings, users, 10)
        out[name] = digest(np.column_stack([top.users, top.items]))
    for name in ("dot", "neural"):
        cfg = TrainConfig(rating_model=name, n_factors=8, epochs=2, nn_epochs=2, seed=5, y_range=(0.5, 5.5))
        model, _ = fit_rater(ratings, cfg, cpu)
        top = recommend(model.as_ranker(), ratings, users, 10)
        out[name] = digest(np.column_stack([top.users, top.items]))
    return out


@pytest.fixture(scope="module")
def library(data):
    return library_lists(data)


@pytest.mark.parametrize("name", ["ials", "ease", "popularity", "dot", "neural"])
def test_library_lists_are_unchanged(library, name):
    check(f"LIBRARY[{name!r}]", library[name], LIBRARY.get(name, ""))
