"""Tuning (issue 12): the models and settings chosen per dataset on the run's own validation part."""

import json

import duckdb
import pytest
import torch

from recmodel import synth
from recmodel.config import RunConfig
from recmodel.evaluation import validation_report
from recmodel.ratings import index_frames
from recmodel.splits import split_random
from recmodel.tuning import apply_values, reusable, tune, tuned_values

CPU = torch.device("cpu")


def parts(frame, feedback="explicit", seed=1):
    (everything,), _, _ = index_frames(frame, feedback=feedback)
    train, valid = split_random(everything, 0.2, seed)
    return everything, train, valid


@pytest.fixture(scope="module")
def implicit_parts():
    shape = synth.custom_shape(300, 200, 9_000)
    frame = synth.generate_implicit(shape, seed=2).rename({"weight": "rating"})
    return parts(frame, "implicit")


@pytest.fixture(scope="module")
def implicit_tuned(implicit_parts):
    everything, train, valid = implicit_parts
    cfg = RunConfig.from_flat(tune_budget=20, rank_iterations=4, seed=3)
    return cfg, tune(train, valid, cfg, CPU, len(everything))


def test_the_choice_is_at_least_as_good_as_the_configured_models(implicit_parts, implicit_tuned):
    cfg, tuned = implicit_tuned
    trials = tuned.record["trials"]
    configured = next(t for t in trials if t["model"] == cfg.rank.ranker and not t["params"])
    best = max(t["score"] for t in trials)
    assert best >= configured["score"]
    # the chosen settings are those of the best trial, and the fitted ranker handed over is that trial's
    winner = max(trials, key=lambda t: t["score"])
    assert tuned.cfg.rank.ranker == winner["model"]
    for name, value in winner["params"].items():
        assert tuned.record["chosen"][name] == value
    assert tuned.ranker is not None and tuned.rater is None  # implicit data: no rating model
    # its validation report comes along (the night's metrics reuse it): that of the ranker handed over
    everything, train, valid = implicit_parts
    assert tuned.ranker_report == validation_report(tuned.ranker, train, valid, tuned.cfg, CPU)
    assert tuned.ranker_report[f"ndcg_at_{cfg.metric_k}"] == pytest.approx(winner["score"], abs=1e-6)


def test_the_search_moves_off_poor_defaults(implicit_parts):
    """Deliberately poor starting values (a huge EASE lambda): the climb brings the score up."""
    everything, train, valid = implicit_parts
    cfg = RunConfig.from_flat(tune_budget=20, ranker="ease", ease_lambda=50_000.0, rank_iterations=4, seed=3)
    tuned = tune(train, valid, cfg, CPU, len(everything))
    first = tuned.record["trials"][0]
    assert first["model"] == "ease" and not first["params"]
    assert max(t["score"] for t in tuned.record["trials"]) > first["score"]
    assert tuned.record["changed"]


def test_same_data_and_seed_choose_the_same_values(implicit_parts, implicit_tuned):
    everything, train, valid = implicit_parts
    cfg, first = implicit_tuned
    again = tune(train, valid, cfg, CPU, len(everything))
    assert again.record["chosen"] == first.record["chosen"]
    assert [(t["model"], t["params"]) for t in again.record["trials"]] == [
        (t["model"], t["params"]) for t in first.record["trials"]
    ]


def test_the_budget_is_spent_by_plan(implicit_parts):
    everything, train, valid = implicit_parts
    cfg = RunConfig.from_flat(tune_budget=0.05, rank_iterations=4, seed=3)
    tuned = tune(train, valid, cfg, CPU, len(everything))
    assert tuned.record["planned_s"] <= 0.05
    # the configured ranker is fitted anyway (the night needs it): it is the only trial a tiny budget allows
    # beside those predicted to fit in it
    charged = [t for t in tuned.record["trials"][1:]]
    assert sum(t["predicted_s"] for t in charged) <= 0.05 + 1e-9


def test_no_climb_when_the_budget_cannot_pay_for_the_configured_trial(implicit_parts):
    """Large data: the configured iALS is fitted (due anyway), but one more trial of its size is over the
    budget. The climb then does not try cheaper variants (half the factors) just because they fit."""
    from recmodel.tuning import ials_cost

    everything, train, valid = implicit_parts
    cfg = RunConfig.from_flat(ranker="ials", rank_iterations=4, seed=3, rank_factors=64)
    half = ials_cost(train, cfg.rank.model_copy(update={"rank_factors": 32}))
    assert half < 0.7 * ials_cost(train, cfg.rank)  # a budget between the two costs, EASE trials beside
    cfg = cfg.model_copy(update={"tune_budget": 0.95 * ials_cost(train, cfg.rank)})
    tuned = tune(train, valid, cfg, CPU, len(everything))
    ials = [t for t in tuned.record["trials"] if t["model"] == "ials"]
    assert len(ials) == 1 and not ials[0]["params"]
    assert tuned.cfg.rank.rank_factors == 64


def test_no_charged_trial_costs_more_than_a_sixth_of_the_budget(implicit_parts):
    """``MAX_TRIAL_SHARE``: with a budget that holds several iALS-sized trials but where one costs more than
    a sixth of it, only the configured iALS is fitted at that size (large data keeps its configured models;
    cheap EASE trials still run); with a budget just over six trials, iALS-sized trials (the hybrid's) run
    too, and every charged trial is under the cap."""
    from recmodel.tuning import MAX_TRIAL_SHARE, ials_cost

    everything, train, valid = implicit_parts
    cfg = RunConfig.from_flat(ranker="ials", rank_iterations=4, seed=3)
    cost = ials_cost(train, cfg.rank, cfg.metric_users)
    for budget, climbs in ((0.9 * cost / MAX_TRIAL_SHARE, False), (1.1 * cost / MAX_TRIAL_SHARE, True)):
        tuned = tune(train, valid, cfg.model_copy(update={"tune_budget": budget}), CPU, len(everything))
        sized = [t for t in tuned.record["trials"][1:] if t["predicted_s"] >= 0.99 * cost]
        assert bool(sized) == climbs
        assert all(t["predicted_s"] <= budget * MAX_TRIAL_SHARE for t in tuned.record["trials"][1:])


def test_explicit_data_tunes_the_rating_model_too():
    everything, train, valid = parts(synth.taste_groups(150, 120, 25, seed=4))
    cfg = RunConfig.from_flat(tune_budget=10, epochs=3, n_factors=8, rank_iterations=4, rating_min=1, rating_max=5)
    tuned = tune(train, valid, cfg, CPU, len(everything))
    raters = [t for t in tuned.record["trials"] if t["model"] in ("dot", "neural", "bayes")]
    assert raters and tuned.rater is not None and tuned.result is not None
    assert tuned.result.final.valid_rmse == pytest.approx(min(t["score"] for t in raters), abs=1e-6)
    assert tuned.cfg.train.rating_model == min(raters, key=lambda t: t["score"])["model"]


def test_evaluate_publishes_what_a_night_would_a_baseline_where_one_wins():
    """``evaluate``'s published row (tuned_report) applies the night's floors on its validation part: on
    ratings drawn at random the global mean's scores, on data with a taste signal the tuned models."""
    import numpy as np
    import polars as pl

    from recmodel.evaluation import tuned_report

    rng = np.random.default_rng(5)
    n = 8_000
    noise = pl.DataFrame(
        {
            "user_id": rng.integers(0, 300, n),
            "item_id": rng.integers(0, 200, n),
            "rating": rng.integers(1, 6, n).astype(float),
            "timestamp": 874_724_710 + np.arange(n),
        }
    )
    cfg = RunConfig.from_flat(tune_budget=5, epochs=3, n_factors=8, rank_iterations=4, rating_min=1, rating_max=5)
    for frame, rating_model in ((noise, "mean"), (synth.taste_groups(150, 120, 25, seed=4), None)):
        _, train, test = parts(frame)
        report = tuned_report(train, test, cfg, CPU)
        if rating_model is None:  # the signal is learnt: a model, not a baseline
            assert report["rating_model"] in ("dot", "neural", "bayes") and "fallback" not in report
        else:
            assert report["rating_model"] == rating_model and "global mean" in report["fallback"]["rating_model"]
            assert report["rmse"] == pytest.approx(float(np.sqrt(np.mean((test.ratings - train.ratings.mean()) ** 2))))


def test_tuned_values_round_trip_and_reuse_rule():
    cfg = RunConfig.from_flat(tune_budget=10)
    values = {**tuned_values(cfg), "ranker": "ease", "ease_lambda": 123.0, "wd": 0.2}
    applied = apply_values(cfg, values)
    assert tuned_values(applied) == values
    record = {"chosen": values, "base": cfg.config_hash(), "n_ratings": 1000}
    assert reusable(record, cfg, 1200)  # grew 20% < 25%
    assert not reusable(record, cfg, 1300)  # grew 30%
    assert not reusable(record, RunConfig.from_flat(tune_budget=10, seed=1), 1000)  # other settings asked for


def runs_config(warehouse):
    from store.paths import db_path

    with duckdb.connect(str(db_path(warehouse)), read_only=True) as con:
        rows = con.execute("select config, metrics from runs order by seq").fetchall()
    return [(json.loads(c), json.loads(m)) for c, m in rows]


def test_nights_record_reuse_and_retune(prefect_harness, tmp_path):
    """Night 1 tunes and records what it trained with; night 2 (a few more ratings) reuses those values;
    night 3 (the data grew by more than tune_regrowth) searches again."""
    from flows.nightly import nightly

    frame = synth.taste_groups(200, 150, 30, seed=7)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    n = frame.height
    params = dict(
        epochs=3,
        n_factors=8,
        rank_iterations=4,
        top_n=5,
        rating_min=1,
        rating_max=5,
        seed=3,
        tune_budget=5,
        settle_seconds=0,
        gate_tolerance=None,
    )
    warehouse = str(tmp_path / "wh")
    frame.head(int(n * 0.7)).write_csv(inbox / "a.csv")
    nightly(source=str(inbox), warehouse=warehouse, **params)
    frame.slice(int(n * 0.7), int(n * 0.05)).write_csv(inbox / "b.csv")
    nightly(source=str(inbox), warehouse=warehouse, **params)
    frame.slice(int(n * 0.75)).write_csv(inbox / "c.csv")
    nightly(source=str(inbox), warehouse=warehouse, **params)
    (c1, m1), (c2, m2), (c3, m3) = runs_config(warehouse)
    assert m1["tuning"]["trials"] and "reused_from" not in m1["tuning"]
    assert c1["trained"] == m1["tuning"]["chosen"]
    assert m2["tuning"]["reused_from"] and "trials" not in m2["tuning"]
    assert c2["trained"] == c1["trained"]
    assert m3["tuning"]["trials"] and "reused_from" not in m3["tuning"]
    assert m1["ranker"] == c1["trained"]["ranker"] or "fallback" in m1
