"""Training assets: rating matrix → evaluation split → tuning → the ranking and rating models
(MLflow)."""

import dataclasses
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
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
from musicrec_assets.evaluation import blend, promotion, tuning
from musicrec_assets.evaluation.metrics import HEADLINE_METRICS, primary_metric
from musicrec_assets.evaluation.spark_promotion import evaluate_spark_candidate
from musicrec_assets.evaluation.spark_split import hold_out
from musicrec_assets.evaluation.spark_tuning import cross_validate_spark
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.backends import Backend, base_params, fit_local, ranking_base_params
from musicrec_assets.model.baselines import NeighbourParams, fit_item_knn, item_knn_fits
from musicrec_assets.model.factors import IMPLICIT_ONLY, Feedback, ModelPair, TrainingParams
from musicrec_assets.model.spark_als import fit_spark_frame
from musicrec_assets.model.spark_baselines import fit_bias_frame
from musicrec_assets.tracking import plots, registry, runs
from musicrec_assets.tracking.studies import study_storage
from musicrec_assets.warehouse import model_tables
from musicrec_assets.warehouse.exchange import export_interactions, publish_split, write_seen_npz
from musicrec_assets.warehouse.interactions import (
    load_ids,
    load_matrix,
    load_split,
    resolve_feedback,
    save_split,
    split_counts,
    summary,
    update_indexes,
)
from musicrec_assets.warehouse.tables import scalar, transaction

_COMMON = {
    "group_name": "training",
    "pool": "duckdb",
    "owners": ["team:musicrec"],
    "tags": {"layer": "model"},
}
GATE = "als_model_beats_baselines"
# the JSON and bookkeeping columns of tuning_trials, left out of its preview
_BOOKKEEPING = ["cv_metrics", "params", "mlflow_run_id", "tuned_at"]


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
        if settings.backend == Backend.spark:
            with spark.workspace(home.layout.spark) as (session, workdir):
                exported = export_interactions(con, feedback, workdir / "interactions")
                interactions = session.read.parquet(exported.as_uri())
                split = hold_out(interactions, settings.test_share, seed=settings.seed)
                written = workdir / "split"
                split.frame.select("user_idx", "item_idx", "part").write.parquet(written.as_uri())
                rows = publish_split(con, written)
                # what the split left out is the cold held-out rows: counted from Parquet's
                # footers, not by a second pass of Spark over the hashes and windows
                dropped = interactions.count() - rows
        else:
            matrix = load_matrix(con, feedback)
            split = train_test_split(matrix.values, settings.test_share, seed=settings.seed)
            dropped = split.dropped
            rows = save_split(con, split.train, split.test)
            del matrix, split
        table = table_metadata(con, "evaluation_split", rows)
        parts = split_counts(con)
    return dg.MaterializeResult(
        metadata={
            **table,
            "train_rows": parts["train"],
            "test_rows": parts["test"],
            "dropped_test_rows_unseen_in_train": int(dropped),
            "users_with_test_rows": parts["users_with_test_rows"],
        }
    )


@dataclasses.dataclass(frozen=True)
class _SparkData:
    """What a Spark step works on: its session, its folder, the interactions it reads (by
    part of the evaluation split, None for all) and the matrix's shape."""

    session: Any
    workdir: Path
    parts: dict[str | None, Any]
    shape: tuple[int, int]


@contextmanager
def _backend(
    settings: ModelSettings,
    spark: SparkResource,
    home: MusicrecHome,
    duckdb: DuckDBResource,
    feedback: str,
    parts: list[str | None],
):
    """For ``backend: spark``, a :class:`_SparkData` with ``parts`` exported as Parquet for
    Spark to read (the warehouse connection is closed again before Spark works); None for the
    local backend."""
    if settings.backend != Backend.spark:
        yield None
        return
    with spark.workspace(home.layout.spark) as (session, workdir):
        with duckdb.get_connection() as con:
            folders = {
                part: export_interactions(con, feedback, workdir / (part or "all"), part)
                for part in parts
            }
            shape = (
                scalar(con, "SELECT count(*) FROM user_index"),
                scalar(con, "SELECT count(*) FROM artist_index"),
            )
        frames = {part: session.read.parquet(folder.as_uri()) for part, folder in folders.items()}
        yield _SparkData(session, workdir, frames, shape)


def _describe(params: TrainingParams | NeighbourParams | blend.BlendParams) -> str:
    if isinstance(params, NeighbourParams):
        return f"K={params.neighbours} {params.similarity}"
    if isinstance(params, blend.BlendParams):
        return f"w={params.blend_weight:g}"
    text = f"rank={params.rank} λ={params.regularization:g}"
    if params.feedback == "implicit":
        text += f" α={params.alpha:g} {params.confidence}"
    elif params.bias_regularization is not None:
        text += f" λ_b={params.bias_regularization:g}"
    return text


def _mlflow_links(experiment_id: str, run_id: str) -> dict:
    return {
        "mlflow_run_id": run_id,
        "mlflow_experiment": registry.EXPERIMENT,
        "mlflow_run": dg.MetadataValue.url(registry.run_url(experiment_id, run_id)),
    }


def _searches(
    feedback: Feedback, settings: ModelSettings, item_knn: bool, users_per_interaction: float
) -> dict[str, tuple[TrainingParams | NeighbourParams, tuning.SearchSpace]]:
    """What tuning searches, by model: (fixed settings, search space). On Spark the ranking
    model's λ range (implicit's plain λ) becomes Spark's row-scaled λ of the same strength;
    values the settings fix are taken as they are."""
    overrides = settings.ranking_grid_overrides(feedback)
    ranking = tuning.ranking_space(feedback, overrides)
    if settings.backend == Backend.spark and not overrides["regularization"]:
        ranking = ranking.scaled("regularization", users_per_interaction)
    searches = {
        "ranking": (
            ranking_base_params(feedback, settings.iterations, settings.seed, settings.backend),
            ranking,
        )
    }
    if feedback == "explicit":
        searches["rating"] = (
            base_params(feedback, settings.iterations, settings.seed),
            tuning.rating_space(settings.grid_overrides()),
        )
    if item_knn:
        searches["item_knn"] = (
            NeighbourParams(),
            tuning.neighbour_space(settings.neighbour_overrides()),
        )
    return searches


@dg.asset(
    **_COMMON,
    deps=[evaluation_split],
    kinds={"mlflow", "duckdb"},
    description="k-fold cross-validation on the training part of the ranking model (NDCG@10 "
    "over rank, λ, α and the confidence scheme: binary, rating or centred for ratings, log1p "
    "or bm25 for play counts), for ratings the rating model (RMSE over rank and λ), and the "
    "item-kNN baseline's K and similarity. Every trial is a nested MLflow run; all go to the "
    "`tuning_trials` table (column `model`), the best mean CV score of each model is chosen.",
)
def als_tuning(
    context: dg.AssetExecutionContext,
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    spark: SparkResource,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    on_spark = settings.backend == Backend.spark
    with duckdb.get_connection() as con:
        feedback = resolve_feedback(con, settings.feedback)
        # Spark reads the training part from Parquet; the local backend holds it as a matrix
        train = None if on_spark else load_split(con, feedback)[0]
        # item-kNN's scores are dense users × items: a local baseline only
        parts = split_counts(con)
        users_per_interaction = parts["users_with_train_rows"] / max(parts["train"], 1)
    searches = _searches(
        feedback,
        settings,
        item_knn=not on_spark and item_knn_fits(train),
        users_per_interaction=users_per_interaction,
    )
    budget = tuning.Budget(settings.tuning_trials, settings.tuning_minutes * 60)

    started = time.perf_counter()
    experiment_id = mlflow_tracking.experiment_id
    storage = study_storage(home.layout.root)
    results: dict[str, tuning.SearchResult] = {}
    with (
        runs.tuning_run(
            experiment_id, feedback, settings.backend, settings.n_folds, budget
        ) as parent,
        _backend(settings, spark, home, duckdb, feedback, parts=["train"]) as backend,
    ):
        log_trial = runs.TrialLog()  # after Spark started: a trial's run spans only the trial
        for model, (base, space) in searches.items():
            metric = primary_metric(base.feedback)[0]

            def on_trial(number, trial, model=model, metric=metric):
                outcome = "pruned" if trial.pruned else f"{metric} {trial.mean_metrics[metric]:.4f}"
                context.log.info(f"{model} trial {number}, {_describe(trial.params)}: {outcome}")
                log_trial(model, trial)

            search = {
                "n_folds": settings.n_folds,
                "seed": settings.seed,
                "on_trial": on_trial,
                "max_ranked_users": settings.ranked_users,
                "data_feedback": feedback,
                "budget": budget,
                "record": tuning.StudyRecord(storage, _study_key(model, feedback, settings)),
            }
            if on_spark:
                results[model] = cross_validate_spark(
                    backend.session,
                    backend.parts["train"],
                    backend.shape,
                    base,
                    space,
                    backend.workdir / model,
                    **search,
                )
            else:
                results[model] = tuning.cross_validate(
                    train,
                    base,
                    space,
                    fit=fit_item_knn if model == "item_knn" else fit_local,
                    **search,
                )
            context.log.info(_search_summary(model, results[model]))
        if "rating" in results and not on_spark:
            results["blend"] = blend.choose_blend_weight(
                tuning.cv_folds(train, settings.n_folds, settings.seed, settings.ranked_users),
                results["ranking"].best.params,
                results["rating"].best.params,
                fit_local,
                weights=tuple(settings.blend_weights) or blend.WEIGHTS,
            )
            for trial in results["blend"].trials:
                log_trial("blend", trial)
            tried = ", ".join(f"{t.params.blend_weight:g}" for t in results["blend"].trials)
            context.log.info(
                f"blend of the lists: weight {results['blend'].best.params.blend_weight:g} of "
                f"the predicted rating, of {tried}"
            )
        run_id = parent.info.run_id
        trials = tuning.trials_frame(
            results, feedback, run_id, datetime.now(UTC).replace(tzinfo=None)
        )
        figure = runs.log_tuning_result(results, trials)
    with duckdb.get_connection() as con:
        rows = model_tables.publish_trials(con, trials)
        table = table_metadata(con, "tuning_trials", rows)

    best = {}
    for model, result in results.items():
        metric = result.primary_metric
        score = result.best.mean_metrics[metric]
        context.log.info(f"chosen {model}: {_describe(result.best.params)} ({metric} {score:.4f})")
        best[f"{model}_cv_{metric}"] = round(float(score), 4)
    return dg.MaterializeResult(
        metadata={
            **_mlflow_links(experiment_id, run_id),
            "trials": rows,
            "seconds": round(time.perf_counter() - started, 1),
            **best,
            "search": frame_table(_search_table(results)),
            "chosen_params": dg.MetadataValue.json(
                {model: _applicable(result.best.params) for model, result in results.items()}
            ),
            "top_trials": frame_table(_top_trials(trials, results)),
            **table,
            "cv_by_setting": dg.MetadataValue.md(
                plots.markdown_image(figure, "CV score by setting")
            ),
        }
    )


def _study_key(model: str, feedback: Feedback, settings: ModelSettings) -> str:
    """Which earlier studies a search warm-starts from: the same model on the same kind of
    data and backend (their λ differ in scale)."""
    return f"{model}/{'ratings' if feedback == 'explicit' else 'plays'}/{settings.backend}"


def _search_summary(model: str, result: tuning.SearchResult) -> str:
    text = (
        f"{model} search: {len(result.trials)} trials ({result.n_pruned} pruned) in "
        f"{result.seconds:.0f} s, ended by {result.stopped_by}"
    )
    if result.widened:
        text += "; widened " + ", ".join(result.widened)
    if result.on_edge:
        text += "; still on an edge: " + ", ".join(result.on_edge)
    return text


def _search_table(results: dict[str, tuning.SearchResult]) -> pd.DataFrame:
    """One row per model: what its search did and chose, at a glance."""
    return pd.DataFrame(
        [
            {
                "model": model,
                f"cv_{result.primary_metric}": round(
                    float(result.best.mean_metrics[result.primary_metric]), 4
                ),
                "chosen": _describe(result.best.params),
                "trials": len(result.trials),
                "pruned": result.n_pruned,
                "seconds": round(result.seconds, 1),
                "ended_by": result.stopped_by,
                "widened": "; ".join(result.widened) or "-",
                "on_edge": "; ".join(result.on_edge) or "-",
            }
            for model, result in results.items()
        ]
    )


def _top_trials(trials: pd.DataFrame, results: dict[str, tuning.SearchResult]) -> pd.DataFrame:
    """The best 5 trials of each model, the columns that mean something for some of them."""
    best = [
        trials[trials["model"] == model]
        .sort_values("cv_score", ascending=not result.higher_is_better)
        .head(5)
        for model, result in results.items()
    ]
    return pd.concat(best).drop(columns=_BOOKKEEPING).dropna(axis="columns", how="all")


def _gate(report: promotion.CandidateReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=GATE,
        passed=report.beats_baselines,
        metadata={
            **{name: round(float(value), 4) for name, value in report.gate().items()},
            "ratings_predicted_by": _rating_source(report),
        },
    )


def _rating_source(report: promotion.CandidateReport) -> str:
    if "rating" not in report.scores:
        return "nothing (play counts)"
    return "the bias model (fallback)" if report.rating_falls_back else "the rating model"


def _serving_roles(report: promotion.CandidateReport) -> dict[str, TrainingParams]:
    """The settings each served model is refitted on all data with: the ranking model's and,
    for ratings, the rating model's or (falling back) the bias model's."""
    roles = {"ranking": report.evaluation_model.ranking.params}
    if report.serving_rating_params is not None:
        roles["rating"] = report.serving_rating_params
    return roles


def _fit_all_on_spark(data: _SparkData, role: str, params: TrainingParams):
    if params.rank == 0:  # the bias model a losing rating model falls back to
        return fit_bias_frame(data.parts[None], data.workdir / role, *data.shape, params)
    return fit_spark_frame(data.session, data.parts[None], params, data.workdir / role, *data.shape)


def _applicable(params: TrainingParams | NeighbourParams) -> dict:
    """The params that mean something for the model's objective."""
    values = dataclasses.asdict(params)
    if params.feedback == "explicit":
        for name in IMPLICIT_ONLY:
            values.pop(name)
    return values


def _headline(report: promotion.CandidateReport) -> dict:
    """The few numbers a person reads first: our models' and their best baselines' scores."""
    scores = report.scores
    numbers = {}
    for role, metric, baselines, higher in (
        ("ranking", promotion.RANKING_METRIC, promotion.RANKING_BASELINES, True),
        ("rating", promotion.RATING_METRIC, promotion.RATING_BASELINES, False),
    ):
        if role not in scores:
            continue
        present = [name for name in baselines if name in scores]
        best = (max if higher else min)(present, key=lambda name: scores[name][metric])
        numbers |= {
            metric: scores[role][metric],
            f"{metric}_best_baseline": scores[best][metric],
            f"{metric}_best_baseline_model": best,
        }
    coverage = f"coverage_at_{promotion.RANKING_METRIC.rpartition('_')[2]}"
    numbers[coverage] = scores["ranking"][coverage]
    return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in numbers.items()}


def _model_metadata(report: promotion.CandidateReport, run: runs.TrainingRun) -> dict:
    pair = report.evaluation_model
    comparison = pd.DataFrame(report.scores).T.rename_axis("model")
    shown = [metric for metric in HEADLINE_METRICS if metric in comparison.columns]
    return {
        "model_version": run.logged.version,
        "model_uri": run.logged.model_uri,
        "alias": run.alias,
        "promotion": report.reason,
        "ratings_predicted_by": _rating_source(report),
        "feedback": pair.feedback,
        **_headline(report),
        "fit_seconds": round(sum(report.fit_seconds.values()), 1),
        "params": dg.MetadataValue.json(
            {role: _applicable(model.params) for role, model in pair.models().items()}
        ),
        "metrics_by_model": frame_table(comparison[shown].reset_index()),
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
        feedback = chosen.feedback
        ids = load_ids(con)
        artist_names = model_tables.artist_names(con)
        sizes = split_counts(con)
    champion = registry.champion(MlflowClient())
    with tempfile.TemporaryDirectory() as scratch:
        seen = Path(scratch, "seen.npz")
        if settings.backend == Backend.spark:
            with _backend(
                settings, spark, home, duckdb, feedback, parts=["train", "test", None]
            ) as data:
                report = evaluate_spark_candidate(
                    data.session,
                    chosen,
                    data.parts["train"],
                    data.parts["test"],
                    ids,
                    champion,
                    data.workdir / "evaluation",
                    max_ranked_users=settings.ranked_users,
                    seed=settings.seed,
                )
                serving_model = ModelPair(
                    **{
                        role: _fit_all_on_spark(data, role, params).to_factor_model()
                        for role, params in _serving_roles(report).items()
                    },
                    blend_weight=report.evaluation_model.blend_weight,
                ).with_ids(*ids)
        else:
            with duckdb.get_connection() as con:
                train, test = load_split(con, feedback)
            report = promotion.evaluate_candidate(
                fit_local,
                chosen,
                train,
                test,
                ids,
                champion,
                max_ranked_users=settings.ranked_users,
                seed=settings.seed,
            )
            # one copy of the interactions at a time: the split goes before all data comes
            del train, test
            with duckdb.get_connection() as con:
                interactions = load_matrix(con, feedback).values
            serving_model = ModelPair(
                **{
                    role: fit_local(interactions, params)
                    for role, params in _serving_roles(report).items()
                },
                blend_weight=report.evaluation_model.blend_weight,
            ).with_ids(*ids)
            del interactions
        with duckdb.get_connection() as con:
            n_interactions = write_seen_npz(con, feedback, seen)
        run = runs.log_training(
            mlflow_tracking.experiment_id,
            report,
            serving_model,
            seen,
            n_interactions,
            artist_names,
            backend=settings.backend,
            sizes={
                "train_rows": sizes["train"],
                "test_rows": sizes["test"],
                "ranked_users": report.ranked_users,
            },
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
            feedback,
            report.scores,
        )
    return dg.MaterializeResult(
        metadata={
            **_mlflow_links(mlflow_tracking.experiment_id, run.run_id),
            **_model_metadata(report, run),
        },
        check_results=[_gate(report)],
    )
