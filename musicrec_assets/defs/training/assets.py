"""Training assets: rating matrix → evaluation split → ALS tuning → ALS model (MLflow)."""

import dataclasses
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from mlflow.tracking import MlflowClient

from musicrec_assets.defs.ingest.assets import ratings
from musicrec_assets.defs.metadata import frame_table, table_metadata
from musicrec_assets.defs.resources import (
    MlflowTracking,
    ModelSettings,
    MusicrecHome,
    SparkResource,
)
from musicrec_assets.evaluation import promotion, tuning
from musicrec_assets.evaluation.metrics import primary_metric
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.backends import LOCAL_FITTERS, Backend, base_params, spark_fitter
from musicrec_assets.model.factors import IMPLICIT_ONLY, Feedback, TrainingParams
from musicrec_assets.tracking import plots, registry, runs
from musicrec_assets.warehouse import model_tables
from musicrec_assets.warehouse.interactions import (
    load_ids,
    load_matrix,
    load_split,
    resolve_feedback,
    save_split,
    update_indexes,
)
from musicrec_assets.warehouse.tables import transaction

_COMMON = {
    "group_name": "training",
    "pool": "duckdb",
    "owners": ["team:musicrec"],
    "tags": {"layer": "model"},
}
GATE = "als_model_beats_baselines"
# the JSON and bookkeeping columns, and those that do not apply to the feedback kind
_BOOKKEEPING = ["cv_metrics", "params", "mlflow_run_id", "tuned_at"]
_NOT_IN_TOP_TRIALS = {"explicit": [*IMPLICIT_ONLY, *_BOOKKEEPING], "implicit": _BOOKKEEPING}


def _quantiles(counts: np.ndarray) -> dict[str, float]:
    points = np.quantile(counts, [0.0, 0.25, 0.5, 0.75, 0.9, 1.0]) if len(counts) else [0] * 6
    return dict(zip(["min", "p25", "median", "p75", "p90", "max"], map(float, points), strict=True))


@dg.asset(
    **_COMMON,
    deps=[ratings],
    kinds={"duckdb", "scipy"},
    description="The users × artists matrix (ratings or play counts) and the stable id ↔ "
    "index maps `user_index` and `artist_index` it is built with.",
)
def rating_matrix(duckdb: DuckDBResource, settings: ModelSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        feedback = resolve_feedback(con, settings.feedback)
        with transaction(con):
            update_indexes(con, feedback)
        matrix = load_matrix(con, feedback)
    values = matrix.values
    n_users, n_items = values.shape
    histogram = (
        pd.Series(values.data).round(1).value_counts().sort_index().rename_axis("value")
        if feedback == "explicit"
        else pd.Series(np.log10(values.data).round())
        .value_counts()
        .sort_index()
        .rename_axis("log10(plays)")
    )
    return dg.MaterializeResult(
        metadata={
            "feedback": feedback,
            "users": n_users,
            "artists": n_items,
            "interactions": int(values.nnz),
            "density": float(values.nnz / max(n_users * n_items, 1)),
            "dagster/row_count": int(values.nnz),
            "histogram": frame_table(histogram.rename("count").reset_index()),
            "interactions_per_user": dg.MetadataValue.json(_quantiles(np.diff(values.indptr))),
            "interactions_per_artist": dg.MetadataValue.json(
                _quantiles(np.bincount(values.indices, minlength=n_items))
            ),
        }
    )


@dg.asset(
    **_COMMON,
    deps=[rating_matrix],
    kinds={"duckdb"},
    description="A fixed-seed split holding out a share of each user's interactions (users "
    "with fewer than 5 keep all in train), stored as `evaluation_split(user_id, artist_id, "
    "part)` so every model and baseline is scored on the same rows.",
)
def evaluation_split(duckdb: DuckDBResource, settings: ModelSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        feedback = resolve_feedback(con, settings.feedback)
        matrix = load_matrix(con, feedback)
        split = train_test_split(matrix.values, settings.test_share, seed=settings.seed)
        rows = save_split(con, split.train, split.test)
        table = table_metadata(con, "evaluation_split", rows)
    return dg.MaterializeResult(
        metadata={
            **table,
            "train_rows": int(split.train.nnz),
            "test_rows": int(split.test.nnz),
            "dropped_test_rows_unseen_in_train": int(split.dropped),
            "users_with_test_rows": int((np.diff(split.test.indptr) > 0).sum()),
        }
    )


@contextmanager
def _fitter(settings: ModelSettings, feedback: Feedback, spark: SparkResource, home: MusicrecHome):
    """The configured backend's fitter, with its Spark session open while it is in use."""
    if settings.backend == Backend.local:
        yield LOCAL_FITTERS[feedback]
        return
    with spark.session() as session:
        yield spark_fitter(session, home.layout.spark)


def _describe(params: TrainingParams) -> str:
    text = f"rank={params.rank} λ={params.regularization:g}"
    if params.feedback == "implicit":
        text += f" α={params.alpha:g} {params.confidence}"
    return text


def _mlflow_links(experiment_id: str, run_id: str) -> dict:
    return {
        "mlflow_run_id": run_id,
        "mlflow_experiment": registry.EXPERIMENT,
        "mlflow_run": dg.MetadataValue.url(registry.run_url(experiment_id, run_id)),
    }


@dg.asset(
    **_COMMON,
    deps=[evaluation_split],
    kinds={"mlflow", "duckdb"},
    description="k-fold cross-validation of ALS on the training part over a grid of rank, "
    "regularization (and α and confidence scaling for play counts). Every trial is a nested "
    "MLflow run; all trials go to the `tuning_trials` table, the best mean CV score is chosen.",
)
def als_tuning(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    spark: SparkResource,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        feedback = resolve_feedback(con, settings.feedback)
        train, _ = load_split(con, feedback)
    metric, higher_is_better = primary_metric(feedback)
    base = base_params(feedback, settings.backend, settings.iterations, settings.seed)
    candidates = tuning.candidates(feedback, settings.grid_overrides())

    started = time.perf_counter()
    experiment_id = mlflow_tracking.experiment_id
    with (
        runs.tuning_run(
            experiment_id, feedback, settings.backend, settings.n_folds, len(candidates)
        ) as parent,
        _fitter(settings, feedback, spark, home) as fit,
    ):
        log_trial = runs.TrialLog()  # after Spark started: a trial's run spans only the trial

        def on_trial(index, n_trials, params, fold_metrics, mean_metrics):
            context.log.info(
                f"trial {index + 1}/{n_trials}, {_describe(params)}: {metric} "
                f"{mean_metrics[metric]:.4f}"
            )
            log_trial(index, params, fold_metrics, mean_metrics)

        result = tuning.cross_validate(
            train,
            base,
            candidates,
            n_folds=settings.n_folds,
            seed=settings.seed,
            on_trial=on_trial,
            fit=fit,
            max_ranked_users=settings.ranked_users,
        )
        run_id = parent.info.run_id
        trials = tuning.trials_frame(
            result, feedback, run_id, datetime.now(UTC).replace(tzinfo=None)
        )
        heatmap = runs.log_tuning_result(result, trials)
    with duckdb.get_connection() as con:
        rows = model_tables.publish_trials(con, trials)
        table = table_metadata(con, "tuning_trials", rows)

    best = result.best
    context.log.info(f"chosen: {_describe(best.params)} ({metric} {best.mean_metrics[metric]:.4f})")
    top = trials.sort_values("cv_score", ascending=not higher_is_better).head(10)
    return dg.MaterializeResult(
        metadata={
            **_mlflow_links(experiment_id, run_id),
            "trials": rows,
            "seconds": time.perf_counter() - started,
            f"best_cv_{metric}": float(best.mean_metrics[metric]),
            "chosen_params": dg.MetadataValue.json(dataclasses.asdict(best.params)),
            "top_trials": frame_table(top.drop(columns=_NOT_IN_TOP_TRIALS[feedback])),
            **table,
            "cv_heatmap": dg.MetadataValue.md(plots.markdown_image(heatmap, "CV heatmap")),
        }
    )


def _gate(report: promotion.CandidateReport) -> dg.AssetCheckResult:
    baselines = {
        f"baseline_{name}": values[report.metric]
        for name, values in report.scores.items()
        if name != "als" and report.metric in values
    }
    return dg.AssetCheckResult(
        check_name=GATE,
        passed=report.beats_baselines,
        metadata={"metric": report.metric, "als": report.scores["als"][report.metric]} | baselines,
    )


def _applicable(params: TrainingParams) -> dict:
    """The params that mean something for the model's feedback kind."""
    values = dataclasses.asdict(params)
    if params.feedback == "explicit":
        for name in IMPLICIT_ONLY:
            values.pop(name)
    return values


def _model_metadata(report: promotion.CandidateReport, run: runs.TrainingRun) -> dict:
    scores = report.scores
    comparison = pd.DataFrame(scores).T.rename_axis("model")
    return {
        "model_version": run.logged.version,
        "model_uri": run.logged.model_uri,
        "alias": run.alias,
        "promotion": report.reason,
        "feedback": report.evaluation_model.params.feedback,
        "params": dg.MetadataValue.json(_applicable(report.evaluation_model.params)),
        "fit_seconds": report.fit_seconds,
        **{f"test_{k}": float(v) for k, v in scores["als"].items()},
        **{
            f"baseline_{name}_test_{k}": float(v)
            for name, values in scores.items()
            if name != "als"
            for k, v in values.items()
        },
        "metrics_by_model": frame_table(comparison.reset_index()),
        **{
            name.removesuffix(".png"): dg.MetadataValue.md(plots.markdown_image(png, name))
            for name, png in run.figures.items()
        },
    }


@dg.asset(
    **_COMMON,
    deps=[als_tuning, evaluation_split],
    kinds={"mlflow", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset="als_model",
            blocking=True,
            description="The newest model beats every baseline on the held-out part (RMSE for "
            "ratings, NDCG@10 for play counts); the recommendation tables are not rebuilt "
            "otherwise.",
        )
    ],
    description="ALS with the chosen params: fitted on the training part and scored on the "
    "held-out part beside the baselines, then refitted on all data, logged to MLflow and "
    "registered as `musicrec-als`. Alias `champion` moves only when it beats the current "
    "champion on the current split (the champion's settings refit on it, when new data drew "
    "a new split); otherwise the version becomes `challenger`.",
)
def als_model(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    spark: SparkResource,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        params = model_tables.chosen_params(con)
        train, test = load_split(con, params.feedback)
        ids = load_ids(con)
        artist_names = model_tables.artist_names(con)
    with _fitter(settings, params.feedback, spark, home) as fit:
        report = promotion.evaluate_candidate(
            fit,
            params,
            train,
            test,
            ids,
            registry.champion(MlflowClient()),
            max_ranked_users=settings.ranked_users,
            seed=settings.seed,
        )
        sizes = {
            "train_rows": train.nnz,
            "test_rows": test.nnz,
            "ranked_users": report.ranked_users,
        }
        # one copy of the interactions at a time: the split goes before all data comes
        del train, test
        with duckdb.get_connection() as con:
            interactions = load_matrix(con, params.feedback).values
        serving_model = fit(interactions, params).with_ids(*ids)

    run = runs.log_training(
        mlflow_tracking.experiment_id,
        report,
        serving_model,
        interactions,
        artist_names,
        backend=settings.backend,
        sizes=sizes,
        warehouse=home.layout.warehouse,
    )
    version = run.logged.version
    context.log.info(
        f"registered {registry.REGISTERED_MODEL} v{version} as {run.alias}: {report.reason}"
    )
    with duckdb.get_connection() as con:
        model_tables.record_model_metrics(
            con,
            version,
            run.run_id,
            datetime.now(UTC).replace(tzinfo=None),
            params.feedback,
            report.scores,
        )
    return dg.MaterializeResult(
        metadata={
            **_mlflow_links(mlflow_tracking.experiment_id, run.run_id),
            **_model_metadata(report, run),
        },
        check_results=[_gate(report)],
    )
