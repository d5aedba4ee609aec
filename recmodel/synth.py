"""Seeded, MovieLens-shaped synthetic ratings at any size.

The generative story, all vectorised numpy (ML-25M shape in tens of seconds):

* user activity is heavy-tailed (log-normal) with at least 20 ratings per user, as in MovieLens;
* item popularity is Zipf-like, so a few items collect most ratings;
* each rating is ``mu + user_bias + item_bias + <user_factors, item_factors> + noise``, rounded to the
  shape's star scale, with popular items a little better rated (as in the real data);
* timestamps: each user rates within their own window of the collection period.

Same shape and seed give byte-identical output.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl


@dataclass(frozen=True)
class Shape:
    n_users: int
    n_items: int
    n_ratings: int
    half_stars: bool  # ratings in 0.5 steps from 0.5 (ML-10M and later) or whole stars 1..5
    sparse_item_ids: bool  # raw item ids with gaps, as ML-10M/25M movieIds have
    start: int  # unix seconds of the collection period
    end: int


SHAPES: dict[str, Shape] = {
    "ml-100k": Shape(943, 1_682, 100_000, False, False, 874_724_710, 893_286_638),
    "ml-1m": Shape(6_040, 3_706, 1_000_209, False, False, 956_703_932, 1_046_454_590),
    "ml-10m": Shape(69_878, 10_677, 10_000_054, True, True, 789_652_009, 1_231_131_736),
    "ml-25m": Shape(162_541, 59_047, 25_000_095, True, True, 789_652_009, 1_574_327_703),
}
MIN_RATINGS_PER_USER = 20
N_LATENT = 8
TASTE = 1.5  # how strongly taste (vs popularity alone) decides which items a user rates
ARRIVAL_NOISE = 1.0  # ML-10M/25M shapes: how loosely item ids follow popularity (see _item_ids)


def custom_shape(n_users: int, n_items: int, n_ratings: int, half_stars: bool = False) -> Shape:
    """A shape of your own; ``n_ratings`` must leave room for distinct pairs."""
    if min(n_users, n_items, n_ratings) < 1:
        raise ValueError("n_users, n_items and n_ratings must all be >= 1")
    if n_ratings > n_users * n_items // 2:
        raise ValueError(f"{n_ratings} ratings cannot fit in {n_users} x {n_items} at <= 50% density; lower n_ratings")
    return Shape(n_users, n_items, n_ratings, half_stars, False, 874_724_710, 893_286_638)


def _user_counts(rng: np.random.Generator, shape: Shape) -> np.ndarray:
    cap = max(1, shape.n_items // 2)
    floor = min(MIN_RATINGS_PER_USER, cap, shape.n_ratings // shape.n_users or 1)
    weights = rng.lognormal(0.0, 1.2, shape.n_users)
    counts = np.full(shape.n_users, floor, dtype=np.int64)
    for _ in range(20):  # spread the rest by weight, capping heavy users and re-spreading their excess
        rest = shape.n_ratings - counts.sum()
        if rest <= 0:
            break
        open_ = counts < cap
        share = weights * open_
        add = np.floor(rest * share / share.sum()).astype(np.int64)
        counts = np.minimum(counts + add, cap)
    rest = shape.n_ratings - counts.sum()
    if rest > 0:  # rounding leftovers: one more each for the most active users with room
        order = np.argsort(-weights * (counts < cap), kind="stable")[:rest]
        counts[order] += 1
    return counts


def _unique(x: np.ndarray) -> np.ndarray:
    """Sorted distinct values; a sort and a compare, much faster than np.unique on numpy 2.4."""
    x = np.sort(x)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if x.size else x


class AliasSampler:
    """Walker's alias method: draws from a discrete distribution in O(1) each (two gathers and a compare).

    At ML-25M size the generator draws tens of millions of items; a binary search of the CDF per draw
    (``searchsorted``) was most of the generator's time (docs/scaling.md).
    """

    def __init__(self, weights: np.ndarray):
        p = np.asarray(weights, dtype=np.float64)
        n = p.size
        scaled = p * (n / p.sum())
        self.prob = np.ones(n)
        self.alias = np.arange(n)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:  # Vose's construction: each small slot is topped up by one large item
            s, g = small.pop(), large.pop()
            self.prob[s], self.alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        slot = rng.integers(0, self.prob.size, size)
        return np.where(rng.random(size) < self.prob[slot], slot, self.alias[slot])


def _sample_pairs(
    rng: np.random.Generator, counts: np.ndarray, popularity: np.ndarray, exact: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, item) pairs sorted by user, items drawn by popularity: ``counts[u]`` per user
    (``exact``), or at least that many (the caller selects among them)."""
    n_users, n_items = len(counts), len(popularity)
    sampler = AliasSampler(popularity)
    keys = np.empty(0, dtype=np.int64)
    have = np.zeros(n_users, dtype=np.int64)
    for round_ in range(12):
        need = counts - have
        short = np.flatnonzero(need > 0)
        if short.size == 0:
            break
        draws = np.ceil(need[short] * (1.3 if round_ == 0 else 2.0)).astype(np.int64) + 2
        users = np.repeat(short, draws)
        if round_ < 4:
            items = sampler.draw(rng, users.size)
        else:  # the heaviest users exhaust the head: fill their tail uniformly
            items = rng.integers(0, n_items, users.size)
        keys = _unique(np.concatenate([keys, users * n_items + np.minimum(items, n_items - 1)]))
        have = np.bincount(keys // n_items, minlength=n_users)
    if not exact:
        return keys // n_items, keys % n_items
    # keep a random counts[u] of each user's distinct draws
    users = keys // n_items
    order = np.lexsort((rng.random(keys.size), users))
    keys, users = keys[order], users[order]
    starts = np.concatenate([[0], np.cumsum(have)[:-1]])
    rank = np.arange(keys.size) - starts[users]
    keep = rank < counts[users]
    keys = np.sort(keys[keep])
    return keys // n_items, keys % n_items


def _shape(shape: str | Shape) -> Shape:
    if isinstance(shape, str):
        if shape not in SHAPES:
            raise ValueError(f"unknown shape {shape!r}; choose one of {', '.join(SHAPES)}")
        return SHAPES[shape]
    return shape


def _taste_pairs(
    rng: np.random.Generator, shape: Shape
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Who interacts with what: ``(users, items, user factors, item factors, item popularity)``."""
    counts = _user_counts(rng, shape)
    item_rank = rng.permutation(shape.n_items)  # which item is how popular
    popularity = 1.0 / (item_rank + 10.0) ** 1.4
    user_f = rng.normal(0, 1 / np.sqrt(N_LATENT), (shape.n_users, N_LATENT)).astype(np.float32)
    item_f = rng.normal(0, 1 / np.sqrt(N_LATENT), (shape.n_items, N_LATENT)).astype(np.float32)

    # Which items a user rates depends on taste too, not only on popularity (else nothing personal is
    # left to rank): draw twice the user's count by popularity, then keep counts[u] of them by weighted
    # sampling without replacement with weight exp(TASTE * <user, item>) (Efraimidis & Spirakis keys).
    room = max(1, int(0.8 * shape.n_items))
    candidates = np.minimum(2 * counts, np.maximum(counts, room))
    users, items = _sample_pairs(rng, candidates, popularity, exact=False)
    affinity = _affinity(user_f, item_f, users, items)
    key = rng.random(users.size) ** np.exp(-TASTE * affinity)  # u^(1/w) in (0, 1]: larger is kept first
    # users arrive sorted; one float sort orders each user's candidates by key, largest first
    # (much faster than a two-key lexsort at ML-25M size)
    order = np.argsort(users + (1.0 - key) * 0.999, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=shape.n_users))[:-1]])
    keep = order[(np.arange(users.size) - starts[users[order]]) < counts[users[order]]]
    keep.sort()
    return users[keep], items[keep], user_f, item_f, popularity


def _affinity(user_f: np.ndarray, item_f: np.ndarray, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    out = np.empty(users.size, dtype=np.float32)
    chunk = 4_000_000  # bounded memory at ML-25M size
    for s in range(0, users.size, chunk):
        out[s : s + chunk] = np.einsum("ij,ij->i", user_f[users[s : s + chunk]], item_f[items[s : s + chunk]])
    return out


def _timestamps(rng: np.random.Generator, shape: Shape, users: np.ndarray) -> np.ndarray:
    span = shape.end - shape.start
    user_len = np.minimum(rng.lognormal(np.log(span / 50), 1.5, shape.n_users), span).astype(np.int64)
    user_start = shape.start + (rng.random(shape.n_users) * (span - user_len)).astype(np.int64)
    return user_start[users] + (rng.random(users.size) * user_len[users]).astype(np.int64)


def _item_ids(rng: np.random.Generator, shape: Shape, popularity: np.ndarray) -> np.ndarray:
    """Raw item ids by item index. ML-10M/25M-shaped: ids with gaps, given in the order the items arrived,
    and, as in MovieLens, the popular old films mostly arrived first (log-popularity plus noise of sd
    ``ARRIVAL_NOISE``): a catalog whose first half by id holds most of the ratings (0.83 at ML-10M's shape),
    as kernels that split items by index meet in real exports."""
    if not shape.sparse_item_ids:
        return np.arange(1, shape.n_items + 1)
    ids = np.sort(rng.choice(np.arange(1, shape.n_items * 4), shape.n_items, replace=False))
    arrival = np.argsort(-np.log(popularity) + rng.normal(0, ARRIVAL_NOISE, shape.n_items), kind="stable")
    out = np.empty_like(ids)
    out[arrival] = ids
    return out


def generate(shape: str | Shape = "ml-100k", seed: int = 42) -> pl.DataFrame:
    """Ratings as a polars frame with columns ``user_id, item_id, rating, timestamp`` (sorted by user, time)."""
    shape = _shape(shape)
    rng = np.random.default_rng(seed)
    users, items, user_f, item_f, popularity = _taste_pairs(rng, shape)
    user_b = rng.normal(0, 0.45, shape.n_users).astype(np.float32)
    log_pop = np.log(popularity)
    item_b = (0.35 * rng.normal(0, 1, shape.n_items) + 0.25 * (log_pop - log_pop.mean()) / log_pop.std()).astype(
        np.float32
    )
    raw = np.empty(users.size, dtype=np.float32)
    chunk = 4_000_000
    for s in range(0, users.size, chunk):  # bounded memory at ML-25M size
        u, i = users[s : s + chunk], items[s : s + chunk]
        raw[s : s + chunk] = 3.15 + user_b[u] + item_b[i] + 1.6 * np.einsum("ij,ij->i", user_f[u], item_f[i])
    raw += rng.normal(0, 0.85, users.size).astype(np.float32)
    if shape.half_stars:
        rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
    else:
        rating = np.clip(np.round(raw), 1.0, 5.0)

    timestamp = _timestamps(rng, shape, users)
    item_ids = _item_ids(rng, shape, popularity)
    frame = pl.DataFrame(
        {
            "user_id": (users + 1).astype(np.int64),
            "item_id": item_ids[items].astype(np.int64),
            "rating": rating.astype(np.float64),
            "timestamp": timestamp,
        }
    )
    return frame.sort(["user_id", "timestamp", "item_id"])


def generate_implicit(shape: str | Shape = "ml-100k", seed: int = 42, string_ids: bool = False) -> pl.DataFrame:
    """Implicit feedback (plays, clicks, purchases) as ``user_id, item_id, weight, timestamp``, one row per pair.

    Who interacts with what follows latent taste and popularity as in ``generate``; ``weight`` (a play
    count) is heavy-tailed and grows with the same affinity: ``1 + floor(exp(N(0.3 + 3 <u, i>, 1.2)))``,
    so a model that sees counts can rank better than one that sees only who touched what. ``string_ids``
    gives users 16-hex-digit hashed ids and items ``SKU-`` codes, as many exports have.
    """
    shape = _shape(shape)
    rng = np.random.default_rng(seed)
    users, items, user_f, item_f, popularity = _taste_pairs(rng, shape)
    affinity = _affinity(user_f, item_f, users, items)
    weight = 1 + np.floor(np.exp(rng.normal(0.3 + 3.0 * affinity, 1.2))).astype(np.int64)
    frame = pl.DataFrame(
        {
            "user_id": (users + 1).astype(np.int64),
            "item_id": _item_ids(rng, shape, popularity)[items].astype(np.int64),
            "weight": np.minimum(weight, 100_000),
            "timestamp": _timestamps(rng, shape, users),
        }
    ).sort(["user_id", "timestamp", "item_id"])
    return with_string_ids(frame) if string_ids else frame


def with_string_ids(frame: pl.DataFrame) -> pl.DataFrame:
    """The same data with string ids: users as 16 hex digits (hashed-looking), items as ``SKU-`` codes."""
    users = frame["user_id"].unique().sort()
    user_names = [hashlib.blake2b(str(u).encode(), digest_size=8).hexdigest() for u in users]
    return frame.with_columns(
        pl.col("user_id").replace_strict(users, user_names, return_dtype=pl.String),
        ("SKU-" + pl.col("item_id").cast(pl.String).str.zfill(6)).alias("item_id"),
    )


GENRES = ("Action", "Comedy", "Drama", "Romance", "Thriller", "Sci-Fi", "Documentary", "Animation")


def items(ratings: pl.DataFrame, seed: int = 42) -> pl.DataFrame:
    """Item metadata for a generated dataset: ``item_id, title, genres`` (one or two genres each)."""
    ids = ratings["item_id"].unique().sort()
    rng = np.random.default_rng(seed + 1)
    first = rng.integers(0, len(GENRES), ids.len())
    second = rng.integers(0, len(GENRES), ids.len())
    genres = [
        GENRES[a] if a == b or r < 0.5 else f"{GENRES[a]}|{GENRES[b]}"
        for a, b, r in zip(first, second, rng.random(ids.len()))
    ]
    return pl.DataFrame({"item_id": ids, "title": [f"Synthetic item {i}" for i in ids], "genres": genres})


FORMATS = ("parquet", "csv", "udata", "hetrec")


def write(frame: pl.DataFrame, out_dir: str | Path, fmt: str = "parquet") -> Path:
    """Write data in a layout ``collabflow run --source`` reads: Parquet, CSV (MovieLens ``ratings.csv`` for
    ratings, ``interactions.csv`` for implicit data), ``u.data``, or hetrec's tab-separated ``user_artists.dat``
    (header ``userID artistID weight``; implicit data only)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    implicit = "rating" not in frame.columns
    stem = "interactions" if implicit else "ratings"
    if fmt == "parquet":
        path = out / f"{stem}.parquet"
        tmp = path.with_suffix(".parquet.tmp")
        frame.write_parquet(tmp)
    elif fmt == "csv":
        path = out / f"{stem}.csv"
        tmp = path.with_suffix(".csv.tmp")
        (frame if implicit else frame.rename({"user_id": "userId", "item_id": "movieId"})).write_csv(tmp)
    elif fmt == "udata":
        if implicit or (frame["rating"] % 1 != 0).any():
            raise ValueError("u.data holds whole-star ratings only; use --format csv or parquet")
        path = out / "u.data"
        tmp = out / "u.data.tmp"
        frame.with_columns(pl.col("rating").cast(pl.Int64)).write_csv(tmp, separator="\t", include_header=False)
    elif fmt == "hetrec":
        if not implicit:
            raise ValueError("hetrec's user_artists.dat holds play counts; generate implicit data for it")
        path = out / "user_artists.dat"
        tmp = out / "user_artists.dat.tmp"
        frame.select(userID="user_id", artistID="item_id", weight="weight").write_csv(tmp, separator="\t")
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    tmp.replace(path)  # a reader never sees a half-written file
    return path


def taste_groups(
    n_users: int = 200, n_items: int = 150, per_user: int = 30, n_groups: int = 5, seed: int = 7
) -> pl.DataFrame:
    """Small ratings with a taste structure strong enough that every model beats its baseline (for tests).

    Users and items belong to one of ``n_groups`` groups; a user rates ``per_user`` items, three in four
    from their own group (popular items more often), and rates those high (about 4.3 stars) and others
    low (about 2): what a user picks and how they rate it both follow their group, which bias-only and
    popularity cannot see. Columns as ``generate``; same arguments give identical data.
    """
    rng = np.random.default_rng(seed)
    user_group = rng.integers(0, n_groups, n_users)
    item_group = rng.integers(0, n_groups, n_items)
    popularity = 1.0 / (rng.permutation(n_items) + 5.0)
    rows_u, rows_i = [], []
    for u in range(n_users):
        own = item_group == user_group[u]
        k_own = min(int(round(per_user * 0.75)), int(own.sum()))
        for mask, k in ((own, k_own), (~own, per_user - k_own)):
            pool = np.flatnonzero(mask)
            p = popularity[pool] / popularity[pool].sum()
            rows_u.append(np.full(k, u))
            rows_i.append(rng.choice(pool, size=min(k, pool.size), replace=False, p=p))
    users, items = np.concatenate(rows_u), np.concatenate(rows_i)
    match = user_group[users] == item_group[items]
    raw = np.where(match, 4.3, 2.0) + rng.normal(0, 0.3, n_users)[users] + rng.normal(0, 0.6, users.size)
    rating = np.clip(np.round(raw), 1.0, 5.0)
    timestamp = 874_724_710 + np.arange(users.size) * 60
    frame = pl.DataFrame(
        {
            "user_id": (users + 1).astype(np.int64),
            "item_id": (items + 1).astype(np.int64),
            "rating": rating.astype(np.float64),
            "timestamp": timestamp.astype(np.int64),
        }
    )
    return frame.sort(["user_id", "timestamp", "item_id"])
