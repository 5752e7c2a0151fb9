"""Training plots as PNG bytes, for MLflow artifacts and Dagster markdown metadata."""

from __future__ import annotations

import base64
import dataclasses
import io

import pandas as pd

from musicrec_assets.evaluation.tuning import SearchResult


def _pyplot():
    """matplotlib's pyplot, on the Agg backend (no display: plots are files), imported when the
    first plot is drawn: the import takes about half a second, which every Dagster step process
    and every command would pay otherwise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    _pyplot().close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


# settings a trial carries that no search varies: fixed by the model or the run
_NOT_SEARCHED = {"objective", "seed", "iterations", "weighted_regularization", "use_biases"}


def searched_settings(result: SearchResult) -> pd.DataFrame:
    """One row per trial of ``result``: the settings its search varied (those with more than
    one value among its trials), ``cv_score`` (the mean CV primary metric, over the folds a
    pruned trial ran), ``pruned`` and ``chosen``."""
    rows = [
        {
            **{k: v for k, v in dataclasses.asdict(t.params).items() if k not in _NOT_SEARCHED},
            "cv_score": t.mean_metrics[result.primary_metric],
            "pruned": t.pruned,
            "chosen": t.index == result.best.index,
        }
        for t in result.trials
    ]
    frame = pd.DataFrame(rows)
    fixed = [name for name in frame.columns[:-3] if frame[name].nunique(dropna=False) < 2]
    return frame.drop(columns=fixed)


def search_by_setting(searches: dict[str, SearchResult]) -> bytes | None:
    """Every trial's CV score against each setting its model's search varied, a row of panels
    per model: numbers on a log scale (symmetric where 0 is a value: the rating model's rank
    0 is the bias model), words as categories; pruned trials grey ×, the chosen one ★. None
    where no search varied anything (every setting fixed to one value)."""
    frames = {model: searched_settings(result) for model, result in searches.items()}
    shown = {model: frame for model, frame in frames.items() if len(frame.columns) > 3}
    if not shown:
        return None
    width = max(len(frame.columns) - 3 for frame in shown.values())
    figure, axes = _pyplot().subplots(
        len(shown), width, figsize=(3.2 * width, 2.7 * len(shown)), squeeze=False
    )
    for row, (model, frame) in zip(axes, shown.items(), strict=True):
        settings = list(frame.columns[:-3])
        for axis, name in zip(row, settings, strict=False):
            _scatter_setting(axis, frame, name)
        for axis in row[len(settings) :]:
            axis.set_visible(False)
        row[0].set_ylabel(f"{model}\ncv {searches[model].primary_metric}")
    figure.suptitle("cross-validated score by searched setting (grey ×: pruned, ★: chosen)")
    return _png(figure)


def _scatter_setting(axis, frame: pd.DataFrame, name: str) -> None:
    values = frame[name]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        x = values.astype(float)
        known = x.dropna()  # a setting some trials lack (λ_b of a rating model without biases)
        if (known > 0).all() and known.max() / known.min() > 10:
            axis.set_xscale("log")
        elif (known >= 0).all() and known.max() > 10:
            axis.set_xscale("symlog", linthresh=1)
    else:
        categories = sorted(values.astype(str).unique())
        x = values.astype(str).map(categories.index).astype(float)
        axis.set_xticks(range(len(categories)), categories)
        axis.set_xlim(-0.5, len(categories) - 0.5)
    pruned, chosen = frame["pruned"], frame["chosen"]
    axis.scatter(x[~pruned], frame["cv_score"][~pruned], s=14, alpha=0.7)
    axis.scatter(x[pruned], frame["cv_score"][pruned], s=14, marker="x", color="tab:gray")
    axis.scatter(x[chosen], frame["cv_score"][chosen], s=90, marker="*", color="tab:red")
    axis.set_xlabel(name)


def training_curve(history: list[dict[str, float]], metric: str) -> bytes:
    figure, axes = _pyplot().subplots(figsize=(6, 3.5))
    axes.plot(range(1, len(history) + 1), [step[metric] for step in history], marker="o")
    axes.set_xlabel("iteration")
    axes.set_ylabel(metric)
    axes.set_title(f"training {metric} per iteration")
    return _png(figure)


# panels side by side: a wider image is cut by Dagster's markdown dialog
_PANELS_PER_ROW = 3


def scores_by_model(
    scores: dict[str, dict[str, float]], metrics: list[str], ours: set[str]
) -> bytes:
    """A panel per metric, a bar per model that has it (``ours`` blue, baselines grey), each
    bar labelled with its value: every held-out score of the run on one image."""
    shown = [m for m in metrics if any(m in values for values in scores.values())]
    rows = -(-len(shown) // _PANELS_PER_ROW)
    figure, axes = _pyplot().subplots(
        rows,
        _PANELS_PER_ROW,
        figsize=(3.3 * _PANELS_PER_ROW, rows * (0.35 * len(scores) + 1.2)),
        squeeze=False,
    )
    for axis in axes.flat[len(shown) :]:
        axis.set_visible(False)
    for axis, metric in zip(axes.flat, shown, strict=False):
        names = [name for name, values in scores.items() if metric in values][::-1]
        values = [scores[name][metric] for name in names]
        colours = ["tab:blue" if name in ours else "tab:gray" for name in names]
        bars = axis.barh(names, values, color=colours)
        axis.bar_label(bars, [f"{value:.3f}" for value in values], fontsize=8, padding=2)
        axis.set_xlim(0, max(*values, 1e-3) * 1.3)  # room for the labels
        axis.set_title(metric, fontsize=10)
    figure.suptitle("held-out scores: our models (blue) beside the baselines (grey)")
    return _png(figure)
