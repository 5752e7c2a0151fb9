"""Training assets: rating matrix → evaluation split → ALS tuning → ALS model (MLflow)."""

import dataclasses
import json
import time
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
from dagster_duckdb import DuckDBResource
from mlflow.tracking import MlflowClient

from musicrec_assets.defs.ingest.assets import ratings
from musicrec_assets.defs.resources import (
    MlflowTracking,
    ModelSettings,
    MusicrecHome,
    SparkResource,
)
from musicrec_assets.evaluation import promotion, tuning
from musicrec_assets.evaluation.metrics import evaluate, primary_metric, ranked_users
from musicrec_assets.evaluation.split import fingerprint, train_test_split
from musicrec_assets.model import baselines
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import FactorModel, Feedback, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.model.spark_als import fit_spark_als
from musicrec_assets.tracking import plots
from musicrec_assets.tracking import registry as tracking
from musicrec_assets.warehouse.interactions import (
    load_ids,
    load_matrix,
    load_split,
    resolve_feedback,
    save_split,
    update_indexes,
)
from musicrec_assets.warehouse.tables import publish_table, table_exists, transaction

FITTERS = {"explicit": fit_explicit_als, "implicit": fit_implicit_als}
MODEL_METRICS_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_metrics (
    model_version VARCHAR NOT NULL,
    mlflow_run_id VARCHAR NOT NULL,
    trained_at    TIMESTAMP NOT NULL,
    feedback      VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    value         DOUBLE NOT NULL
)"""
_COMMON = {
    "group_name": "training",
    "pool": "duckdb",
    "owners": ["team:musicrec"],
    "tags": {"layer": "model"},
}


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
            "histogram": dg.MetadataValue.md(histogram.rename("count").to_frame().to_markdown()),
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
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "train_rows": int(split.train.nnz),
            "test_rows": int(split.test.nnz),
            "dropped_test_rows_unseen_in_train": int(split.dropped),
            "users_with_test_rows": int((np.diff(split.test.indptr) > 0).sum()),
        }
    )


def _candidates(settings: ModelSettings, feedback: Feedback) -> list[dict]:
    defaults = (
        tuning.DEFAULT_EXPLICIT_GRID if feedback == "explicit" else tuning.DEFAULT_IMPLICIT_GRID
    )
    overrides = {"rank": settings.ranks, "regularization": settings.regularizations}
    if feedback == "implicit":
        overrides |= {"alpha": settings.alphas, "confidence": settings.confidences}
    return tuning.grid({name: overrides.get(name) or values for name, values in defaults.items()})


@contextmanager
def _fitter(settings: ModelSettings, feedback: Feedback, spark: SparkResource, home: MusicrecHome):
    """The configured backend's ``fit(matrix, params, user_ids, item_ids, callback=None)``."""
    if settings.backend == "local":
        yield FITTERS[feedback]
        return
    if settings.backend != "spark":
        raise ValueError(f"backend must be local or spark, not {settings.backend!r}")
    with spark.session() as session:

        def fit(matrix, params, user_ids, item_ids, callback=None):
            del callback  # Spark's ALS reports no per-iteration loss
            return fit_spark_als(session, matrix, params, user_ids, item_ids, home.root / "spark")

        yield fit


def _describe(params: TrainingParams) -> str:
    text = f"rank={params.rank} λ={params.regularization:g}"
    if params.feedback == "implicit":
        text += f" α={params.alpha:g} {params.confidence}"
    return text


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
    candidates = _candidates(settings, feedback)
    base = TrainingParams(
        feedback=feedback,
        rank=10,
        regularization=0.1,
        iterations=settings.iterations,
        # Spark's explicit ALS has no biases: tune what it can fit
        use_biases=settings.backend == "local",
        seed=settings.seed,
    )

    def on_trial(index, n_trials, params, fold_metrics, mean_metrics):
        context.log.info(
            f"trial {index + 1}/{n_trials}, {_describe(params)}: {metric} "
            f"{mean_metrics[metric]:.4f}"
        )
        with mlflow.start_run(run_name=f"trial {index + 1}", nested=True):
            mlflow.log_params(dataclasses.asdict(params))
            for fold, metrics in enumerate(fold_metrics):
                mlflow.log_metrics({f"cv_fold_{k}": v for k, v in metrics.items()}, step=fold)
            mlflow.log_metrics({f"cv_{k}": v for k, v in mean_metrics.items()})

    started = time.perf_counter()
    with (
        mlflow.start_run(
            experiment_id=mlflow_tracking.experiment_id, run_name="als_tuning"
        ) as parent,
        _fitter(settings, feedback, spark, home) as fit,
    ):
        mlflow.set_tags(
            {"musicrec.step": "tuning", "feedback": feedback, "backend": settings.backend}
        )
        mlflow.log_params({"n_folds": settings.n_folds, "n_trials": len(candidates)})
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
        best = result.best
        mlflow.log_params({f"best_{k}": v for k, v in dataclasses.asdict(best.params).items()})
        mlflow.log_metric(f"best_cv_{metric}", best.mean_metrics[metric])
        trials = pd.DataFrame(
            [
                {
                    "trial": t.index + 1,
                    **{k: getattr(t.params, k) for k in ("rank", "regularization", "alpha")},
                    "confidence": t.params.confidence if feedback == "implicit" else None,
                    "iterations": t.params.iterations,
                    "feedback": feedback,
                    "metric": metric,
                    "cv_score": t.mean_metrics[metric],
                    "cv_metrics": json.dumps(t.mean_metrics),
                    "params": json.dumps(dataclasses.asdict(t.params)),
                    "chosen": t.index == best.index,
                    "mlflow_run_id": parent.info.run_id,
                    "tuned_at": datetime.now(UTC).replace(tzinfo=None),
                }
                for t in result.trials
            ]
        )
        heatmap = plots.cv_heatmap(trials.rename(columns={"cv_score": metric}), metric)
        tracking.log_png(heatmap, "cv_heatmap.png")
    with duckdb.get_connection() as con:
        publish_table(con, "tuning_trials", [trials])

    context.log.info(f"chosen: {_describe(best.params)} ({metric} {best.mean_metrics[metric]:.4f})")
    top = trials.sort_values("cv_score", ascending=not higher_is_better).head(10)
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": parent.info.run_id,
            "mlflow_experiment": tracking.EXPERIMENT,
            "mlflow_run": dg.MetadataValue.url(
                tracking.run_url(mlflow_tracking.experiment_id, parent.info.run_id)
            ),
            "trials": len(trials),
            "seconds": time.perf_counter() - started,
            f"best_cv_{metric}": float(best.mean_metrics[metric]),
            "chosen_params": dg.MetadataValue.json(dataclasses.asdict(best.params)),
            "top_trials": dg.MetadataValue.md(
                top.drop(columns=["cv_metrics", "params", "mlflow_run_id", "tuned_at"]).to_markdown(
                    index=False
                )
            ),
            "cv_heatmap": dg.MetadataValue.md(plots.markdown_image(heatmap, "CV heatmap")),
        }
    )


def chosen_params(con) -> TrainingParams:
    """The params of the last tuning's best trial (retraining reuses them)."""
    if not table_exists(con, "tuning_trials"):
        raise RuntimeError("no tuning yet: materialize als_tuning first")
    rows = con.execute("SELECT params FROM tuning_trials WHERE chosen").fetchall()
    return TrainingParams(**json.loads(rows[0][0]))


def _baselines(feedback: Feedback, train, ids) -> dict[str, FactorModel]:
    models = {"most_popular": baselines.fit_most_popular(train, *ids)}
    if feedback == "explicit":
        models = {
            "global_mean": baselines.fit_global_mean(train, *ids),
            "bias": baselines.fit_bias_model(train, *ids),
            **models,
        }
    return models


@dg.asset(
    **_COMMON,
    deps=[als_tuning, evaluation_split],
    kinds={"mlflow", "duckdb"},
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
        params = chosen_params(con)
        feedback = params.feedback
        train, test = load_split(con, feedback)
        ids = load_ids(con)
        artist_names = con.execute(
            "SELECT a.artist_id, n.name FROM artist_index a "
            "LEFT JOIN artists n ON n.id = a.artist_id"
        ).df()
    metric, higher_is_better = primary_metric(feedback)
    client = MlflowClient()
    history: list[dict[str, float]] = []
    with _fitter(settings, feedback, spark, home) as fit:
        started = time.perf_counter()
        evaluation_model = fit(train, params, *ids, callback=lambda _, step: history.append(step))
        fit_seconds = time.perf_counter() - started
        ranked = ranked_users(test, settings.ranked_users, settings.seed)
        scores = {"als": evaluate(evaluation_model, train, test, feedback, ranked=ranked)}
        for name, baseline in _baselines(feedback, train, ids).items():
            baseline_scores = evaluate(baseline, train, test, feedback, ranked=ranked)
            if name == "most_popular":  # popularity ranks; its "ratings" mean nothing
                baseline_scores = {k: v for k, v in baseline_scores.items() if "_at_" in k}
            scores[name] = baseline_scores
        split_id = fingerprint(train, test, *ids)
        stand_in = promotion.comparable_champion(
            tracking.champion(client), split_id, evaluation_model, fit, train, ids
        )
        if stand_in.model is None:
            champion_score = None
        elif stand_in.model is evaluation_model:
            champion_score = scores["als"][metric]
        else:
            champion_score = evaluate(
                stand_in.model.reindexed(*ids), train, test, feedback, ranked=ranked
            )[metric]
        sizes = {
            "train_rows": train.nnz,
            "test_rows": test.nnz,
            "ranked_users": len(ranked),
        }
        # one copy of the interactions at a time: the split goes before all data comes
        del train, test
        with duckdb.get_connection() as con:
            matrix = load_matrix(con, feedback)
        serving_model = fit(matrix.values, params, *ids)

    with mlflow.start_run(experiment_id=mlflow_tracking.experiment_id, run_name="als_model") as run:
        mlflow.set_tags(
            {
                "musicrec.step": "training",
                "feedback": feedback,
                "backend": settings.backend,
                tracking.SPLIT_TAG: split_id,
            }
        )
        mlflow.log_params(dataclasses.asdict(params))
        mlflow.log_params({**sizes, "all_rows": matrix.values.nnz})
        for step, values in enumerate(history):
            mlflow.log_metrics(values, step=step)
        mlflow.log_metrics({f"test_{k}": v for k, v in scores["als"].items()})
        mlflow.log_metric("fit_seconds", fit_seconds)
        for name, values in scores.items():
            if name != "als":
                mlflow.log_metrics({f"baseline_{name}_test_{k}": v for k, v in values.items()})
        curve_metric = next(iter(history[0])) if history else None
        figures = {
            "model_vs_baselines.png": plots.model_vs_baselines(
                {name: values[metric] for name, values in scores.items() if metric in values},
                metric,
            )
        }
        if curve_metric:
            figures["training_curve.png"] = plots.training_curve(history, curve_metric)
        for file_name, png in figures.items():
            tracking.log_png(png, file_name)
        logged = tracking.log_model(serving_model, evaluation_model, matrix.values, artist_names)
        promoted, reason = promotion.should_promote(
            scores["als"][metric],
            champion_score,
            higher_is_better,
            tie_promotes=stand_in.refit,
            no_champion=stand_in.reason,
        )
        if stand_in.refit:
            reason += " (its settings refit on this split, which its model had partly seen)"
        alias = tracking.CHAMPION if promoted else tracking.CHALLENGER
        tracking.set_alias(client, alias, logged.version)
        mlflow.set_tags({"musicrec.alias": alias, "musicrec.promotion": reason})
    context.log.info(
        f"registered {tracking.REGISTERED_MODEL} v{logged.version} as {alias}: {reason}"
    )

    trained_at = datetime.now(UTC).replace(tzinfo=None)
    metric_rows = pd.DataFrame(
        [
            (logged.version, run.info.run_id, trained_at, feedback, name, key, value)
            for name, values in scores.items()
            for key, value in values.items()
        ],
        columns=[
            "model_version",
            "mlflow_run_id",
            "trained_at",
            "feedback",
            "model",
            "metric",
            "value",
        ],
    )
    with duckdb.get_connection() as con, transaction(con):
        con.execute(MODEL_METRICS_SCHEMA)
        con.register("new_metrics", metric_rows)
        con.execute("INSERT INTO model_metrics SELECT * FROM new_metrics")

    comparison = pd.DataFrame(scores).T.rename_axis("model")
    return dg.MaterializeResult(
        metadata={
            "mlflow_run_id": run.info.run_id,
            "mlflow_experiment": tracking.EXPERIMENT,
            "mlflow_run": dg.MetadataValue.url(
                tracking.run_url(mlflow_tracking.experiment_id, run.info.run_id)
            ),
            "model_version": logged.version,
            "model_uri": logged.model_uri,
            "alias": alias,
            "promotion": reason,
            "feedback": feedback,
            "params": dg.MetadataValue.json(dataclasses.asdict(params)),
            "fit_seconds": fit_seconds,
            **{f"test_{k}": float(v) for k, v in scores["als"].items()},
            **{
                f"baseline_{name}_test_{k}": float(v)
                for name, values in scores.items()
                if name != "als"
                for k, v in values.items()
            },
            "model_vs_baselines": dg.MetadataValue.md(comparison.to_markdown(floatfmt=".4f")),
            **{
                name.removesuffix(".png"): dg.MetadataValue.md(plots.markdown_image(png, name))
                for name, png in figures.items()
            },
        }
    )
