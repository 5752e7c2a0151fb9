"""Hyperparameter search: k-fold cross-validated grid search over ``TrainingParams`` fields
(or those of another frozen params dataclass with a ``feedback`` field, e.g. the item-kNN
baseline's ``NeighbourParams``).

Every candidate is fitted on the same per-user folds (``split.kfold_splits``) and scored on each
validation fold; candidates are compared on the mean over folds of the primary metric of the
model kind, RMSE (lower is better) for a rating model and NDCG@K (higher is better) for a
ranking model, on play counts or on ratings.
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
from musicrec_assets.model.baselines import NeighbourParams
from musicrec_assets.model.factors import IMPLICIT_ONLY, Feedback, Fitter, TrainingParams

# λ here is Spark-style: scaled by each row's rating count (ALS-WR)
# (λ 0.01 lost at every rank on the sample, and rank 40 fits take 20-40 s each there on a loaded
# 2-core machine, a third of a run, for no better RMSE than rank 10)
DEFAULT_EXPLICIT_GRID: dict[str, list] = {
    "rank": [5, 10, 20],
    "regularization": [0.05, 0.1, 0.3],
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

# The ranking model of ratings: implicit ALS on the rating matrix, plain λ. On FilmTrust's
# training part (3-fold CV, NDCG@10) a wider sweep (rank 4-128, λ 3-1000, α 0.3-100) peaks at
# rank 64, λ 100, α 10 with the rating as confidence, rank mattering little from 16 up;
# centred confidence ranks liked items better but any rated item worse (it reads low ratings as
# dislikes, and users still rate those films). The wide grid keeps that peak inside every axis
# (81 candidates: about 3 minutes of 3-fold CV on FilmTrust on 2 cores); benchmarks/bench_train.py
# searches it to check the chosen point is not on an edge.
WIDE_RATINGS_RANKING_GRID: dict[str, list] = {
    "rank": [32, 64, 128],
    "regularization": [30.0, 100.0, 300.0],
    "confidence": ["binary", "rating", "centred"],
    "alpha": [3.0, 10.0, 30.0],
}
# What tuning searches by default: the wide grid's ridge (λ 100, the rating as confidence won on
# FilmTrust and the sample, rank 128 on the sample) with each scheme kept in play, 6 candidates,
# about 40 s on the bundled sample
DEFAULT_RATINGS_RANKING_GRID: dict[str, list] = {
    "rank": [128],
    "regularization": [100.0],
    "confidence": ["binary", "rating", "centred"],
    "alpha": [3.0, 10.0],
}
# K of the item-kNN baseline and its similarity. 3-fold CV chose K 100 (bm25) on Last.fm-2k's
# training part and K 400 (cosine) of 10-400 on FilmTrust's, hence 800 (FilmTrust has 2,071
# films: a large K is nearly "every co-rated film"; the sample, 300 users, chose K 800 cosine,
# hence 1600). The wide grid is the benchmark's; tuning's default spans the same range at every
# fourth step.
WIDE_NEIGHBOUR_GRID: dict[str, list] = {
    "neighbours": [10, 25, 50, 100, 200, 400, 800, 1600],
    "similarity": ["cosine", "bm25"],
}
DEFAULT_NEIGHBOUR_GRID: dict[str, list] = {
    "neighbours": [100, 400, 1600],
    "similarity": ["cosine", "bm25"],
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


def ranking_candidates(feedback: Feedback, overrides: dict[str, list]) -> list[dict[str, Any]]:
    """The ranking model's grid for data of ``feedback``'s kind, each non-empty list of
    ``overrides`` replacing its default values: ``DEFAULT_IMPLICIT_GRID`` for play counts,
    ``DEFAULT_RATINGS_RANKING_GRID`` for ratings."""
    defaults = DEFAULT_RATINGS_RANKING_GRID if feedback == "explicit" else DEFAULT_IMPLICIT_GRID
    return grid({name: overrides.get(name) or values for name, values in defaults.items()})


def as_row_scaled(candidates: list[dict[str, Any]], users_per_interaction: float) -> list[dict]:
    """Candidates of implicit's plain λ with Spark's row-scaled λ of about the same strength:
    Spark multiplies λ by each row's count, so λ · n_users / nnz (``model/spark_als.py``)."""
    return [
        {
            **candidate,
            "regularization": float(f"{candidate['regularization'] * users_per_interaction:.3g}"),
        }
        if "regularization" in candidate
        else candidate
        for candidate in candidates
    ]


def neighbour_candidates(overrides: dict[str, list]) -> list[dict[str, Any]]:
    """The item-kNN baseline's grid (``neighbours``, ``similarity``), each non-empty list of
    ``overrides`` replacing its default values."""
    return grid(
        {name: overrides.get(name) or values for name, values in DEFAULT_NEIGHBOUR_GRID.items()}
    )


def cross_validate(
    matrix: csr_matrix,
    base_params: TrainingParams | NeighbourParams,
    candidates: list[dict[str, Any]],
    n_folds: int = 3,
    seed: int = 42,
    k: int = 10,
    on_trial: TrialCallback | None = None,
    fit: Fitter | None = None,
    max_ranked_users: int = 0,
    data_feedback: Feedback | None = None,
) -> SearchResult:
    """Grid search by k-fold cross-validation.

    Parameters
    ----------
    matrix : csr_matrix
        users × items training data (ratings or plays); never the final test split.
    base_params : TrainingParams or NeighbourParams
        Fixed settings; ``feedback`` (the model kind) selects the fitter and the primary
        metric.
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
    data_feedback : "explicit" or "implicit", optional
        What ``matrix`` holds, when it differs from the model kind: "explicit" for a ranking
        model of ratings, which adds the liked-relevance NDCG to the fold metrics. Defaults to
        ``base_params.feedback``.

    Returns
    -------
    SearchResult
        All trials in candidate order and the best one (the first among equals).
    """
    matrix = csr_matrix(matrix)
    fit = fit or LOCAL_FITTERS[base_params.feedback]
    data_feedback = data_feedback or base_params.feedback
    folds = [
        (train, validation, ranked_users(validation, max_ranked_users, seed))
        for train, validation in kfold_splits(matrix, n_folds=n_folds, seed=seed)
    ]
    return search_folds(
        folds,
        base_params,
        candidates,
        fit=lambda train, params: fit(train, params),
        score=lambda model, train, validation, ranked: evaluate(
            model, train, validation, data_feedback, k, ranked
        ),
        k=k,
        on_trial=on_trial,
    )


def search_folds(
    folds: list[tuple[Any, Any, Any]],
    base_params: TrainingParams | NeighbourParams,
    candidates: list[dict[str, Any]],
    fit: Callable[[Any, TrainingParams], Any],
    score: Callable[[Any, Any, Any, Any], dict[str, float]],
    k: int = 10,
    on_trial: TrialCallback | None = None,
) -> SearchResult:
    """The grid search of :func:`cross_validate` over folds of any representation (scipy
    matrices here, Spark frames in :mod:`~musicrec_assets.evaluation.spark_tuning`):
    ``folds`` holds (train, validation, ranked users), ``fit(train, params)`` fits a model,
    ``score(model, train, validation, ranked)`` returns its metrics."""
    if not candidates:
        raise ValueError("no candidates to cross-validate")
    metric, higher_is_better = primary_metric(base_params.feedback, k)
    trials: list[Trial] = []
    for index, overrides in enumerate(candidates):
        params = dataclasses.replace(base_params, **overrides)
        fold_metrics = []
        for train, validation, ranked in folds:
            started = time.perf_counter()
            model = fit(train, params)
            fit_seconds = time.perf_counter() - started
            scores = score(model, train, validation, ranked)
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


# the TrainingParams fields a tuning_trials row shows in columns of their own
_PARAM_COLUMNS = ("rank", "regularization", "alpha", "confidence", "iterations")


def trials_frame(
    searches: dict[str, SearchResult],
    feedback: Feedback,
    mlflow_run_id: str,
    tuned_at: datetime,
) -> pd.DataFrame:
    """One row per trial of every search by model name ("ranking", "rating", "item_knn"),
    numbered across them: the columns of the ``tuning_trials`` table. ``feedback`` is what the
    data holds; a column that means nothing for a model (α for a rating model, every ALS
    setting for item-kNN, whose settings are in ``params``) is empty."""
    rows = []
    for model, result in searches.items():
        for t in result.trials:
            settings = dataclasses.asdict(t.params)
            if settings.get("feedback") == "explicit":
                settings = {k: v for k, v in settings.items() if k not in IMPLICIT_ONLY}
            rows.append(
                {
                    "trial": len(rows) + 1,
                    "model": model,
                    **{name: settings.get(name) for name in _PARAM_COLUMNS},
                    "feedback": feedback,
                    "metric": result.primary_metric,
                    "cv_score": t.mean_metrics[result.primary_metric],
                    "cv_metrics": json.dumps(t.mean_metrics),
                    "params": json.dumps(dataclasses.asdict(t.params)),
                    "chosen": t.index == result.best.index,
                    "mlflow_run_id": mlflow_run_id,
                    "tuned_at": tuned_at,
                }
            )
    # nullable types: an empty cell is NULL in the table, and rank stays an integer column
    return pd.DataFrame(rows).astype(
        {"rank": "Int64", "iterations": "Int64", "regularization": "Float64", "alpha": "Float64"}
    )
