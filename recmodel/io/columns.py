"""Which column of a file plays which role: the aliases we recognise, and user-given mappings."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ROLES = ("user", "item", "rating", "weight", "timestamp")
REQUIRED_ROLES = ("user", "item")
ALIASES = {
    "user": (
        "user_id",
        "userid",
        "user",
        "uid",
        "customer_id",
        "customerid",
        "customer",
        "visitorid",
        "visitor_id",
        "reviewerid",
        "reviewer_id",
        "member_id",
        "account_id",
        "client_id",
    ),
    "item": (
        "item_id",
        "itemid",
        "movieid",
        "movie_id",
        "item",
        "iid",
        "product_id",
        "productid",
        "product",
        "movie",
        "artistid",
        "artist_id",
        "track_id",
        "trackid",
        "song_id",
        "book_id",
        "bookid",
        "isbn",
        "asin",
        "sku",
        "business_id",
        "article_id",
        "content_id",
    ),
    "rating": ("rating", "ratings", "score", "stars", "star_rating", "overall", "book_rating", "value"),
    "weight": (
        "weight",
        "count",
        "plays",
        "playcount",
        "play_count",
        "listens",
        "clicks",
        "views",
        "quantity",
        "qty",
        "amount",
        "duration",
        "times",
    ),
    "timestamp": (
        "timestamp",
        "ts",
        "time",
        "unix_timestamp",
        "unixreviewtime",
        "rated_at",
        "datetime",
        "date",
        "created_at",
        "event_time",
        "timestamp_ms",
    ),
}


def normalise(name: str) -> str:
    """``userID``, ``user_id``, ``User Id``, ``"user-id"`` all read as ``user_id`` (and ``userid`` as ``userid``)."""
    name = name.strip().strip('"').strip("'")
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)  # camelCase -> camel_Case
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def find_columns(
    available: list[str], aliases: Mapping[str, tuple[str, ...]], given: Mapping[str, str | int] | None = None
) -> dict[str, str | int]:
    """``given`` plus, for every other role, the first of ``available`` whose name, normalised (``userID`` ->
    ``user_id``), is one of the role's aliases (in alias order). The one place header names are matched."""
    found: dict[str, str | int] = dict(given or {})
    taken = {str(c) for c in found.values()}
    by_name: dict[str, str] = {}
    for name in available:
        for key in (normalise(name), normalise(name).replace("_", "")):
            by_name.setdefault(key, name)  # the first column wins a duplicate name
    for role, names in aliases.items():
        if role in found:
            continue
        hit = next((by_name[a] for a in names if a in by_name and by_name[a] not in taken), None)
        if hit is None:
            hit = next(
                (
                    by_name[a.replace("_", "")]
                    for a in names
                    if a.replace("_", "") in by_name and by_name[a.replace("_", "")] not in taken
                ),
                None,
            )
        if hit is not None:
            found[role] = hit
            taken.add(hit)
    return found


# *_id columns that name no user or item (an event, an order, a channel): never guessed as one
NOT_ENTITIES = frozenset(
    (
        "id",
        "row_id",
        "record_id",
        "event_id",
        "interaction_id",
        "rating_id",
        "review_id",
        "transaction_id",
        "order_id",
        "invoice_id",
        "session_id",
        "request_id",
        "channel_id",
        "sales_channel_id",
        "country_id",
    )
)


def guess_ids(available: list[str], found: Mapping[str, str | int]) -> dict[str, str]:
    """The user or the item (one of them, missing from ``found``) as the one other ``*_id`` column of a
    ratings header: ``user_id, anime_id, rating`` or ``userId, jokeId, rating``. Nothing when both are
    missing, or when more than one column could be it (``--columns`` decides then)."""
    missing = [r for r in ("user", "item") if r not in found]
    if len(missing) != 1:
        return {}
    taken = {str(c) for c in found.values()}
    candidates = [
        name
        for name in available
        if name not in taken and (key := normalise(name)).endswith("_id") and key not in NOT_ENTITIES
    ]
    return {missing[0]: candidates[0]} if len(candidates) == 1 else {}


def rating_columns(available: list[str], given: Mapping[str, str | int], path: str | Path) -> dict[str, str | int]:
    """A ratings header's roles: ``find_columns`` with ``ALIASES``, then ``guess_ids`` (logged)."""
    found = find_columns(available, ALIASES, given)
    for role, name in guess_ids(available, found).items():
        found[role] = name
        log.info(
            "%s: no column is named as the %s; %r, the one other id column, is taken as it (--columns to choose)",
            path,
            role,
            name[:40],
        )
    return found


def parse_column_mapping(spec: str | None, roles: tuple[str, ...] = ROLES) -> dict[str, str | int]:
    """Parse ``"user=uid,item=movie,rating=stars,timestamp=ts"`` (names, or 0-based positions without a header)."""
    if not spec:
        return {}
    mapping: dict[str, str | int] = {}
    for part in spec.split(","):
        role, sep, col = part.partition("=")
        role, col = role.strip(), col.strip()
        if not sep or role not in roles or not col:
            raise ValueError(
                f"bad column mapping {part!r}: write role=column with role one of {', '.join(roles)}, "
                "e.g. 'user=uid,item=movie,rating=stars,timestamp=ts' or 'user=userID,item=artistID,weight=weight'"
            )
        mapping[role] = int(col) if col.isdigit() else col
    return mapping
