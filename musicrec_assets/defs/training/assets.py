"""Training assets: rating matrix → evaluation split → tuning → the ranking and rating models
(MLflow), each on the backend the settings name (:func:`musicrec_assets.backends.open_backend`)."""

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource
from mlflow.tracking import MlflowClient
from scipy.sparse import load_npz

from musicrec_assets.backends import base
from musicrec_assets.defs.ingest.assets import ratings
from musicrec_assets.defs.metadata import frame_table, table_metadata
from musicrec_assets.defs.resources import (
    MlflowTracking,
    ModelSettings,
    MusicrecHome,
    SparkResource,
    backend_of,
)
from musicrec_assets.defs.training import metadata
from musicrec_assets.defs.training.metadata import GATE
from musicrec_assets.evaluation import blend, tuning
from musicrec_assets.evaluation.metrics import primary_metric
from musicrec_assets.tracking import registry, runs
from musicrec_assets.tracking.studies import study_storage
from musicrec_assets.warehouse import model_tables
from musicrec_assets.warehouse.artist_tags import cold_artist_factors
from musicrec_assets.warehouse.interactions import (
    load_ids,
    resolve_feedback,
    split_counts,
    summary,
    update_indexes,
    write_seen_npz,
)
from musicrec_assets.warehouse.tables import transaction

_COMMON = {
    "group_name": "training",
    "pool": "duckdb",
    "owners": ["team:musicrec"],
    "tags": {"layer": "model"},
}


@dg.asset(
    **_COMMON,
    deps=[ratings],
    kinds={"duckdb"},
    description="The users × artists matrix (ratings or play counts): the stable id ↔ index "
    "maps `user_index` and `artist_index` it is built with, and its shape, density and "
    "histogram (computed in SQL; each training step builds the matrix from the maps, as scipy "
    "locally, as Parquet for Spark).",
)
def rating_matrix(duckdb: DuckDBResource, settings: ModelSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        feedback = resolve_feedback(con, settings.feedback)
        with transaction(con):
            update_indexes(con, feedback)
        shape = summary(con, feedback)
    return dg.MaterializeResult(
        metadata={
            "feedback": feedback,
            "users": shape.users,
            "artists": shape.artists,
            "interactions": shape.interactions,
            "density": float(shape.interactions / max(shape.users * shape.artists, 1)),
            "dagster/row_count": shape.interactions,
            "histogram": frame_table(shape.histogram),
            "interactions_per_user": dg.MetadataValue.json(shape.per_user),
            "interactions_per_artist": dg.MetadataValue.json(shape.per_artist),
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
def evaluation_split(
    duckdb: DuckDBResource, settings: ModelSettings, spark: SparkResource, home: MusicrecHome
) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        feedback = resolve_feedback(con, settings.feedback)
    backend = backend_of(settings, spark, home)
    dropped = backend.hold_out(duckdb.get_connection, feedback, settings.test_share, settings.seed)
    with duckdb.get_connection() as con:
        parts = split_counts(con)
        table = table_metadata(con, "evaluation_split", parts["train"] + parts["test"])
    return dg.MaterializeResult(
        metadata={
            **table,
            "train_rows": parts["train"],
            "test_rows": parts["test"],
            "dropped_test_rows_unseen_in_train": int(dropped),
            "users_with_test_rows": parts["users_with_test_rows"],
        }
    )


@dg.asset(
    **_COMMON,
    deps=[evaluation_split],
    kinds={"mlflow", "duckdb"},
    description="k-fold cross-validation on the training part of the ranking model (NDCG@10 "
    "over rank, λ, α and the confidence scheme: binary, rating or centred for ratings, log1p, "
    "bm25 or raw for play counts), for ratings the rating model (RMSE over rank, λ and the "
    "biases' λ_b) and the blend of the lists with its predicted rating, and the item-kNN "
    "baseline's K and similarity. Every trial is a nested MLflow run; all go to the "
    "`tuning_trials` table (column `model`), the best mean CV score of each model is chosen. "
    "The metadata below: `search` (each model's choice), `settings_searched`, the plot "
    "`search_by_setting` and `top_trials`.",
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
    backend = backend_of(settings, spark, home)
    budget = tuning.Budget(settings.tuning_trials, settings.tuning_minutes * 60)
    started = time.perf_counter()
    experiment_id = mlflow_tracking.experiment_id
    storage = study_storage(home.layout.root)
    results: dict[str, tuning.SearchResult] = {}
    with (
        runs.tuning_run(experiment_id, feedback, backend.name, settings.n_folds, budget) as parent,
        backend.tuning(
            duckdb.get_connection, feedback, settings.n_folds, settings.seed, settings.ranked_users
        ) as tuner,
    ):
        log_trial = runs.TrialLog()  # after Spark started: a trial's run spans only the trial
        searches = base.searches(
            feedback,
            tuner,
            settings.iterations,
            settings.seed,
            settings.ranking_grid_overrides(feedback),
            settings.grid_overrides(),
            settings.neighbour_overrides(),
        )
        for model, (fixed, space) in searches.items():
            metric = primary_metric(fixed.objective)[0]

            def on_trial(number, trial, model=model, metric=metric):
                outcome = "pruned" if trial.pruned else f"{metric} {trial.mean_metrics[metric]:.4f}"
                context.log.info(
                    f"{model} trial {number}, {metadata.describe(trial.params)}: {outcome}"
                )
                log_trial(model, trial)

            results[model] = tuner.cross_validate(
                model,
                fixed,
                space,
                on_trial=on_trial,
                budget=budget,
                record=tuning.StudyRecord(
                    storage, metadata.study_key(model, feedback, backend.name)
                ),
            )
            context.log.info(metadata.search_summary(model, results[model]))
        if "rating" in results:
            blended = tuner.choose_blend(
                results["ranking"].best.params,
                results["rating"].best.params,
                tuple(settings.blend_weights) or blend.WEIGHTS,
            )
            if blended is not None:
                results["blend"] = blended
                for trial in blended.trials:
                    log_trial("blend", trial)
                context.log.info(metadata.blend_summary(blended))
        run_id = parent.info.run_id
        trials = tuning.trials_frame(
            results, feedback, run_id, datetime.now(UTC).replace(tzinfo=None)
        )
        figures = runs.log_tuning_result(results)
    with duckdb.get_connection() as con:
        rows = model_tables.publish_trials(con, trials)
        table = table_metadata(con, "tuning_trials", rows)

    best = {}
    for model, result in results.items():
        metric = result.primary_metric
        score = result.best.mean_metrics[metric]
        context.log.info(
            f"chosen {model}: {metadata.describe(result.best.params)} ({metric} {score:.4f})"
        )
        best[f"{model}_cv_{metric}"] = round(float(score), 4)
    return dg.MaterializeResult(
        metadata={
            "search": frame_table(metadata.search_table(results)),
            "settings_searched": frame_table(metadata.settings_table(results)),
            **metadata.figures(experiment_id, run_id, figures),
            "top_trials": frame_table(metadata.top_trials(trials, results)),
            **best,
            "trials": rows,
            "seconds": round(time.perf_counter() - started, 1),
            **metadata.mlflow_links(experiment_id, run_id),
            "chosen_params": dg.MetadataValue.json(
                {
                    model: metadata.applicable(result.best.params)
                    for model, result in results.items()
                }
            ),
            **table,
        }
    )


@dg.asset(
    **_COMMON,
    deps=[als_tuning, evaluation_split],
    kinds={"mlflow", "duckdb"},
    check_specs=[
        dg.AssetCheckSpec(
            GATE,
            asset="als_model",
            blocking=True,
            description="The newest ranking model beats most popular and item-kNN on NDCG@10 "
            "on the held-out part and, for ratings, its rating model beats the bias and "
            "global-mean baselines on RMSE; the recommendation tables are not rebuilt "
            "otherwise.",
        )
    ],
    description="The ranking model (and, for ratings, the rating model) with the chosen "
    "params: fitted on the training part and scored on the held-out part beside the baselines "
    "(most popular, item-kNN, and for ratings bias and global mean), then refitted on all "
    "data, logged to MLflow and registered together as one version of `musicrec-als`. Alias "
    "`champion` moves only when its ranking model beats the current champion's on NDCG@10 on "
    "the current split (the champion's settings refit on it, when new data drew a new split) "
    "and its rating model beats the rating baselines; otherwise the version becomes "
    "`challenger`.",
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
        chosen = model_tables.chosen_params(con)
        ids = load_ids(con)
        artist_names = model_tables.artist_names(con)
        sizes = split_counts(con)
    champion = registry.champion(MlflowClient())
    backend = backend_of(settings, spark, home)
    report, serving_model = backend.train(
        duckdb.get_connection, chosen, ids, champion, settings.ranked_users, settings.seed
    )
    with tempfile.TemporaryDirectory() as scratch:
        seen = Path(scratch, "seen.npz")
        with duckdb.get_connection() as con:
            n_interactions = write_seen_npz(con, chosen.feedback, seen)
            # artists known only by their tags, placed in this version's spaces (where the home
            # has tags): they travel with it, so every reader of the version places them alike
            placed = cold_artist_factors(
                con, serving_model, load_npz(seen).tocsr(), settings.seed, settings.min_tag_artists
            )
        if placed is not None:
            context.log.info(f"artists from tags: {placed[1].reason}")
        run = runs.log_training(
            mlflow_tracking.experiment_id,
            report,
            serving_model,
            seen,
            n_interactions,
            artist_names,
            backend=backend.name,
            sizes={
                "train_rows": sizes["train"],
                "test_rows": sizes["test"],
                "ranked_users": report.ranked_users,
            },
            warehouse=home.layout.warehouse,
            tag_factors=placed,
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
            chosen.feedback,
            report.scores,
        )
    # only now: a run killed before leaves the previous champion, whose metrics are all in
    runs.give_alias(run)
    return dg.MaterializeResult(
        metadata={
            **metadata.mlflow_links(mlflow_tracking.experiment_id, run.run_id),
            **metadata.model_metadata(report, run, mlflow_tracking.experiment_id),
        },
        check_results=[metadata.gate(report)],
    )
