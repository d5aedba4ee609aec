"""A run report people want to look at: Markdown plus PNG plots (matplotlib, headless).

Sections: training curve, models next to baselines, item biases and principal components of the item
factors (fastbook's interpretation), the PCA map with a few titles, predicted scores, and what the
lists recommend (coverage and popularity).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from .persist import load_model, load_ranker
from .snapshot import Snapshot


def _subplots(*grid: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """``(figure, axes)`` like ``pyplot.subplots``, drawn headless by the Agg canvas. matplotlib is imported
    when a report is drawn (~0.7 s that everything else importing this module never needs), and not its
    pyplot, which adds ~0.3 s of backend machinery a file writer does not use."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(*grid)


def metric_columns(k: int) -> tuple[str, ...]:
    return ("rmse", "mae", f"ndcg_at_{k}", f"precision_at_{k}", f"recall_at_{k}", f"coverage_at_{k}")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.4f}"
    return "" if value is None else str(value)


def _name(item_id: int, titles: dict[int, str]) -> str:
    title = titles.get(item_id.item() if hasattr(item_id, "item") else item_id)
    return f"{title} ({item_id})" if title else f"item {item_id}"


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def item_pca(item_factors: torch.Tensor, n_components: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(coordinates, explained variance ratio)`` of the centred item factors (fastbook's ``pca``)."""
    x = item_factors.detach().double().cpu()
    x = x - x.mean(dim=0)
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    k = min(n_components, s.numel())
    return (u[:, :k] * s[:k]).numpy(), (s[:k] ** 2 / (s**2).sum()).numpy()


def _pca_section(
    out: Path, item_factors: torch.Tensor, item_ids: np.ndarray, item_counts: np.ndarray, titles: dict[int, str]
) -> list[str]:
    """fastbook's interpretation of the item factors: the first principal components, their extremes, a map."""
    lines: list[str] = []
    coords, explained = item_pca(item_factors)
    popular = np.argsort(-item_counts)[: min(300, len(item_ids))]  # the PCA map shows well-known items
    fig, ax = _subplots(figsize=(8, 6.5))
    ax.scatter(coords[popular, 0], coords[popular, 1], s=8, alpha=0.35)
    labelled = list(popular[:12]) + list(popular[np.argsort(coords[popular, 0])[[0, 1, -2, -1]]])
    for i in dict.fromkeys(labelled):
        ax.annotate(_name(item_ids[i], titles)[:32], (coords[i, 0], coords[i, 1]), fontsize=7)
    ax.set_xlabel(f"PC1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    ax.set_title("Item factors: first two principal components (300 most rated items)")
    _save(fig, out / "pca.png")
    lines += ["## Principal components of the item factors", "", "![pca](pca.png)", ""]
    for c in range(min(2, coords.shape[1])):
        order = popular[np.argsort(coords[popular, c])]
        lines += [
            f"PC{c + 1}, one end: " + "; ".join(_name(item_ids[i], titles) for i in order[:5]),
            "",
            f"PC{c + 1}, other end: " + "; ".join(_name(item_ids[i], titles) for i in order[::-1][:5]),
            "",
        ]
    return lines


def write_report(
    out_dir: str | Path,
    *,
    run_id: str,
    metrics: dict,
    history: list[dict],
    item_ids: np.ndarray,
    item_factors: torch.Tensor | None,
    item_bias: np.ndarray | None,
    item_counts: np.ndarray,
    recommendations: pl.DataFrame,
    titles: dict[int, str],
    n_users: int,
) -> Path:
    """Write ``report.md`` and its PNGs into ``out_dir``; returns the Markdown file's path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# collabflow run {run_id}", ""]
    lines += [
        f"{n_users} users, {len(item_ids)} items; rating model `{metrics.get('rating_model')}`, ranker "
        f"`{metrics.get('ranker')}`; validation: {metrics.get('validation', 'random')} "
        f"({metrics.get('n_valid', 0)} ratings).",
        "",
    ]

    if history:  # training curve
        epochs = [h["epoch"] for h in history]
        fig, ax = _subplots(figsize=(6, 3.5))
        ax.plot(epochs, [math.sqrt(h["train_loss"]) for h in history], marker="o", label="train RMSE")
        if history[0].get("valid_rmse") is not None:
            ax.plot(epochs, [h["valid_rmse"] for h in history], marker="o", label="validation RMSE")
        ax.set_xlabel("epoch")
        ax.set_ylabel("RMSE")
        ax.set_title("Rating model training")
        ax.legend()
        _save(fig, out / "training.png")
        lines += ["## Training", "", "![training](training.png)", ""]

    models = metrics.get("models", {})
    if models:
        columns = metric_columns(metrics.get("metric_k", 10))
        lines += [
            "## Models next to the baselines (validation)",
            "",
            "| model | " + " | ".join(columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        lines += [f"| {name} | " + " | ".join(_fmt(m.get(c)) for c in columns) + " |" for name, m in models.items()]
        lines.append("")

    if item_bias is not None:
        order = np.argsort(item_bias)
        lines += [
            "## Item biases",
            "",
            "What the model thinks of an item whatever the user's taste "
            "(fastbook: low bias = disliked even by those who like such films).",
            "",
            "| lowest bias | highest bias |",
            "|---|---|",
        ]
        lines += [
            f"| {_name(item_ids[lo], titles)} ({item_bias[lo]:+.2f}) | {_name(item_ids[hi], titles)} "
            f"({item_bias[hi]:+.2f}) |"
            for lo, hi in zip(order[:8], order[::-1][:8])
        ]
        lines.append("")

    if item_factors is not None and item_factors.shape[1] >= 2:
        lines += _pca_section(out, item_factors, item_ids, item_counts, titles)

    if recommendations.height:
        fig, axes = _subplots(1, 2, figsize=(10, 3.5))
        axes[0].hist(recommendations["score"].to_numpy(), bins=40)
        axes[0].set_title("Score of recommended items")
        axes[0].set_xlabel("score")
        catalog = pl.DataFrame({"item_id": item_ids, "n": item_counts})  # each list entry's item's ratings
        rec_counts = (
            recommendations.select("item_id")
            .join(catalog.cast({"item_id": recommendations.schema["item_id"]}), on="item_id", how="inner")["n"]
            .to_numpy()
        )
        axes[1].hist(
            [np.log10(1 + item_counts), np.log10(1 + rec_counts)],
            bins=30,
            density=True,
            label=["catalog", "recommended"],
        )
        axes[1].set_title("Popularity (log10 1 + ratings)"), axes[1].legend()
        _save(fig, out / "recommendations.png")
        distinct = recommendations["item_id"].n_unique()
        top = recommendations.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False]).head(5)
        lines += [
            "## What the lists recommend",
            "",
            "![recommendations](recommendations.png)",
            "",
            f"{distinct} of {len(item_ids)} items ({distinct / max(len(item_ids), 1):.1%}) appear in some list. "
            "Most recommended: " + "; ".join(f"{_name(i, titles)} ({n} users)" for i, n in top.iter_rows()),
            "",
            f"Cold start: {metrics.get('cold_start_users', 0)} users known only from the users table got "
            f"`{metrics.get('cold_start', 'popularity')}` lists; {metrics.get('users_thin', 'n/a')} users have "
            "fewer than 5 ratings (iALS folds them in from their own ratings).",
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def report_run(
    out_dir: str | Path,
    run_id: str,
    snapshot: Snapshot,
    rater_path: str | None,
    ranker_path: str,
    parts: list[str],
    metrics: dict,
    history: list[dict],
) -> Path:
    """The report of one run, from its snapshot, model files and published lists."""
    rater = load_model(rater_path).model if rater_path else None
    ranker = load_ranker(ranker_path)
    per_user, per_item = snapshot.rating_counts()
    vectors = ranker.item_vectors()
    if vectors is None and rater is not None:
        vectors = rater.item_vectors()
    lists = (
        pl.concat([pl.read_parquet(p, glob=False) for p in parts])
        if parts
        else pl.DataFrame(schema={"user_id": pl.Int64, "item_id": pl.Int64, "score": pl.Float64})
    )
    return write_report(
        out_dir,
        run_id=run_id,
        metrics={**metrics, "users_thin": int(((per_user > 0) & (per_user < 5)).sum())},
        history=history,
        item_ids=snapshot.item_ids(),
        item_factors=vectors,
        item_bias=rater.item_biases() if rater is not None else None,
        item_counts=per_item,
        recommendations=lists,
        titles=snapshot.titles(),
        n_users=int((per_user > 0).sum()),
    )
