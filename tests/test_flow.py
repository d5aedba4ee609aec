"""The nightly flow end to end on a real Prefect test server, real Parquet and a real DuckDB file."""

import duckdb
import pytest

from store.paths import db_path
from tests.store_helpers import state

TOP_N = 5
# tuning off (its own tests are in test_tuning.py): these nights test the flow with the configured models
FAST = dict(epochs=5, n_factors=8, top_n=TOP_N, rating_min=1, rating_max=5, seed=3, tune_budget=0, settle_seconds=0)


def q(warehouse, sql, params=None):
    with duckdb.connect(str(db_path(warehouse)), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def two_runs(prefect_harness, small_ratings, tmp_path_factory):
    from flows.nightly import nightly

    warehouse = tmp_path_factory.mktemp("flow") / "wh"
    first = nightly(source=str(small_ratings), warehouse=str(warehouse), **FAST)
    second = nightly(source=str(small_ratings), warehouse=str(warehouse), **FAST)
    return warehouse, first, second


def test_every_user_gets_top_n_unseen_items(two_runs):
    warehouse, first, _ = two_runs
    n_users = q(warehouse, "select count(distinct user_id) from ratings")[0][0]
    assert first["n_users_scored"] == n_users
    per_user = q(
        warehouse,
        "select user_id, count(*), count(distinct item_id), min(rank), max(rank) "
        "from recommendations where run_id = ? group by user_id",
        [first["run_id"]],
    )
    assert len(per_user) == n_users
    assert all(row[1:] == (TOP_N, TOP_N, 1, TOP_N) for row in per_user)
    already_rated = q(warehouse, "select count(*) from recommendations r join ratings using (user_id, item_id)")
    assert already_rated == [(0,)]
    unknown = q(warehouse, "select count(*) from recommendations r anti join item_index using (item_id)")
    assert unknown == [(0,)]
    scores = q(warehouse, "select min(score), max(score) from recommendations")[0]
    assert 0.0 <= scores[0] <= scores[1] <= 5.5


def test_rerun_is_idempotent_and_deterministic(two_runs):
    warehouse, first, second = two_runs
    assert first["run_id"] != second["run_id"]
    assert [f["skipped"] for f in second["files"]] == [True]
    assert q(warehouse, "select count(*) from ingested_files") == [(1,)]
    assert q(warehouse, "select run_id, status from runs order by started_at") == [
        (first["run_id"], "succeeded"),
        (second["run_id"], "succeeded"),
    ]
    latest = q(warehouse, "select distinct run_id from latest_recommendations")
    assert latest == [(second["run_id"],)]
    lists = [
        q(warehouse, "select user_id, rank, item_id from recommendations where run_id = ? order by all", [r["run_id"]])
        for r in (first, second)
    ]
    assert lists[0] == lists[1] and len(lists[0]) == first["n_recommendations"]  # same seed on CPU -> same top-N
    assert first["metrics"]["valid_rmse"] == second["metrics"]["valid_rmse"]


def test_run_metadata_is_recorded(two_runs):
    warehouse, first, _ = two_runs
    row = q(
        warehouse,
        "select n_ratings, n_users, n_items, n_recommendations, device, config->>'top_n', "
        "metrics->>'valid_rmse', timings->>'train', versions->>'torch' from runs where run_id = ?",
        [first["run_id"]],
    )[0]
    assert row[0] == 6000 and row[3] == first["n_recommendations"] and row[4] == "cpu"
    assert row[5] == str(TOP_N) and float(row[6]) > 0 and float(row[7]) > 0 and row[8]
    assert first["metrics"]["refit"] == {"from": "scratch"}  # a small night starts over on every rating


def test_a_large_night_refits_by_going_on_from_the_validated_models(prefect_harness, small_ratings, tmp_path):
    """From ``refit_continue_from`` ratings the refit continues the validated models for refit_epochs /
    refit_rank_iterations; the lists still cover every user."""
    from flows.nightly import nightly

    warehouse = tmp_path / "wh"
    summary = nightly(
        source=str(small_ratings), warehouse=str(warehouse), refit_continue_from=0, refit_rank_iterations=3, **FAST
    )
    assert summary["metrics"]["refit"] == {"from": "validated", "epochs": 1, "rank_iterations": 3}
    (users,) = q(
        warehouse, "select count(distinct user_id) from recommendations where run_id = ?", [summary["run_id"]]
    )[0]
    assert users == summary["n_users_scored"] == q(warehouse, "select count(distinct user_id) from ratings")[0][0]


def test_failed_night_leaves_published_results(two_runs, tmp_path):
    from flows.nightly import nightly

    warehouse, _, second = two_runs
    bad = tmp_path / "u.data"
    bad.write_text("1\t2\tnot-a-rating\t3\n4\t5\tnope\t6\n")
    before = db_path(warehouse).read_bytes()
    result = nightly(source=str(bad), warehouse=str(warehouse), return_state=True, **FAST)
    assert result.is_failed()
    assert db_path(warehouse).read_bytes() == before  # the served snapshot is exactly as it was
    # the writer's state records the failure (readers see it in `runs` from the next publish on)
    status, error = state(warehouse, "select status, error from runs order by seq desc limit 1")[0]
    assert status == "failed" and "failed validation" in error and str(bad) in error
    parked = state(warehouse, "select path, reason from refused_files")
    assert len(parked) == 1 and parked[0][0] == str(bad.resolve()) and "failed validation" in parked[0][1]


def test_metrics_artifact_is_created(two_runs):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["collabflow-run-metrics"]))
            )

    artifacts = asyncio.run(read())
    assert artifacts and artifacts[0].type == "table"
    assert "valid_rmse" in str(artifacts[0].data)

    async def comparison():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["collabflow-model-comparison"]))
            )

    import json

    rows = json.loads(asyncio.run(comparison())[0].data)
    assert len({tuple(row) for row in rows}) == 1  # the UI takes its columns from the first row
    assert {row["model"] for row in rows} >= {"dot", "global_mean", "bias_only", "popularity"}


def test_default_run_generates_synthetic_data(prefect_harness, tmp_path):
    from flows.nightly import nightly

    warehouse = tmp_path / "wh"
    summary = nightly(warehouse=str(warehouse), epochs=1, top_n=TOP_N, tune_budget=0)
    assert (warehouse / "synthetic" / "ml-100k-seed42" / "ratings.parquet").exists()
    n_users = q(warehouse, "select count(distinct user_id) from ratings")[0][0]
    assert n_users == 943 and summary["n_recommendations"] == 943 * TOP_N
    assert q(warehouse, "select count(*) from latest_recommendations join ratings using (user_id, item_id)") == [(0,)]


def test_runs_report_models_next_to_baselines(two_runs):
    warehouse, first, _ = two_runs
    models = q(warehouse, "select metrics->'models' from runs where run_id = ?", [first["run_id"]])[0][0]
    import json

    models = json.loads(models)
    assert {"global_mean", "bias_only", "popularity", "dot"} <= set(models)
    assert models["dot"]["rmse"] < models["global_mean"]["rmse"]
    ranker = first["metrics"]["ranker"]
    assert models[ranker]["ndcg_at_10"] >= 0 and "ndcg_at_10" in first["metrics"]


def test_warm_start_validates_on_the_new_nights_ratings(prefect_harness, tmp_path):
    from flows.nightly import nightly
    from recmodel import synth

    frame = synth.generate(synth.custom_shape(200, 150, 6_000), seed=9)
    cut = frame["timestamp"].quantile(0.9)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    synth.write(frame.filter(frame["timestamp"] < cut), tmp_path / "a", "udata").rename(inbox / "a.data")
    warehouse = str(tmp_path / "wh")
    first = nightly(source=str(inbox), warehouse=warehouse, **FAST)
    synth.write(frame.filter(frame["timestamp"] >= cut), tmp_path / "b", "udata").rename(inbox / "b.data")
    second = nightly(source=str(inbox), warehouse=warehouse, warm_start=True, **FAST)
    assert first["metrics"]["validation"] == "random" and second["metrics"]["validation"] == "new-ratings"
    n_new = second["files"][1]["rows_loaded"]
    assert [f["skipped"] for f in second["files"]] == [True, False] and second["metrics"]["n_valid"] == n_new
    assert second["metrics"]["valid_rmse"] is not None and second["n_recommendations"] > 0

    # a damaged model file of the last published night: warm start falls back to training from scratch
    from store.paths import run_dir

    ranker_file = run_dir(warehouse, second["run_id"]) / "ranker.safetensors"
    ranker_file.write_bytes(ranker_file.read_bytes()[:100])
    third = nightly(source=str(inbox), warehouse=warehouse, warm_start=True, **FAST)
    assert third["metrics"]["validation"] == "random" and third["n_recommendations"] > 0


def test_similar_items_are_published(two_runs):
    warehouse, first, second = two_runs
    n_items = q(warehouse, "select count(*) from item_index")[0][0]
    per_item = q(
        warehouse,
        "select count(distinct item_id), max(rank), count(*) filter (where item_id = similar_item_id) "
        "from latest_similar_items",
    )[0]
    assert per_item == (n_items, 10, 0)
    assert q(warehouse, "select count(distinct run_id) from similar_items") == [(2,)]


def test_every_run_writes_a_report(two_runs):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    warehouse, first, _ = two_runs
    report = warehouse / "runs" / first["run_id"] / "report"
    assert first["report"] and (report / "report.md").exists()
    for png in ("training.png", "pca.png", "recommendations.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (report / "report.md").read_text()
    assert "## Models next to the baselines" in text and "popularity" in text and "Item biases" in text

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["collabflow-report"]))
            )

    artifact = asyncio.run(read())[0]
    assert artifact.type == "markdown" and "report.md" in artifact.data


def test_rare_items_are_never_recommended(prefect_harness, small_ratings, tmp_path):
    from flows.nightly import nightly

    warehouse = tmp_path / "wh"
    nightly(source=str(small_ratings), warehouse=str(warehouse), min_item_ratings=30, **FAST)
    rare = q(
        warehouse,
        "select count(*) from latest_recommendations where item_id in "
        "(select item_id from ratings group by item_id having count(*) < 30)",
    )
    assert rare == [(0,)] and q(warehouse, "select count(*) from latest_recommendations")[0][0] > 0


def test_an_unmeasured_night_needs_permission_while_the_gate_is_on(prefect_harness, small_ratings, tmp_path):
    from flows.nightly import nightly

    warehouse = tmp_path / "wh"
    refused = nightly(
        source=str(small_ratings), warehouse=str(warehouse), return_state=True, **{**FAST, "valid_pct": 0}
    )
    assert refused.is_failed() and "not measured" in str(refused.message)
    assert not db_path(warehouse).exists()  # nothing published
    allowed = nightly(
        source=str(small_ratings), warehouse=str(warehouse), allow_unmeasured=True, **{**FAST, "valid_pct": 0}
    )
    assert allowed["metrics"]["measured"] is False and allowed["version"] == 1
    measured = nightly(source=str(small_ratings), warehouse=str(warehouse), **FAST)
    assert measured["version"] == 2  # compared with no measured night: nothing to be worse than
    worse = nightly(
        source=str(small_ratings),
        warehouse=str(warehouse),
        return_state=True,
        **{**FAST, "lr_max": 1e-6, "rank_factors": 2, "rank_iterations": 1},
    )
    assert worse.is_failed() and "worse than the published" in str(worse.message)  # compared with the measured one


def test_a_model_worse_than_its_baseline_is_never_published(prefect_harness, tmp_path):
    """On data whose taste signal is too weak for this size, popularity and bias-only win validation:
    their lists and scores are published, and the rows and the run record say so."""
    from flows.nightly import nightly
    from recmodel import synth

    weak = synth.write(synth.generate(synth.custom_shape(200, 150, 6_000), seed=7), tmp_path / "weak", "udata")
    summary = nightly(source=str(weak), warehouse=str(tmp_path / "wh"), **FAST)
    fallback = summary["metrics"]["fallback"]
    assert "popularity's lists are published" in fallback["ranker"]
    assert "bias-only scores are published" in fallback["rating_model"]
    assert (summary["metrics"]["ranker"], summary["metrics"]["rating_model"]) == ("popularity", "bias")
    models = summary["metrics"]["models"]
    assert summary["metrics"]["ndcg_at_10"] == models["popularity"]["ndcg_at_10"] > models["ials"]["ndcg_at_10"]
    assert summary["metrics"]["valid_rmse"] == models["bias_only"]["rmse"] < models["dot"]["rmse"]
    sources = q(tmp_path / "wh", "select distinct source from latest_recommendations")
    assert sources == [("baseline",)]
    history = q(tmp_path / "wh", "select ranker, rating_model from run_history")
    assert history == [("popularity", "bias")]


def test_where_no_one_rates_alike_the_global_mean_is_the_floor(prefect_harness, tmp_path):
    """Ratings drawn at random, whoever rates whatever: bias-only learns noise, and the global mean, the
    plainest baseline, predicts better. Its scores are published, and the record says so."""
    import numpy as np
    import polars as pl

    from flows.nightly import nightly

    rng = np.random.default_rng(5)
    n = 8_000
    path = tmp_path / "noise.csv"
    pl.DataFrame(
        {
            "user_id": rng.integers(0, 300, n),
            "item_id": rng.integers(0, 200, n),
            "rating": rng.integers(1, 6, n).astype(float),
            "timestamp": 874_724_710 + np.arange(n),
        }
    ).write_csv(path)
    summary = nightly(source=str(path), warehouse=str(tmp_path / "wh"), **FAST)
    metrics, models = summary["metrics"], summary["metrics"]["models"]
    assert "the global mean scores are published" in metrics["fallback"]["rating_model"]
    assert metrics["rating_model"] == "mean"
    assert metrics["valid_rmse"] == models["global_mean"]["rmse"] < models["bias_only"]["rmse"]
    assert models["global_mean"]["rmse"] < models["dot"]["rmse"]
    scores = q(tmp_path / "wh", "select distinct round(score, 6) from latest_recommendations")
    assert len(scores) == 1  # one score for every pair: the mean rating
    assert q(tmp_path / "wh", "select rating_model from run_history") == [("mean",)]
