"""Choose the ranker, the rating model and their key hyperparameters per dataset, in a time budget.

Everything is measured on the run's own validation part (``fit_night`` hands it over; an evaluation's
test part is never seen). The search is a coordinate climb from the configured values: for one setting
at a time, step it by a factor while the validation score improves, then go on to the next setting.

* Rankers (score: NDCG@k, higher is better): the configured one and EASE or iALS beside it; then the
  leader's settings: iALS unobserved weight, regularisation, factors and (implicit data with weights)
  the confidence alpha; EASE's lambda.
* Rating models (explicit data; score: RMSE, lower is better): weight decay, epochs, factors, and the
  neural model as a challenger.

**Deterministic.** The budget (``tune_budget`` seconds) is spent by plan, not by the clock: each trial's
cost is predicted from the data's size with a cost model of this code on two CPU cores, so the same data,
settings and seed choose the same values on any machine (the measured seconds are logged beside the
predicted ones). A trial predicted to overrun the remaining budget, or to cost more than a sixth of the
whole budget (``MAX_TRIAL_SHARE``: large data keeps its configured models), is not started.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .config import RankConfig, RunConfig, TrainConfig
from .evaluation import validation_report
from .metrics import mae, rmse
from .models import BayesBlend, RatingModule
from .rankers import EASE_MAX_ITEMS, Ranker, fit_ranker
from .ratings import Ratings
from .train import EpochStats, FitResult, dense_steps, effective_batch_size, fit_rater

log = logging.getLogger(__name__)

# Seconds per unit of work on two CPU cores (bench/any_data.py prints predicted next to measured). Measured
# on this code at ML-100K, ML-1M and ML-10M shapes; the first cost model (of the torch trainers, before the
# numba kernels) predicted 4-15x the time, and the search stopped after 6 trials at ML-1M shape.
IALS_SECONDS = 2e-10  # per (interaction x factor + row x factor^2) x pass (the fused CPU kernel; ML-10M: 9.4 s)
SCORE_SECONDS = 1e-11  # per user x item x factor: scoring the validation part's lists
EASE_SECONDS = 3.5e-11  # per item^3 (the inverse) and per interaction x item (the Gram matrix)
RATER_SECONDS = 1e-7  # per training rating x epoch (small factors; grows with them)
NEURAL_SECONDS = 2.7e-7  # the same for the neural model (autograd, not a numba kernel; ML-100K: 1.6 s a fit)
STEP_SECONDS = 3e-5  # per optimizer step (fixed costs that dominate on small data)
# the dot model's dense AdamW step (train.dense_steps) per row x step, for rows past the first 20k: the first
# stay in the cache and cost next to nothing (1M ratings, 1000 steps: dense 0.27 s / lazy 0.24 s an epoch at
# 10k rows, 0.46 / 0.28 at 30k, 0.75 / 0.30 at 60k, 1.3 / 0.3 at 100k)
DENSE_ROW_SECONDS = 1.2e-8
CACHED_ROWS = 20_000
# the dot model's tables (weights and AdamW's two moments, 12 bytes per factor) past the cache: each rating
# reaches two rows, and every doubling of the tables beyond TABLE_CACHE_BYTES adds MISS_PER_DOUBLING to a
# rating's cost. Measured on skewed data, where popular rows stay cached: a dot trial on an Amazon-like night
# (1.77M users and items, 4M ratings) took 5.7-6.6 s, predicted 3.2 s before and 7.2 s now; at ML-25M shape
# (222k rows) 20.7 s, predicted 15.2 and now 19.3 s. Rows drawn uniformly at random cost more (2M ratings:
# 0.21 s an epoch at 40k rows, 0.37 at 300k, 0.53 at 1M, 0.73 at 4M). ROW_SECONDS per row past CACHED_ROWS,
# once a fit: initialising, allocating and copying the tables (0.2 s at 300k rows, 1.8 s at 4M)
TABLE_CACHE_BYTES = 64 << 20
MISS_PER_DOUBLING = 0.25
ROW_SECONDS = 5e-7
GIBBS_SECONDS = 1.9e-10  # per rating x factors^2 x Gibbs pass (both sides; ML-100K and ML-1M shapes)
MAX_TRIALS = 16  # per phase
# A charged trial may cost at most this share of the budget: a search is several trials or none. Data whose
# trials cost more (ML-10M shape: the dot model 5 s, iALS 9 s) keeps its configured models, and its night
# is not stretched by the one or two trials that would fit.
MAX_TRIAL_SHARE = 1 / 6


@dataclass
class Trial:
    """One fitted candidate: which model, the settings that differ from the configured ones, its score."""

    model: str
    params: dict[str, Any]
    score: float
    predicted_s: float
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "params": self.params,
            "score": round(self.score, 6),
            "predicted_s": round(self.predicted_s, 3),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Tuned:
    """The chosen settings and the models fitted with them on the training part (reused, not refitted)."""

    cfg: RunConfig
    ranker: Ranker | None
    rater: RatingModule | None
    result: FitResult | None
    record: dict[str, Any] = field(default_factory=dict)
    ranker_report: dict[str, float] | None = None  # ``ranker``'s validation report, as measured in its trial


class _Plan:
    """The budget, spent by predicted cost, and the log of trials."""

    def __init__(self, budget_s: float, largest_s: float):
        self.left = budget_s
        self.largest = largest_s  # the most one charged trial may cost
        self.trials: list[Trial] = []
        self.phase_trials = 0  # trials of the current phase (rankers, then rating models)

    def phase(self, budget_s: float) -> None:
        self.left += budget_s
        self.phase_trials = 0

    def affords(self, predicted_s: float) -> bool:
        return self.phase_trials < MAX_TRIALS and predicted_s <= min(self.left, self.largest)

    def record(self, trial: Trial, charged: bool = True) -> None:
        if charged:
            self.left -= trial.predicted_s
        self.trials.append(trial)
        self.phase_trials += 1
        log.info(
            "tuning: %s %s -> %.4f (%.2fs, predicted %.2fs)",
            trial.model,
            trial.params or "(configured)",
            trial.score,
            trial.seconds,
            trial.predicted_s,
        )


def ials_cost(data: Ratings, cfg: RankConfig, scored_users: int = 0) -> float:
    """Fitting, then scoring ``scored_users`` users' lists (0: every user) for the validation metrics."""
    f = cfg.rank_factors
    per_pass = len(data) * f * cfg.rank_cg_steps + (data.n_users + data.n_items) * f * f
    scored = min(scored_users or data.n_users, data.n_users)
    return IALS_SECONDS * per_pass * cfg.rank_iterations + SCORE_SECONDS * scored * data.n_items * f


def ease_cost(data: Ratings) -> float:
    if data.n_items > EASE_MAX_ITEMS:
        return math.inf
    return EASE_SECONDS * (data.n_items**3 + data.n_users * data.n_items * data.n_items / 64)


def rater_cost(data: Ratings, cfg: TrainConfig) -> float:
    if cfg.rating_model == "bayes":  # the dot half, then the Gibbs passes
        gibbs = GIBBS_SECONDS * cfg.bayes_iterations * (len(data) + data.n_users + data.n_items) * cfg.bayes_factors**2
        return rater_cost(data, cfg.model_copy(update={"rating_model": "dot"})) + gibbs
    cfg = cfg.for_model()
    width = 1.0 + cfg.n_factors / 100 + (cfg.nn_hidden / 15 if cfg.rating_model == "neural" else 0.0)
    steps = len(data) / effective_batch_size(len(data), cfg.batch_size, cfg.max_steps_per_epoch)
    rows = data.n_users + data.n_items
    dense = DENSE_ROW_SECONDS * max(0, rows - CACHED_ROWS) * steps * width if dense_steps(len(data), rows, cfg) else 0.0
    if cfg.rating_model == "neural":  # autograd's dense steps: the tables are read whole, not at random
        return (NEURAL_SECONDS * len(data) * width + STEP_SECONDS * steps + dense) * cfg.epochs
    table = rows * (cfg.n_factors + 1) * 12
    miss = MISS_PER_DOUBLING * math.log2(table / TABLE_CACHE_BYTES) if table > TABLE_CACHE_BYTES else 0.0
    per_epoch = RATER_SECONDS * len(data) * width * (1.0 + miss) + STEP_SECONDS * steps + dense
    return per_epoch * cfg.epochs + ROW_SECONDS * max(0, rows - CACHED_ROWS)


# ---------------------------------------------------------------- rankers


_RANK_STEPS: dict[str, tuple[tuple[str, float], ...]] = {
    # setting, factor per step (tried up first, then down when up does not help)
    "ials": (("rank_unobserved_weight", 3.0), ("rank_reg", 4.0), ("rank_factors", 2.0), ("implicit_alpha", 4.0)),
    "ease": (("ease_lambda", 2.0),),
    "hybrid": (("hybrid_ials_share", 1.5), ("ease_lambda", 2.0)),
}
BOOST_STEP = ("rating_boost", 2.0)  # explicit feedback with a rating model: tried on the leading ranker
_BOUNDS: dict[str, tuple[float, float]] = {
    "rank_unobserved_weight": (1e-3, 10.0),
    "rank_reg": (1e-4, 10.0),
    "rank_factors": (16, 512),
    "implicit_alpha": (0.0, 40.0),
    "rating_boost": (0.0, 4.0),
    "hybrid_ials_share": (0.1, 0.9),
    "ease_lambda": (1.0, 1e5),
    "wd": (1e-3, 10.0),
    "epochs": (2, 40),
    "n_factors": (8, 400),
    "nn_wd": (1e-3, 10.0),
    "nn_epochs": (2, 40),
}
_INTS = {"rank_factors", "epochs", "n_factors", "nn_epochs"}


def _step(name: str, value: float, factor: float) -> float | None:
    lo, hi = _BOUNDS[name]
    if name in ("implicit_alpha", "rating_boost") and value == 0:
        new = {"implicit_alpha": 1.0, "rating_boost": 0.25}[name] if factor > 1 else None
    else:
        new = value * factor
    if new is None:
        return None
    if name == "implicit_alpha" and factor < 1 and new < 0.1:
        new = 0.0  # every interaction counts the same
    if name == "rating_boost" and factor < 1 and new < 0.1:
        new = 0.0  # the ranker alone
    new = min(max(new, lo), hi)
    new = int(round(new)) if name in _INTS else float(f"{new:.4g}")
    return None if new == value else new


def _climb(
    plan: _Plan,
    model: str,
    start: dict[str, Any],
    best_score: float,
    best_fit: Any,
    steps: tuple[tuple[str, float], ...],
    trial: Callable[[dict[str, Any]], tuple[float, Any, float]],
    higher_is_better: bool,
    cost: float,
) -> tuple[dict[str, Any], float, Any]:
    """Coordinate climb: each setting in turn, stepped while the score improves. Not started when the
    budget cannot pay for one more trial at ``cost`` (the start's own): the only trials left would be
    cheaper variants (fewer factors, fewer epochs), tried because they fit and not because they might win."""
    best = dict(start)
    if not plan.affords(cost):
        log.info(
            "tuning: %s's %s not tried: a trial is predicted at %.1fs; the budget has %.1fs left, %.1fs a trial",
            model,
            ", ".join(name for name, _ in steps),
            cost,
            plan.left,
            plan.largest,
        )
        return best, best_score, best_fit

    def better(a: float, b: float) -> bool:
        return a > b if higher_is_better else a < b

    for name, factor in steps:
        if name not in best:
            continue
        for direction in (factor, 1 / factor):
            improved = False
            while (value := _step(name, best[name], direction)) is not None:
                candidate = {**best, name: value}
                score, fitted, predicted = trial(candidate)
                if math.isnan(score):
                    break
                if not better(score, best_score):
                    break
                best, best_score, best_fit, improved = candidate, score, fitted, True
            if improved or not plan.affords(0):
                break
    return best, best_score, best_fit


def _rank_settings(model: str, cfg: RankConfig, data: Ratings) -> dict[str, Any]:
    if model == "ease":
        return {"ease_lambda": cfg.ease_lambda}
    if model == "hybrid":  # its iALS half keeps the configured (or already tuned) iALS settings
        return {"hybrid_ials_share": cfg.hybrid_ials_share, "ease_lambda": cfg.ease_lambda}
    keys = ["rank_unobserved_weight", "rank_reg", "rank_factors"]
    if data.implicit and np.ptp(data.ratings) > 0:  # weights that differ: how much they count is worth tuning
        keys.append("implicit_alpha")
    return {k: getattr(cfg, k) for k in keys}


def tune_ranker(
    train: Ratings,
    valid: Ratings,
    cfg: RunConfig,
    device: torch.device,
    plan: _Plan,
    rater: RatingModule | None = None,
) -> tuple[RankConfig, Ranker | None, dict[str, float] | None]:
    """The best ranker and settings on the validation part (the configured ones when nothing beats them),
    with its fitted ranker and that ranker's validation report. With ``rater`` (explicit feedback), the
    leader's ``rating_boost`` is climbed last."""
    key = f"ndcg_at_{cfg.metric_k}"
    memo: dict[str, Any] = {}  # the last iALS and EASE fits: a trial that changes neither reuses them

    def fit_and_score(model: str, settings: dict[str, Any], charged: bool = True) -> tuple[float, Any, float]:
        rank_cfg = cfg.rank.model_copy(update={"ranker": model, **settings})
        predicted = (ease_cost(train) if model in ("ease", "hybrid") else 0.0) + (
            ials_cost(train, rank_cfg, cfg.metric_users) if model in ("ials", "hybrid") else 0.0
        )
        if charged and not plan.affords(predicted):
            return math.nan, None, predicted
        t = time.perf_counter()
        ranker = fit_ranker(train, rank_cfg, device, cfg.train.seed, rater, memo=memo)
        report = validation_report(ranker, train, valid, cfg, device)
        changed = {n: v for n, v in settings.items() if getattr(cfg.rank, n) != v}
        plan.record(Trial(model, changed, report[key], predicted, time.perf_counter() - t), charged)
        return report[key], (ranker, report), predicted

    configured = cfg.rank.ranker
    if configured not in _RANK_STEPS:  # popularity or the rating model: nothing to tune
        return cfg.rank, None, None
    leaders: list[tuple[float, str, dict[str, Any], Any, float]] = []
    for model in (configured, *(m for m in _RANK_STEPS if m != configured)):
        settings = {**_rank_settings(model, cfg.rank, train), "rating_boost": cfg.rank.rating_boost}
        if model in ("ease", "hybrid") and train.n_items > EASE_MAX_ITEMS:
            continue
        # the configured one is due (the night needs it anyway): not charged
        score, fitted, cost = fit_and_score(model, settings, charged=model != configured)
        if not math.isnan(score):
            leaders.append((score, model, settings, fitted, cost))
    leaders.sort(key=lambda t: -t[0])  # climb the leader first, the others while the budget lasts
    best: tuple[float, str, dict[str, Any], Any, float] = leaders[0]
    boosting = rater is not None and not train.implicit
    for score, model, settings, fitted, cost in leaders[:1] if boosting else leaders:  # boosted: the leader only
        settings, score, fitted = _climb(
            plan,
            model,
            settings,
            score,
            fitted,
            _RANK_STEPS[model],
            lambda s, m=model: fit_and_score(m, s),  # type: ignore[misc]
            higher_is_better=True,
            cost=cost,
        )
        if score > best[0]:
            best = (score, model, settings, fitted, cost)
    score, model, settings, fitted, cost = best
    if boosting:
        settings, score, fitted = _climb(
            plan, model, settings, score, fitted, (BOOST_STEP,), lambda s: fit_and_score(model, s), True, cost
        )
    ranker, report = fitted
    return cfg.rank.model_copy(update={"ranker": model, **settings}), ranker, report


# ---------------------------------------------------------------- rating models


_RATER_STEPS: dict[str, tuple[tuple[str, float], ...]] = {
    "dot": (("wd", 2.0), ("epochs", 1.6), ("n_factors", 2.0)),
    "neural": (("nn_wd", 2.0), ("nn_epochs", 1.6)),
    "bayes": (("wd", 2.0), ("epochs", 1.6), ("n_factors", 2.0)),  # its dot half; the weight is fitted on valid
}


def tune_rater(
    train: Ratings, valid: Ratings, cfg: RunConfig, device: torch.device, plan: _Plan
) -> tuple[TrainConfig, RatingModule, FitResult]:
    """The rating model and settings with the lowest validation RMSE (the configured one first)."""

    def fit_and_score(
        model: str, settings: dict[str, Any], charged: bool = True, dot_half: Any = None
    ) -> tuple[float, Any, float]:
        train_cfg = cfg.train.model_copy(update={"rating_model": model, **settings})
        predicted = rater_cost(train, train_cfg)
        if dot_half is not None:
            predicted -= rater_cost(train, train_cfg.model_copy(update={"rating_model": "dot"}))
        if charged and not plan.affords(predicted):
            return math.nan, None, predicted
        t = time.perf_counter()
        rater, result = fit_rater(train, train_cfg, device, valid, dot_half=dot_half)
        changed = {n: v for n, v in settings.items() if getattr(cfg.train, n) != v}
        rmse = math.nan if result.final.valid_rmse is None else result.final.valid_rmse
        plan.record(Trial(model, changed, rmse, predicted, time.perf_counter() - t), charged)
        return rmse, (rater, result), predicted

    def settings_of(model: str) -> dict[str, Any]:
        return {name: getattr(cfg.train, name) for name, _ in _RATER_STEPS[model]}

    configured = cfg.train.rating_model
    score, fitted, cost = fit_and_score(configured, settings_of(configured), charged=False)
    settings, score, fitted = _climb(
        plan,
        configured,
        settings_of(configured),
        score,
        fitted,
        _RATER_STEPS[configured],
        lambda s: fit_and_score(configured, s),
        higher_is_better=False,
        cost=cost,
    )
    model: str = configured
    if configured == "dot":  # the dot model's climbed settings, blended with Bayesian MF (weight on valid)
        # its dot half is the climbed dot model (same data, settings and seed): copied, not fitted again
        blend, blend_fit, _ = fit_and_score(
            "bayes", {**settings, "bayes_weight": cfg.train.bayes_weight}, dot_half=fitted
        )
        if blend_fit is not None:
            t = time.perf_counter()
            weight, blend, blend_mae = _blend_weight(blend_fit[0], valid)
            final = blend_fit[1].final
            blend_fit[1].history[-1] = EpochStats(final.epoch, final.train_loss, blend, blend_mae, final.seconds)
            changed = {n: v for n, v in settings.items() if getattr(cfg.train, n) != v}
            plan.record(Trial("bayes", {**changed, "bayes_weight": weight}, blend, 0.0, time.perf_counter() - t), False)
            if blend < score:
                model, score, fitted = "bayes", blend, blend_fit
                settings = {**settings, "bayes_weight": weight}
    other = "dot" if configured == "neural" else "neural"  # the one challenger
    challenger, challenger_fit, cost = fit_and_score(other, settings_of(other))
    if not math.isnan(challenger) and challenger < score:
        model, score, fitted = other, challenger, challenger_fit
        settings, score, fitted = _climb(
            plan,
            other,
            settings_of(other),
            score,
            fitted,
            _RATER_STEPS[other],
            lambda s: fit_and_score(other, s),
            higher_is_better=False,
            cost=cost,
        )
    rater, result = fitted
    return cfg.train.model_copy(update={"rating_model": model, **settings}), rater, result


def _blend_weight(model: RatingModule, valid: Ratings) -> tuple[float, float, float]:
    """The Bayesian share (0..1 by 0.05) with the lowest validation RMSE, set on ``model``: ``(weight, rmse, mae)``."""
    assert isinstance(model, BayesBlend) and len(valid)
    best = (math.inf, 0.0)
    weights = np.linspace(0.0, 1.0, 21)
    for w, pred in zip(weights, model.predict_at(valid.users, valid.items, weights)):
        best = min(best, (rmse(pred, valid.ratings), round(float(w), 2)))
    model.weight.fill_(best[1])
    return best[1], best[0], mae(model.predict(valid.users, valid.items), valid.ratings)


# ---------------------------------------------------------------- the night's search


def tuned_values(cfg: RunConfig) -> dict[str, Any]:
    """The settings the search may change, as flat parameter names and values."""
    rank = {n: getattr(cfg.rank, n) for n in ("ranker", "rank_unobserved_weight", "rank_reg", "rank_factors")}
    rank.update(
        implicit_alpha=cfg.rank.implicit_alpha,
        ease_lambda=cfg.rank.ease_lambda,
        rating_boost=cfg.rank.rating_boost,
        hybrid_ials_share=cfg.rank.hybrid_ials_share,
    )
    names = ("rating_model", "wd", "epochs", "n_factors", "nn_wd", "nn_epochs", "bayes_weight")
    train = {n: getattr(cfg.train, n) for n in names}
    return {**rank, **train}


def apply_values(cfg: RunConfig, values: dict[str, Any]) -> RunConfig:
    """``cfg`` with the given tuned values (e.g. last night's) in place of its own."""
    rank = {k: v for k, v in values.items() if k in RankConfig.model_fields}
    train = {k: v for k, v in values.items() if k in TrainConfig.model_fields}
    return cfg.model_copy(
        update={"rank": cfg.rank.model_copy(update=rank), "train": cfg.train.model_copy(update=train)}
    )


def reusable(previous: dict[str, Any] | None, cfg: RunConfig, n_ratings: int) -> bool:
    """Last night's tuned values still hold: same settings asked for, and the data grew by less than
    ``tune_regrowth``."""
    if not previous or "chosen" not in previous or previous.get("base") != cfg.config_hash():
        return False
    return n_ratings < previous.get("n_ratings", 0) * (1 + cfg.tune_regrowth)


def tune(
    train: Ratings,
    valid: Ratings,
    cfg: RunConfig,
    device: torch.device,
    n_ratings: int,
) -> Tuned:
    """Search within ``cfg.tune_budget`` seconds (by plan); the chosen config and the models it fitted."""
    t0 = time.perf_counter()
    plan = _Plan(0.0, cfg.tune_budget * MAX_TRIAL_SHARE)  # the phases add their shares
    rank_share = 1.0 if train.implicit else 0.5  # rating model first (the lists use it): half the budget
    chosen = cfg
    rater = result = None
    if not train.implicit:
        plan.phase(cfg.tune_budget * (1 - rank_share))
        train_cfg, rater, result = tune_rater(train, valid, cfg, device, plan)
        chosen = chosen.model_copy(update={"train": train_cfg})
    plan.phase(cfg.tune_budget * rank_share)
    rank_cfg, ranker, report = tune_ranker(train, valid, chosen, device, plan, rater)
    chosen = chosen.model_copy(update={"rank": rank_cfg})
    before, after = tuned_values(cfg), tuned_values(chosen)
    record = {
        "base": cfg.config_hash(),
        "n_ratings": n_ratings,
        "budget_s": cfg.tune_budget,
        "planned_s": round(cfg.tune_budget - plan.left, 3),
        "seconds": round(time.perf_counter() - t0, 3),
        "metric": {"ranker": f"ndcg_at_{cfg.metric_k}", "rating_model": "rmse"},
        "trials": [t.as_dict() for t in plan.trials],
        "chosen": after,
        "changed": {k: v for k, v in after.items() if before[k] != v},
    }
    log.info(
        "tuning: %d trials in %.1fs (budget %.0fs by plan); chosen: %s",
        len(plan.trials),
        record["seconds"],
        cfg.tune_budget,
        record["changed"] or "the configured settings",
    )
    return Tuned(chosen, ranker, rater, result, record, report)
