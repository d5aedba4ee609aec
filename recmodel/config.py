"""Typed configuration: the one source of truth for every setting.

The nightly flow's parameters, the CLI's options, ``collabflow.toml`` keys and ``COLLABFLOW_<NAME>``
variables are all derived from the fields below (``flat_fields``): each field is one flat parameter
with the field's name, type, default and description.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

Device = Literal["auto", "cpu", "cuda"]
RatingModel = Literal["dot", "neural", "bayes"]
Ranker = Literal["ials", "ease", "hybrid", "rating", "popularity"]
ColdStart = Literal["metadata", "average_taste", "popularity"]
SyntheticShape = Literal["ml-100k", "ml-1m", "ml-10m", "ml-25m"]
Feedback = Literal["auto", "explicit", "implicit"]


class DataConfig(BaseModel):
    """Where the night's data comes from, how to read it, and where the warehouse lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = Field(
        None,
        description="Rating file or folder of files (u.data, ratings.dat, ratings.csv, "
        "any CSV/TSV/Parquet, optionally gzipped). Omit to generate seeded synthetic "
        "MovieLens-shaped data into the warehouse.",
    )
    warehouse: str = Field("warehouse", description="Warehouse folder; the database is WAREHOUSE/collabflow.duckdb.")
    columns: str | None = Field(
        None,
        description="Column mapping role=column, e.g. "
        "'user=uid,item=movie,rating=stars,timestamp=ts' (0-based positions for files "
        "without a header).",
    )
    delimiter: str | None = Field(
        None, description="Field delimiter; detected from the file name and first line if omitted."
    )
    max_bad_fraction: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Refuse a file (loading nothing from it) when more than this share of its rows is bad.",
    )
    feedback: Feedback = Field(
        "auto",
        description="What the files hold: 'explicit' ratings, 'implicit' interactions (clicks, plays, purchases; "
        "counts from a weight column), or 'auto': explicit when a rating column is found or mapped and no weight "
        "column is, implicit otherwise. A warehouse keeps the kind of its first published night.",
    )
    timestamp_min: str = Field(
        "1995-01-01",
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="Timestamps before this date (or after tomorrow) are quarantined: a typo or a millisecond "
        "value would otherwise supersede later ratings forever.",
    )
    settle_seconds: float = Field(
        10.0,
        ge=0,
        description="An inbox file modified less than this long ago is left for the next night (it may still be "
        "being written); a file with a '<name>.ready' marker beside it is read at once.",
    )
    max_line_bytes: int = Field(
        1 << 20, ge=1024, description="A file with a longer line is refused (binary junk, or a missing line break)."
    )
    max_field_bytes: int = Field(
        1 << 16, ge=64, description="A file with a longer id, rating, weight or timestamp field is refused."
    )
    max_file_bytes: int = Field(
        20 << 30, ge=1024, description="A file larger than this, decompressed, is refused (a gzip bomb stops here)."
    )
    synthetic_shape: SyntheticShape = Field(
        "ml-100k", description="Shape of the synthetic data generated when no source is given."
    )
    items: str | None = Field(
        None,
        description="Optional item metadata (u.item, movies.csv, items.tsv, or any "
        "CSV/Parquet with item id and title) so the views show titles.",
    )
    item_columns: str | None = Field(
        None, description="Column mapping for --items, e.g. 'item=sku,title=name,genres=category'."
    )
    users: str | None = Field(
        None,
        description="Optional user metadata (MovieLens u.user, or a CSV/Parquet with "
        "user_id and feature columns); users in it without ratings get cold-start lists.",
    )


class TrainConfig(BaseModel):
    """How the dot-product model is fitted.

    Defaults are fastbook chapter 8's settings (50 factors, y-range (0, 5.5), 5 epochs, one-cycle
    max lr 5e-3, wd 0.1) with one change: batches of 512 instead of fastai's 64, as accurate and
    several times faster (``bench/ml100k.py`` measures both).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rating_model: RatingModel = Field(
        "dot",
        description="Which model predicts the published score: 'dot' "
        "(dot product + biases), 'neural' (fastbook's EmbeddingNN) or 'bayes' (Bayesian MF by Gibbs "
        "sampling blended with the dot model; the tuning search tries it when its budget allows).",
    )
    n_factors: int = Field(50, ge=1, le=4096, description="Latent factors per user and item.")
    epochs: int = Field(5, ge=1, le=1000, description="Passes over the training ratings.")
    lr_max: float = Field(5e-3, gt=0, le=10, description="Peak learning rate of the one-cycle schedule.")
    wd: float = Field(
        0.1, ge=0, description="Decoupled weight decay (AdamW), applied to embeddings and biases as fastai does."
    )
    batch_size: int = Field(
        512,
        ge=1,
        description="Ratings per optimizer step (at most: small data gets smaller "
        "batches so an epoch has at least 100 steps).",
    )
    max_steps_per_epoch: int = Field(
        1000,
        ge=1,
        description="Batches grow beyond batch_size on large data so an "
        "epoch has at most this many optimizer steps (each updates every row).",
    )
    lazy_optimizer_from: int = Field(
        5_000_000,
        ge=0,
        description="From this many training ratings the dot model's AdamW updates only the rows each batch "
        "touches (as SparseAdam) instead of every row at every step, several times faster on large data.",
    )
    y_range: tuple[float, float] = Field(
        (0.0, 5.5),
        description="Sigmoid output range; a little wider than the rating scale so the top rating is reachable. "
        "Unset, it widens to cover rating_min..rating_max with a ninth of that range on each side.",
    )
    valid_pct: float = Field(0.2, ge=0, lt=1, description="Random share of ratings held out for validation metrics.")
    seed: int = Field(42, description="One seed for the split, the initialisation and the shuffling.")
    device: Device = Field("auto", description="'auto' picks CUDA when available, else CPU.")
    # The neural model trains differently: the dot model's 5 epochs at lr 5e-3 leave it under-fitted; its
    # own epochs, lr and decay were chosen on validation parts of MovieLens 100K (bench/tune_ranking.py).
    nn_hidden: int = Field(100, ge=1, description="Neural model: hidden units of the MLP.")
    nn_epochs: int = Field(10, ge=1, le=1000, description="Neural model: training epochs.")
    nn_lr_max: float = Field(1e-2, gt=0, le=10, description="Neural model: peak learning rate.")
    nn_wd: float = Field(0.5, ge=0, description="Neural model: weight decay.")
    # Bayesian MF (recmodel/bayes.py): rank 10 and 200 passes (50 burn-in) as in the BPMF literature on MovieLens
    bayes_factors: int = Field(10, ge=1, le=256, description="Bayesian MF: latent factors.")
    bayes_iterations: int = Field(200, ge=2, le=10_000, description="Bayesian MF: Gibbs passes, burn-in included.")
    bayes_burn_in: int = Field(50, ge=0, description="Bayesian MF: first passes left out of the posterior mean.")
    bayes_weight: float = Field(
        0.7,
        ge=0,
        le=1,
        description="Share of the Bayesian MF in its blend with the dot model (the rest is the dot model's); "
        "the tuning search picks it on the night's validation part.",
    )

    def for_model(self) -> TrainConfig:
        """The settings the chosen rating model trains with (the nn_* ones for the neural model)."""
        if self.rating_model == "neural":
            return self.model_copy(update={"epochs": self.nn_epochs, "lr_max": self.nn_lr_max, "wd": self.nn_wd})
        return self

    @model_validator(mode="after")
    def _check_range(self) -> TrainConfig:
        lo, hi = self.y_range
        if not lo < hi:
            raise ValueError(f"y_range must be (low, high) with low < high, got {self.y_range}")
        if self.bayes_burn_in >= self.bayes_iterations:
            raise ValueError(
                f"bayes_burn_in ({self.bayes_burn_in}) must be below bayes_iterations ({self.bayes_iterations})"
            )
        return self


class RankConfig(BaseModel):
    """Which model orders the published lists, and how it is trained on interactions.

    Defaults were chosen on MovieLens 100K on a validation part carved out of the training data
    (bench/tune_ranking.py), never on the reported test part.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ranker: Ranker = Field(
        "ials",
        description="'ials' (implicit ALS embeddings, scales to ML-25M), 'ease' "
        "(closed-form item-item, catalogs up to 20k items), 'hybrid' (EASE plus iALS, each scaled by its "
        "score spread; catalogs up to 20k items), 'rating' (the rating model: ranks "
        "below popularity, kept for comparison) or 'popularity'.",
    )
    relevance_threshold: float = Field(
        4.0, description="Ratings >= this count as liked (weight 1) for ranking and for the ranking metrics."
    )
    rank_low_rating_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Weight of an interaction rated below relevance_threshold (picked, but liked less).",
    )
    rank_factors: int = Field(128, ge=1, le=4096, description="iALS: latent factors.")
    rank_reg: float = Field(0.025, ge=0, description="iALS: L2 strength, scaled per user/item by its count.")
    rank_unobserved_weight: float = Field(
        0.1, ge=0, description="iALS: weight of every unobserved pair as a weak negative."
    )
    rank_iterations: int = Field(10, ge=1, le=1000, description="iALS: alternating passes.")
    rank_cg_steps: int = Field(3, ge=1, le=100, description="iALS: conjugate-gradient steps per pass.")
    ease_lambda: float = Field(400.0, gt=0, description="EASE: L2 strength.")
    hybrid_ials_share: float = Field(
        0.5, gt=0, lt=1, description="Hybrid ranker: iALS's share of the sum (in units of each one's score spread)."
    )
    rating_boost: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Explicit feedback: add the rating model's predicted ratings to the iALS/EASE scores, this "
        "many times the ranker's score spread per unit of the ratings' spread (0: lists by the ranker alone). "
        "The tuning search picks it on the night's validation part.",
    )
    implicit_alpha: float = Field(
        1.0,
        ge=0,
        description="Implicit feedback: an interaction's confidence is 1 + alpha * log1p(weight / implicit_eps) "
        "(Hu, Koren, Volinsky 2008): repeated plays or purchases count more, with diminishing returns; 0: every "
        "interaction counts 1.",
    )
    implicit_eps: float = Field(
        1.0, gt=0, description="Implicit feedback: the weight scale in the confidence transform (see implicit_alpha)."
    )


class RunConfig(BaseModel):
    """Everything one nightly run needs besides its input data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_n: int = Field(10, ge=1, le=10_000, description="Recommendations kept per user.")
    cold_start: ColdStart = Field(
        "metadata",
        description="Lists for users known only from --users (no ratings): "
        "'metadata' (sign-up answers -> factors), 'average_taste' (a representative "
        "real user) or 'popularity'. Without features or with a non-iALS ranker, "
        "'popularity' is used.",
    )
    min_item_ratings: int = Field(
        1,
        ge=1,
        description="Items with fewer ratings are never recommended (their "
        "factors rest on too little evidence); 1 recommends every rated item.",
    )
    similar_n: int = Field(10, ge=1, le=1_000, description="Similar items kept per item (cosine on item factors).")
    metric_k: int = Field(
        10,
        ge=1,
        le=1_000,
        description="Cut-off k of the ranking metrics (NDCG@k, recall@k, ...) "
        "that validation, the quality gate and reports use.",
    )
    metric_users: int = Field(
        20_000,
        ge=0,
        description="Validation ranking metrics (tuning, the baselines' floor) are means over a seeded sample "
        "of at most this many users with a relevant validation rating; 0: every user.",
    )
    rating_min: float = Field(0.5, description="Lowest valid rating; smaller values are quarantined.")
    rating_max: float = Field(5.0, description="Highest valid rating; larger values are quarantined.")
    score_memory_mb: int = Field(
        512, ge=1, description="Memory budget for one block of user x item scores during scoring."
    )
    score_shards: int = Field(
        1,
        ge=1,
        le=10_000,
        description="Scoring tasks, each a range of users written to its "
        "own Parquet part; with a Dask task runner they run on the cluster's workers.",
    )
    gate_tolerance: float | None = Field(
        0.05,
        ge=0,
        description="Quality gate: reject the night (the published lists stay) when its validation RMSE or "
        "NDCG@k is worse than the last measured published night's by more than this share, or when it could not "
        "be measured at all (see allow_unmeasured); None turns the gate off.",
    )
    allow_unmeasured: bool = Field(
        False,
        description="Publish a night that could not be measured (valid_pct=0) although the quality gate is on; "
        "the run record then says it was unmeasured.",
    )
    keep_runs: int = Field(
        7,
        ge=1,
        description="Retention: the lists (recommendations, similar items) and run folders of the last this many "
        "published versions stay queryable (and `collabflow rollback` can serve them again); older ones are "
        "deleted after each publish. The runs and versions history is kept.",
    )
    warm_start: bool = Field(
        False,
        description="Start from the last published run's models (rows copied by "
        "index, new users and items fresh) and train for warm_epochs / warm_rank_iterations.",
    )
    warm_epochs: int = Field(2, ge=1, description="Warm start: rating-model epochs.")
    warm_rank_iterations: int = Field(3, ge=1, description="Warm start: iALS passes.")
    refit_on_all: bool = Field(
        True,
        description="After measuring on the validation split, refit both models "
        "on all ratings before scoring (the published lists use every rating).",
    )
    tune_budget: float = Field(
        30.0,
        ge=0,
        description="Seconds (by plan: each trial's cost is predicted from the data's size, so the choice is "
        "deterministic) spent choosing the ranker (iALS or EASE), the rating model and their key settings on the "
        "night's validation part; the configured values are the starting point; a trial predicted at more than "
        "a sixth of it is not started (large data keeps its configured models); 0 turns tuning off.",
    )
    tune_regrowth: float = Field(
        0.25,
        ge=0,
        description="Reuse the last tuned values until the data has grown by this share since they were "
        "chosen (and on warm-start nights); the settings asked for must be unchanged.",
    )
    refit_continue_from: int = Field(
        5_000_000,
        ge=0,
        description="From this many ratings on, the refit goes on "
        "from the validated models for refit_epochs / refit_rank_iterations instead of "
        "training from scratch (halves a large night's training); 0: always.",
    )
    refit_epochs: int = Field(
        1, ge=1, description="A refit that goes on from the validated models: rating-model epochs on every rating."
    )
    refit_rank_iterations: int = Field(
        2, ge=1, description="A refit that goes on from the validated models: iALS passes on every rating."
    )
    train: TrainConfig = Field(default_factory=TrainConfig)
    rank: RankConfig = Field(default_factory=RankConfig)

    @model_validator(mode="after")
    def _check_ratings(self) -> RunConfig:
        if not self.rating_min <= self.rating_max:
            raise ValueError(f"rating_min ({self.rating_min}) must not exceed rating_max ({self.rating_max})")
        self._fit_defaults_to_the_scale()
        if not self.rating_min <= self.rank.relevance_threshold <= self.rating_max:
            raise ValueError(
                f"relevance_threshold {self.rank.relevance_threshold} must lie in the rating range "
                f"[{self.rating_min}, {self.rating_max}]"
            )
        lo, hi = self.train.y_range
        if lo > self.rating_min or hi < self.rating_max:
            raise ValueError(
                f"y_range {self.train.y_range} must cover the rating range "
                f"[{self.rating_min}, {self.rating_max}]; widen y_range"
            )
        return self

    def _fit_defaults_to_the_scale(self) -> None:
        """A scale the star defaults do not fit (Book-Crossing's 0-10, Jester's -10..10, a 0-1 score) moves the
        two settings made for 0.5-5 stars, where they are left at their defaults, by the same share of the
        scale: ``y_range`` (0, 5.5) keeps a ninth of the range on each side, ``relevance_threshold`` 4 stays
        7/9 of the way up (8 of 10 for 1-10). A scale inside (0, 5.5) that holds 4 (1-5) keeps both. The flow
        and the CLI pass every setting, defaults too: a default's value, not whether it was given, says "left
        at default"."""
        y_default = TrainConfig.model_fields["y_range"].default
        threshold = RankConfig.model_fields["relevance_threshold"].default
        lo, hi = y_default
        if lo <= self.rating_min and self.rating_max <= hi and self.rating_min <= threshold <= self.rating_max:
            return
        span = self.rating_max - self.rating_min
        if span <= 0:  # one value: nothing to fit; the checks below say what is wrong
            return
        if self.train.y_range == y_default:
            margin = span / 9
            train = self.train.model_copy(update={"y_range": (self.rating_min - margin, self.rating_max + margin)})
            object.__setattr__(self, "train", train)  # frozen: set once, while validating
        if self.rank.relevance_threshold == threshold:
            stars = RunConfig.model_fields["rating_min"].default, RunConfig.model_fields["rating_max"].default
            share = (threshold - stars[0]) / (stars[1] - stars[0])  # where it sits on the default 0.5-5 stars
            rank = self.rank.model_copy(update={"relevance_threshold": self.rating_min + share * span})
            object.__setattr__(self, "rank", rank)

    @classmethod
    def from_flat(cls, **params: Any) -> RunConfig:
        """Build from flat parameters (the flow's and the CLI's), each name a field of one config class;
        ``DataConfig`` fields are ignored here (see ``split_flat``)."""
        owners = flat_fields()
        unknown = set(params) - set(owners)
        if unknown:
            raise ValueError(f"unknown parameters: {sorted(unknown)}")
        by_owner: dict[type[BaseModel], dict[str, Any]] = {}
        for name, value in params.items():
            by_owner.setdefault(owners[name][0], {})[name] = value
        return cls(
            train=TrainConfig(**by_owner.get(TrainConfig, {})),
            rank=RankConfig(**by_owner.get(RankConfig, {})),
            **by_owner.get(cls, {}),
        )

    def config_hash(self) -> str:
        """Short stable hash of the configuration, stored with every run."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


FLAT_OWNERS: tuple[type[BaseModel], ...] = (DataConfig, RunConfig, TrainConfig, RankConfig)


def flat_fields() -> dict[str, tuple[type[BaseModel], FieldInfo]]:
    """Every setting as a flat parameter: name -> (the config class that owns it, its field).

    The order is the classes' order, then each class's field order (the CLI's ``--help`` and the Prefect
    UI form show them so). Names are unique across the classes (tested).
    """
    out: dict[str, tuple[type[BaseModel], FieldInfo]] = {}
    for owner in FLAT_OWNERS:
        for name, info in owner.model_fields.items():
            if name in ("train", "rank"):
                continue
            if name in out:
                raise TypeError(f"setting {name!r} is defined by both {out[name][0].__name__} and {owner.__name__}")
            out[name] = (owner, info)
    return out


def split_flat(**params: Any) -> tuple[DataConfig, RunConfig]:
    """Flat parameters -> the typed ``(DataConfig, RunConfig)`` they describe (validated)."""
    data_names = set(DataConfig.model_fields)
    data = DataConfig(**{k: v for k, v in params.items() if k in data_names})
    return data, RunConfig.from_flat(**{k: v for k, v in params.items() if k not in data_names})
