"""What tuning and training record in MLflow: one run each, with nested runs per CV trial."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.data.meta_dataset import MetaDataset
from mlflow.data.sources import LocalArtifactDatasetSource
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from musicrec_assets.evaluation.metrics import HEADLINE_METRICS
from musicrec_assets.evaluation.promotion import RANKING_METRIC, RATING_METRIC, CandidateReport
from musicrec_assets.evaluation.tuning import Budget, SearchResult, Trial
from musicrec_assets.model.factors import ModelPair
from musicrec_assets.model.tag_mapping import TagFactors
from musicrec_assets.tracking import plots, registry

# the models × metrics table of each training run (MLflow's artifact view shows it as a table)
METRICS_TABLE = "metrics_by_model.csv"
# the experiment's saved view of the run list with the headline metrics as columns: MLflow
# 3.17 has no default columns of its own (it shows the ones a person last chose in that
# browser), but lists the views saved in the experiment's tags under "Views" and opens one
# from the address `experiment_url` builds
HEADLINE_VIEW = "headline"
_HEADLINE_COLUMNS = [
    "metrics.`search/ranking/best_cv_ndcg_at_10`",
    "metrics.`search/rating/best_cv_rmse`",
    "metrics.`test/ndcg_at_10/ranking`",
    "metrics.`test/ndcg_at_10/item_knn`",
    "metrics.`test/ndcg_at_10/most_popular`",
    "metrics.`test/rmse/rating`",
    "metrics.`test/rmse/bias`",
    "tags.`musicrec.alias`",
    "attributes.`Models`",
]


def save_headline_view(experiment_id: str) -> None:
    """(Re)write the experiment's saved view :data:`HEADLINE_VIEW`, as MLflow's "Save view"
    writes one: the tag ``mlflow.sharedViewState.<key>``, a JSON envelope (name, times in ms)
    around the view's own JSON, whose ``selectedColumns`` are in MLflow's
    ``<type>.`<name>``` notation."""
    now = _now_ms()
    envelope = {
        "name": "musicrec: headline metrics",
        "createdAt": now,
        "updatedAt": now,
        "state": json.dumps({"selectedColumns": _HEADLINE_COLUMNS}),
    }
    MlflowClient().set_experiment_tag(
        experiment_id, f"mlflow.sharedViewState.{HEADLINE_VIEW}", json.dumps(envelope)
    )


def experiment_url(experiment_id: str) -> str:
    """The experiment's run list in the MLflow UI with the headline metrics as columns."""
    run_page, query = registry.run_url(experiment_id, "-").split("?")
    runs_page = run_page.rpartition("/")[0]  # .../experiments/<id>/runs
    return f"{runs_page}?viewStateShareKey={HEADLINE_VIEW}&{query}"


def artifact_url(experiment_id: str, run_id: str, path: str) -> str:
    """A run's artifact (``plots/<file>.png``, :data:`METRICS_TABLE`) in the MLflow UI."""
    run_page, query = registry.run_url(experiment_id, run_id).split("?")
    return f"{run_page}/artifactPath/{path}?{query}"


def metrics_by_model(scores: dict[str, dict[str, float]]) -> pd.DataFrame:
    """The held-out headline metrics (rows: models; columns: the metrics some model has, the
    two that decide first, where a narrow table still shows them), rounded to 4 places; a
    metric a model has not is empty."""
    frame = pd.DataFrame(scores).T.rename_axis("model")
    deciding = [RANKING_METRIC, RATING_METRIC]
    ordered = deciding + [metric for metric in HEADLINE_METRICS if metric not in deciding]
    return frame[[metric for metric in ordered if metric in frame.columns]].astype(float).round(4)


@contextmanager
def tuning_run(
    experiment_id: str, feedback: str, backend: str, n_folds: int, budget: Budget
) -> Iterator[mlflow.ActiveRun]:
    """The parent run of a tuning; :class:`TrialLog` nests each trial under it."""
    description = (
        f"{n_folds}-fold cross-validated searches (the ranking model's, for ratings the rating "
        f"model's, and the item-kNN baseline's) on the training part ({feedback} feedback, "
        f"{backend} backend), each of at most {budget.trials} trials or "
        f"{budget.seconds / 60:g} minutes; each trial is a nested run."
    )
    with mlflow.start_run(
        experiment_id=experiment_id, run_name="als_tuning", description=description
    ) as run:
        save_headline_view(experiment_id)
        mlflow.set_tags({"musicrec.step": "tuning", "feedback": feedback, "backend": backend})
        mlflow.log_params(
            {
                "n_folds": n_folds,
                "budget_trials": budget.trials,
                "budget_minutes": budget.seconds / 60,
            }
        )
        yield run


class TrialLog:
    """Logs each CV trial as a nested run of the active run, spanning the time it took.

    Trials are reported when they end, so each one's run starts where the previous one ended
    (the first where this log was made): MLflow's durations are the trials' own.
    """

    def __init__(self) -> None:
        self._last_end_ms = _now_ms()

    def __call__(self, model: str, trial: Trial) -> None:
        parent = mlflow.active_run()
        started = MlflowClient().create_run(
            parent.info.experiment_id,
            start_time=self._last_end_ms,
            run_name=f"{model} trial {trial.index + 1}",
            tags={
                MLFLOW_PARENT_RUN_ID: parent.info.run_id,
                "musicrec.model": model,
                "musicrec.trial_state": "pruned" if trial.pruned else "complete",
            },
        )
        with mlflow.start_run(run_id=started.info.run_id, nested=True):
            mlflow.log_params(dataclasses.asdict(trial.params))
            for fold, metrics in enumerate(trial.fold_metrics):
                mlflow.log_metrics({f"cv_fold/{k}": v for k, v in metrics.items()}, step=fold)
            mlflow.log_metrics({f"cv/{k}": v for k, v in trial.mean_metrics.items()})
        self._last_end_ms = _now_ms()


def _now_ms() -> int:
    return int(time.time() * 1000)


def log_tuning_result(searches: dict[str, SearchResult]) -> dict[str, bytes]:
    """Each model's chosen params (``<model>_best_*``), its CV score and search figures
    (``search/<model>/*``) on the parent run, and the CV score by searched setting (returned,
    file name -> PNG, where any search varied a setting)."""
    mlflow.log_param("n_trials", sum(len(result.trials) for result in searches.values()))
    for model, result in searches.items():
        best, metric = result.best, result.primary_metric
        mlflow.log_params(
            {f"{model}_best_{k}": v for k, v in dataclasses.asdict(best.params).items()}
        )
        mlflow.log_metrics(
            {
                f"search/{model}/best_cv_{metric}": best.mean_metrics[metric],
                f"search/{model}/trials": len(result.trials),
                f"search/{model}/pruned_trials": result.n_pruned,
                f"search/{model}/seconds": result.seconds,
            }
        )
    figure = plots.search_by_setting(searches)
    figures = {} if figure is None else {"search_by_setting.png": figure}
    for file_name, png in figures.items():
        registry.log_png(png, file_name)
    return figures


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    run_id: str
    logged: registry.LoggedModel
    alias: str
    figures: dict[str, bytes]  # file name -> PNG


def log_training(
    experiment_id: str,
    report: CandidateReport,
    serving_model: ModelPair,
    seen: Path,
    n_interactions: int,
    artist_names: pd.DataFrame,
    backend: str,
    sizes: dict[str, int],
    warehouse: Path,
    tag_factors: tuple[np.ndarray, TagFactors] | None = None,
) -> TrainingRun:
    """Log a trained version: params (``<role>_<name>``), sizes, the data it was trained on
    (the warehouse's ``ratings``, digest = the split's fingerprint), training curves
    (``training/<role>/*``), the held-out scores of its models and the baselines side by side
    (``test/<metric>/<model>``: MLflow's charts group by the prefix, one section per metric),
    plots; register the serving models as one version with a description and its headline
    metrics as tags, and choose its alias (``report``'s verdict), which :func:`give_alias`
    gives it once its metrics are recorded."""
    pair = report.evaluation_model
    described = ", ".join(
        f"{role} model rank {model.params.rank} λ {model.params.regularization:g}"
        for role, model in pair.models().items()
    )
    description = (
        f"ALS on {pair.feedback} feedback ({backend} backend; {described}) fitted on the "
        f"training part, scored on the held-out part beside the baselines, then refitted on "
        f"all {n_interactions:,} interactions. The ranking model orders the recommendations"
        + ("; the rating model predicts ratings." if pair.rating is not None else ".")
    )
    ours = set(pair.models())
    with mlflow.start_run(
        experiment_id=experiment_id, run_name="als_model", description=description
    ) as run:
        save_headline_view(experiment_id)
        source = LocalArtifactDatasetSource(warehouse.as_uri())
        mlflow.log_input(
            MetaDataset(source, name="ratings", digest=report.split_id[:32]), context="training"
        )
        mlflow.set_tags(
            {
                "musicrec.step": "training",
                "feedback": pair.feedback,
                "backend": backend,
                registry.SPLIT_TAG: report.split_id,
            }
        )
        for role, model in pair.models().items():
            mlflow.log_params(
                {f"{role}_{k}": v for k, v in dataclasses.asdict(model.params).items()}
            )
            for step, values in enumerate(report.history.get(role, [])):
                mlflow.log_metrics(
                    {f"training/{role}/{k}": v for k, v in values.items()}, step=step
                )
            mlflow.log_metric(f"training/{role}/fit_seconds", report.fit_seconds[role])
        mlflow.log_params({**sizes, "all_rows": n_interactions})
        for name, values in report.scores.items():
            mlflow.log_metrics({f"test/{k}/{name}": v for k, v in values.items()})
        comparison = metrics_by_model(report.scores)
        # the artifact view shows a CSV as a table: the run's scores side by side
        mlflow.log_text(comparison.to_csv(), METRICS_TABLE)
        figures = {
            "scores_by_model.png": plots.scores_by_model(
                report.scores, list(comparison.columns), ours | {"ranking_alone"}
            )
        }
        curve = report.history.get("ranking")
        if curve:
            figures["training_curve.png"] = plots.training_curve(curve, next(iter(curve[0])))
        for file_name, png in figures.items():
            registry.log_png(png, file_name)
        logged = registry.log_model(serving_model, pair, seen, artist_names, tag_factors)
        alias = registry.CHAMPION if report.promote else registry.CHALLENGER
        headline = {
            f"{role}_test_{metric}": f"{report.scores[role][metric]:.4f}"
            for role, metric in (("ranking", RANKING_METRIC), ("rating", RATING_METRIC))
            if role in ours
        }
        registry.describe_version(
            logged.version,
            description,
            {**headline, "alias_at_registration": alias, "promotion": report.reason},
        )
        mlflow.set_tags({"musicrec.promotion": report.reason})
        if tag_factors is not None:
            mlflow.set_tag("musicrec.artists_from_tags", tag_factors[1].reason)
    return TrainingRun(run.info.run_id, logged, alias, figures)


def give_alias(run: TrainingRun) -> None:
    """Point the alias :func:`log_training` chose at the run's version, once the version's
    metrics are in the warehouse (``model_metrics``): a run killed before this leaves the
    previous champion in place, never a champion whose metrics are missing."""
    client = MlflowClient()
    registry.set_alias(client, run.alias, run.logged.version)
    client.set_tag(run.run_id, "musicrec.alias", run.alias)
