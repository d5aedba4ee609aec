"""Which column of a file plays which role: the aliases we recognise, and user-given mappings."""

from __future__ import annotations

from collections.abc import Mapping

ROLES = ("user", "item", "rating", "timestamp")
REQUIRED_ROLES = ("user", "item", "rating")
ALIASES = {
    "user": ("user_id", "userid", "user", "uid", "customer_id", "visitorid"),
    "item": ("item_id", "itemid", "movieid", "movie_id", "item", "iid", "product_id", "movie"),
    "rating": ("rating", "ratings", "score", "stars", "value"),
    "timestamp": ("timestamp", "ts", "time", "unix_timestamp", "rated_at"),
}


def find_columns(
    available: list[str], aliases: Mapping[str, tuple[str, ...]], given: Mapping[str, str | int] | None = None
) -> dict[str, str | int]:
    """``given`` plus, for every other role, the first of ``available`` whose lower-cased name is one of the
    role's aliases (in alias order). The one place header names are matched."""
    found: dict[str, str | int] = dict(given or {})
    lowered = {name.lower(): name for name in reversed(available)}  # the first column wins a duplicate name
    for role, names in aliases.items():
        if role not in found:
            hit = next((lowered[a] for a in names if a in lowered), None)
            if hit is not None:
                found[role] = hit
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
                "e.g. 'user=uid,item=movie,rating=stars,timestamp=ts'"
            )
        mapping[role] = int(col) if col.isdigit() else col
    return mapping
