"""The quality gate: is tonight's model worse than the last published one?"""

from __future__ import annotations

from typing import Any


def quality_gate(
    previous: dict[str, Any] | None, metrics: dict[str, Any], tolerance: float | None, k: int = 10
) -> str | None:
    """Why the new model is worse than the last published one beyond ``tolerance`` (relative), or None.

    Compared: validation RMSE (lower is better) and NDCG@k (higher is better), when both runs have them.
    """
    if tolerance is None or not previous:
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
