"""What tuning and training record in MLflow: one run each, with nested runs per CV trial."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import primary_metric
from musicrec_assets.evaluation.promotion import CandidateReport
from musicrec_assets.evaluation.tuning import SearchResult
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.tracking import plots, registry


@contextmanager
def tuning_run(
    experiment_id: str, feedback: str, backend: str, n_folds: int, n_trials: int
) -> Iterator[mlflow.ActiveRun]:
    """The parent run of a tuning; :func:`log_trial` nests each trial under it."""
    with mlflow.start_run(experiment_id=experiment_id, run_name="als_tuning") as run:
        mlflow.set_tags({"musicrec.step": "tuning", "feedback": feedback, "backend": backend})
        mlflow.log_params({"n_folds": n_folds, "n_trials": n_trials})
        yield run


def log_trial(
    index: int,
    params: TrainingParams,
    fold_metrics: list[dict[str, float]],
    mean_metrics: dict[str, float],
) -> None:
    """One CV trial as a nested run: its params, each fold's metrics (as steps), the means."""
    with mlflow.start_run(run_name=f"trial {index + 1}", nested=True):
        mlflow.log_params(dataclasses.asdict(params))
        for fold, metrics in enumerate(fold_metrics):
            mlflow.log_metrics({f"cv_fold_{k}": v for k, v in metrics.items()}, step=fold)
        mlflow.log_metrics({f"cv_{k}": v for k, v in mean_metrics.items()})


def log_tuning_result(result: SearchResult, trials: pd.DataFrame) -> bytes:
    """The chosen params, their CV score and the CV heatmap (returned as PNG) on the parent."""
    best = result.best
    metric, higher_is_better = primary_metric(best.params.feedback)
    mlflow.log_params({f"best_{k}": v for k, v in dataclasses.asdict(best.params).items()})
    mlflow.log_metric(f"best_cv_{metric}", best.mean_metrics[metric])
    heatmap = plots.cv_heatmap(
        trials.rename(columns={"cv_score": metric}), metric, higher_is_better
    )
    registry.log_png(heatmap, "cv_heatmap.png")
    return heatmap


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    run_id: str
    logged: registry.LoggedModel
    alias: str
    figures: dict[str, bytes]  # file name -> PNG


def log_training(
    experiment_id: str,
    report: CandidateReport,
    serving_model: FactorModel,
    interactions: csr_matrix,
    artist_names: pd.DataFrame,
    backend: str,
    sizes: dict[str, int],
) -> TrainingRun:
    """Log a trained version: params, sizes, training curve, held-out scores of the model and
    its baselines, plots; register the serving model and give it the alias ``report`` chose."""
    params = report.evaluation_model.params
    metric = report.metric
    with mlflow.start_run(experiment_id=experiment_id, run_name="als_model") as run:
        mlflow.set_tags(
            {
                "musicrec.step": "training",
                "feedback": params.feedback,
                "backend": backend,
                registry.SPLIT_TAG: report.split_id,
            }
        )
        mlflow.log_params(dataclasses.asdict(params))
        mlflow.log_params({**sizes, "all_rows": interactions.nnz})
        for step, values in enumerate(report.history):
            mlflow.log_metrics(values, step=step)
        mlflow.log_metrics({f"test_{k}": v for k, v in report.scores["als"].items()})
        mlflow.log_metric("fit_seconds", report.fit_seconds)
        for name, values in report.scores.items():
            if name != "als":
                mlflow.log_metrics({f"baseline_{name}_test_{k}": v for k, v in values.items()})
        figures = {
            "model_vs_baselines.png": plots.model_vs_baselines(
                {
                    name: values[metric]
                    for name, values in report.scores.items()
                    if metric in values
                },
                metric,
            )
        }
        if report.history:
            curve_metric = next(iter(report.history[0]))
            figures["training_curve.png"] = plots.training_curve(report.history, curve_metric)
        for file_name, png in figures.items():
            registry.log_png(png, file_name)
        logged = registry.log_model(
            serving_model, report.evaluation_model, interactions, artist_names
        )
        alias = registry.CHAMPION if report.promote else registry.CHALLENGER
        registry.set_alias(MlflowClient(), alias, logged.version)
        mlflow.set_tags({"musicrec.alias": alias, "musicrec.promotion": report.reason})
    return TrainingRun(run.info.run_id, logged, alias, figures)
