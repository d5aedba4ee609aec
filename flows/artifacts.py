"""Tables for Prefect artifacts. The UI takes its columns from the first row: every row has every key."""

from __future__ import annotations

import math
from typing import Any

RANKING = ("ndcg", "precision", "recall", "map", "hit_rate", "coverage")


def metric_columns(k: int = 10) -> tuple[str, ...]:
    return ("rmse", "mae", *(f"{m}_at_{k}" for m in RANKING))


def comparison_table(models: dict[str, dict[str, Any]], k: int = 10) -> list[dict[str, Any]]:
    """One row per model, the same columns in every row (those measured for some model: no RMSE column for
    implicit feedback), values rounded to 4 places ('' = not measured)."""

    def cell(value: Any) -> Any:
        if isinstance(value, float):
            return "" if math.isnan(value) else round(value, 4)
        return "" if value is None else value

    measured = [m for m in metric_columns(k) if any(cell(metrics.get(m)) != "" for metrics in models.values())]
    return [{"model": name, **{m: cell(metrics.get(m)) for m in measured}} for name, metrics in models.items()]
