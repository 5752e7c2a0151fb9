"""Training plots as PNG bytes, for MLflow artifacts and Dagster markdown metadata."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: plots are files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def cv_heatmap(trials: pd.DataFrame, metric: str, higher_is_better: bool) -> bytes:
    """Mean CV ``metric`` by rank × regularization (best over the other parameters)."""
    best = (
        trials.groupby(["rank", "regularization"])[metric]
        .agg("max" if higher_is_better else "min")
        .unstack("regularization")
    )
    figure, axes = plt.subplots(figsize=(6, 4))
    image = axes.imshow(best.to_numpy(), cmap="viridis" if higher_is_better else "viridis_r")
    axes.set_xticks(range(best.shape[1]), [f"{v:g}" for v in best.columns])
    axes.set_yticks(range(best.shape[0]), [str(v) for v in best.index])
    axes.set_xlabel("regularization λ")
    axes.set_ylabel("rank")
    for (row, column), value in np.ndenumerate(best.to_numpy()):
        axes.text(column, row, f"{value:.3f}", ha="center", va="center", color="white")
    figure.colorbar(image, label=f"cv {metric}")
    axes.set_title(f"cross-validated {metric}")
    return _png(figure)


def training_curve(history: list[dict[str, float]], metric: str) -> bytes:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    axes.plot(range(1, len(history) + 1), [step[metric] for step in history], marker="o")
    axes.set_xlabel("iteration")
    axes.set_ylabel(metric)
    axes.set_title(f"training {metric} per iteration")
    return _png(figure)


def model_vs_baselines(scores: dict[str, float], metric: str) -> bytes:
    figure, axes = plt.subplots(figsize=(6, 3.5))
    names = list(scores)
    axes.barh(names, [scores[n] for n in names], color=["tab:blue"] + ["tab:gray"] * len(names))
    axes.set_xlabel(f"test {metric}")
    axes.set_title(f"ALS vs baselines: {metric}")
    return _png(figure)
