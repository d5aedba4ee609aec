"""Tables for Prefect artifacts. The UI takes its columns from the first row: every row has every key."""
from __future__ import annotations

import math

METRICS = ("rmse", "mae", "ndcg_at_10", "precision_at_10", "recall_at_10", "map_at_10", "hit_rate_at_10",
           "coverage_at_10")


def comparison_table(models: dict[str, dict]) -> list[dict]:
    """One row per model, the same columns in every row, values rounded to 4 places ('' = not measured)."""
    def cell(value):
        if isinstance(value, float):
            return "" if math.isnan(value) else round(value, 4)
        return "" if value is None else value

    return [{"model": name, **{m: cell(metrics.get(m)) for m in METRICS}} for name, metrics in models.items()]
