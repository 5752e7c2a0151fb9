"""What tuning and training record in MLflow: one run each, with nested runs per CV trial."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.promotion import CandidateReport
from musicrec_assets.evaluation.tuning import SearchResult
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.tracking import plots, registry


@contextmanager
def tuning_run(
    experiment_id: str, feedback: str, backend: str, n_folds: int, n_trials: int
) -> Iterator[mlflow.ActiveRun]:
    """The parent run of a tuning; :class:`TrialLog` nests each trial under it."""
    description = (
        f"{n_folds}-fold cross-validation of {n_trials} ALS settings on the training part "
        f"({feedback} feedback, {backend} backend); each trial is a nested run."
    )
    with mlflow.start_run(
        experiment_id=experiment_id, run_name="als_tuning", description=description
    ) as run:
        mlflow.set_tags({"musicrec.step": "tuning", "feedback": feedback, "backend": backend})
        mlflow.log_params({"n_folds": n_folds, "n_trials": n_trials})
        yield run


class TrialLog:
    """Logs each CV trial as a nested run of the active run, spanning the time it took.

    Trials are reported when they end, so each one's run starts where the previous one ended
    (the first where this log was made): MLflow's durations are the trials' own.
    """

    def __init__(self) -> None:
        self._last_end_ms = _now_ms()

    def __call__(
        self,
        index: int,
        params: TrainingParams,
        fold_metrics: list[dict[str, float]],
        mean_metrics: dict[str, float],
    ) -> None:
        parent = mlflow.active_run()
        started = MlflowClient().create_run(
            parent.info.experiment_id,
            start_time=self._last_end_ms,
            tags={MLFLOW_PARENT_RUN_ID: parent.info.run_id},
            run_name=f"trial {index + 1}",
        )
        with mlflow.start_run(run_id=started.info.run_id, nested=True):
            mlflow.log_params(dataclasses.asdict(params))
            for fold, metrics in enumerate(fold_metrics):
                mlflow.log_metrics({f"cv_fold_{k}": v for k, v in metrics.items()}, step=fold)
            mlflow.log_metrics({f"cv_{k}": v for k, v in mean_metrics.items()})
        self._last_end_ms = _now_ms()


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_tuning_result(result: SearchResult, trials: pd.DataFrame) -> bytes:
    """The chosen params, their CV score and the CV heatmap (returned as PNG) on the parent."""
    best, metric = result.best, result.primary_metric
    mlflow.log_params({f"best_{k}": v for k, v in dataclasses.asdict(best.params).items()})
    mlflow.log_metric(f"best_cv_{metric}", best.mean_metrics[metric])
    heatmap = plots.cv_heatmap(
        trials.rename(columns={"cv_score": metric}), metric, result.higher_is_better
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
    warehouse: Path,
) -> TrainingRun:
    """Log a trained version: params, sizes, the data it was trained on (the warehouse's
    ``ratings``, digest = the split's fingerprint), training curve, held-out scores of the
    model and its baselines, plots; register the serving model with a description and its
    headline metrics as tags, and give it the alias ``report`` chose."""
    params = report.evaluation_model.params
    metric = report.metric
    description = (
        f"ALS ({params.feedback} feedback, {backend} backend, rank {params.rank}, "
        f"λ {params.regularization:g}) fitted on the training part, scored on the held-out part "
        f"beside the baselines, then refitted on all {interactions.nnz:,} interactions."
    )
    with mlflow.start_run(
        experiment_id=experiment_id, run_name="als_model", description=description
    ) as run:
        source = LocalArtifactDatasetSource(warehouse.as_uri())
        mlflow.log_input(
            MetaDataset(source, name="ratings", digest=report.split_id[:32]), context="training"
        )
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
        registry.describe_version(
            logged.version,
            description,
            {
                f"test_{metric}": f"{report.scores['als'][metric]:.4f}",
                "alias_at_registration": alias,
                "promotion": report.reason,
            },
        )
        registry.set_alias(MlflowClient(), alias, logged.version)
        mlflow.set_tags({"musicrec.alias": alias, "musicrec.promotion": report.reason})
    return TrainingRun(run.info.run_id, logged, alias, figures)
