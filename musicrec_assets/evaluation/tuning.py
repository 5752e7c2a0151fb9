"""Hyperparameter search: k-fold cross-validated grid search over ``TrainingParams`` fields.

Every candidate is fitted on the same per-user folds (``split.kfold_splits``) and scored on each
validation fold; candidates are compared on the mean over folds of the primary metric, RMSE
(lower is better) for explicit feedback and NDCG@K (higher is better) for implicit feedback.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import evaluate, primary_metric, ranked_users
from musicrec_assets.evaluation.split import kfold_splits
from musicrec_assets.model.backends import LOCAL_FITTERS
from musicrec_assets.model.factors import Feedback, Fitter, TrainingParams

# λ here is Spark-style: scaled by each row's rating count (ALS-WR)
DEFAULT_EXPLICIT_GRID: dict[str, list] = {
    "rank": [5, 10, 20, 40],
    "regularization": [0.01, 0.05, 0.1, 0.3],
}
# λ here is implicit's plain λ, so it spans large values. α only means something relative to
# its scheme's scale (log1p(plays) is at most ~13 on Last.fm, bm25 weights reach several
# hundred): log1p wants α ≈ 1, bm25 α ≈ 0.01-0.03, so the product also holds two mismatched
# pairs that CV simply rejects. Raw counts (up to ~350k plays) lost to both at every α in a
# wider sweep on Last.fm-2k and are left out. 32 candidates: a few minutes of 3-fold CV on
# Last.fm-2k on 2 cores.
DEFAULT_IMPLICIT_GRID: dict[str, list] = {
    "rank": [32, 64],
    "regularization": [10.0, 30.0, 50.0, 100.0],
    "confidence": ["log1p", "bm25"],
    "alpha": [0.03, 1.0],
}

TrialCallback = Callable[[int, int, TrainingParams, list[dict[str, float]], dict[str, float]], None]


@dataclass(frozen=True)
class Trial:
    """One candidate's cross-validation result.

    ``fold_metrics`` holds, per fold, the metrics of ``metrics.evaluate`` plus "fit_seconds";
    ``mean_metrics`` their means over folds.
    """

    index: int
    params: TrainingParams
    fold_metrics: list[dict[str, float]]
    mean_metrics: dict[str, float]


@dataclass(frozen=True)
class SearchResult:
    trials: list[Trial]
    best: Trial
    primary_metric: str
    higher_is_better: bool


def grid(params_grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the listed values, the last key varying fastest.

    >>> grid({"rank": [8, 16], "alpha": [1.0]})
    [{'rank': 8, 'alpha': 1.0}, {'rank': 16, 'alpha': 1.0}]
    """
    names = list(params_grid)
    return [
        dict(zip(names, values, strict=True)) for values in itertools.product(*params_grid.values())
    ]


def candidates(feedback: Feedback, overrides: dict[str, list]) -> list[dict[str, Any]]:
    """The grid of the feedback kind's defaults, each non-empty list of ``overrides``
    (``rank``, ``regularization`` and, for play counts, ``alpha`` and ``confidence``) replacing
    its default values."""
    defaults = DEFAULT_EXPLICIT_GRID if feedback == "explicit" else DEFAULT_IMPLICIT_GRID
    return grid({name: overrides.get(name) or values for name, values in defaults.items()})


def cross_validate(
    matrix: csr_matrix,
    base_params: TrainingParams,
    candidates: list[dict[str, Any]],
    n_folds: int = 3,
    seed: int = 42,
    k: int = 10,
    on_trial: TrialCallback | None = None,
    fit: Fitter | None = None,
    max_ranked_users: int = 0,
) -> SearchResult:
    """Grid search by k-fold cross-validation.

    Parameters
    ----------
    matrix : csr_matrix
        users × items training data (ratings or plays); never the final test split.
    base_params : TrainingParams
        Fixed settings; ``feedback`` selects the fitter and the primary metric.
    candidates : list of dict
        Overrides of ``base_params`` fields, e.g. from ``grid``.
    n_folds, seed : int
        Folds of ``kfold_splits``, shared by all candidates.
    k : int
        Ranked-list length of the ranking metrics.
    on_trial : callable, optional
        Called after each candidate as
        ``on_trial(trial_index, n_trials, params, fold_metrics, mean_metrics)``,
        e.g. to log a nested MLflow run.
    fit : Fitter, optional
        Defaults to the local fitter for the feedback kind (another backend, e.g. Spark,
        passes its own).
    max_ranked_users : int
        Ranking metrics of a fold average over at most this many of its users
        (``metrics.ranked_users``, the same for every candidate); 0 ranks them all.

    Returns
    -------
    SearchResult
        All trials in candidate order and the best one (the first among equals).
    """
    if not candidates:
        raise ValueError("no candidates to cross-validate")
    matrix = csr_matrix(matrix)
    fit = fit or LOCAL_FITTERS[base_params.feedback]
    metric, higher_is_better = primary_metric(base_params.feedback, k)
    folds = [
        (train, validation, ranked_users(validation, max_ranked_users, seed))
        for train, validation in kfold_splits(matrix, n_folds=n_folds, seed=seed)
    ]

    trials: list[Trial] = []
    for index, overrides in enumerate(candidates):
        params = dataclasses.replace(base_params, **overrides)
        fold_metrics = []
        for train, validation, ranked in folds:
            started = time.perf_counter()
            model = fit(train, params)
            fit_seconds = time.perf_counter() - started
            scores = evaluate(model, train, validation, params.feedback, k, ranked)
            fold_metrics.append({**scores, "fit_seconds": fit_seconds})
        mean_metrics = {
            name: float(np.mean([fold[name] for fold in fold_metrics])) for name in fold_metrics[0]
        }
        trial = Trial(index, params, fold_metrics, mean_metrics)
        trials.append(trial)
        if on_trial is not None:
            on_trial(index, len(candidates), params, fold_metrics, mean_metrics)

    sign = -1.0 if higher_is_better else 1.0
    best = min(trials, key=lambda trial: sign * trial.mean_metrics[metric])
    return SearchResult(trials, best, metric, higher_is_better)


def trials_frame(
    result: SearchResult, feedback: Feedback, mlflow_run_id: str, tuned_at: datetime
) -> pd.DataFrame:
    """One row per trial, the columns of the ``tuning_trials`` table."""
    return pd.DataFrame(
        [
            {
                "trial": t.index + 1,
                **{k: getattr(t.params, k) for k in ("rank", "regularization", "alpha")},
                "confidence": t.params.confidence if feedback == "implicit" else None,
                "iterations": t.params.iterations,
                "feedback": feedback,
                "metric": result.primary_metric,
                "cv_score": t.mean_metrics[result.primary_metric],
                "cv_metrics": json.dumps(t.mean_metrics),
                "params": json.dumps(dataclasses.asdict(t.params)),
                "chosen": t.index == result.best.index,
                "mlflow_run_id": mlflow_run_id,
                "tuned_at": tuned_at,
            }
            for t in result.trials
        ]
    )
