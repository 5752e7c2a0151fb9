"""Training plots as PNG bytes, for MLflow artifacts and Dagster markdown metadata."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: plots are files

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def cv_by_setting(trials: pd.DataFrame, metric: str) -> bytes:
    """Each complete trial's mean CV ``metric`` against each numeric setting the search varied
    (log scale), the chosen trial marked: where the search looked and where it peaked."""
    complete = trials[~trials["pruned"]]
    settings = [
        name
        for name in ("rank", "regularization", "bias_regularization", "alpha")
        if name in complete and complete[name].dropna().nunique() > 1
    ] or ["rank"]
    figure, axes = plt.subplots(1, len(settings), figsize=(3.2 * len(settings), 3), squeeze=False)
    for axis, name in zip(axes[0], settings, strict=True):
        shown = complete[complete[name].notna() & (complete[name] > 0)]
        axis.scatter(shown[name], shown["cv_score"], s=14, alpha=0.7)
        chosen = shown[shown["chosen"]]
        axis.scatter(chosen[name], chosen["cv_score"], s=60, marker="*", color="tab:red")
        if len(shown) and shown[name].max() > 0:
            axis.set_xscale("log")
        axis.set_xlabel(name)
    axes[0][0].set_ylabel(f"cv {metric}")
    figure.suptitle(f"ranking model: cross-validated {metric} by setting (★ chosen)")
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
