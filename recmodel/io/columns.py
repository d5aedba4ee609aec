"""Which column of a file plays which role: the aliases we recognise, and user-given mappings."""

from __future__ import annotations

import re
from collections.abc import Mapping

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
