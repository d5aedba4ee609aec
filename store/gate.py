"""The quality gate: may tonight's models replace the published ones?

It compares with the last published night that was *measured* (``store.runs.last_measured``): validation
RMSE (lower is better) and NDCG@k (higher is better), each within ``tolerance`` (relative). A night that
could not be measured (``valid_pct=0``) is refused while a gate is on, unless the operator allows it.
The floors against the night's own baselines are applied before this, in ``recmodel.fitting``: a model
worse than bias-only or popularity is never published (the baseline is, and the run record says so).
"""

from __future__ import annotations

from typing import Any


def measured(metrics: dict[str, Any], k: int) -> bool:
    return metrics.get("valid_rmse") is not None or metrics.get(f"ndcg_at_{k}") is not None


def quality_gate(
    previous: dict[str, Any] | None,
    metrics: dict[str, Any],
    tolerance: float | None,
    k: int = 10,
    allow_unmeasured: bool = False,
) -> str | None:
    """Why tonight's models may not be published, or None. ``previous``: the last measured night's metrics."""
    if tolerance is None:
        return None
    if not measured(metrics, k):
        if allow_unmeasured:
            return None
        return (
            "the night was not measured (valid_pct=0) while the quality gate is on; set valid_pct above 0, "
            "or pass --allow-unmeasured to publish it anyway (it is then marked unmeasured)"
        )
    if not previous:
        return None
    if previous.get("validation", "random") != metrics.get("validation", "random"):
        return None  # measured on different kinds of validation data: not comparable
    reasons = []
    old, new = previous.get("valid_rmse"), metrics.get("valid_rmse")
    if old is not None and new is not None and new > old * (1 + tolerance):
        reasons.append(f"validation RMSE {new:.4f} is worse than the published {old:.4f} by more than {tolerance:.0%}")
    old, new = previous.get(f"ndcg_at_{k}"), metrics.get(f"ndcg_at_{k}")
    if old is not None and new is not None and new < old * (1 - tolerance):
        reasons.append(
            f"validation NDCG@{k} {new:.4f} is worse than the published {old:.4f} by more than {tolerance:.0%}"
        )
    return "; ".join(reasons) or None
