"""What the training assets show in the UI and log: short descriptions of settings, the
search's and the candidate's tables, links to MLflow."""

import dataclasses

import dagster as dg
import pandas as pd

from musicrec_assets.defs.metadata import frame_table
from musicrec_assets.evaluation import blend, promotion, tuning
from musicrec_assets.evaluation.metrics import HEADLINE_METRICS
from musicrec_assets.model.baselines import NeighbourParams
from musicrec_assets.model.factors import RANKING_ONLY, Feedback, TrainingParams
from musicrec_assets.tracking import plots, registry, runs

GATE = "als_model_beats_baselines"
# the JSON and bookkeeping columns of tuning_trials, left out of its preview
_BOOKKEEPING = ["cv_metrics", "params", "mlflow_run_id", "tuned_at"]


def describe(params: TrainingParams | NeighbourParams | blend.BlendParams) -> str:
    if isinstance(params, NeighbourParams):
        return f"K={params.neighbours} {params.similarity}"
    if isinstance(params, blend.BlendParams):
        return f"w={params.blend_weight:g}"
    text = f"rank={params.rank} λ={params.regularization:g}"
    if params.objective == "ranking":
        text += f" α={params.alpha:g} {params.confidence}"
    elif params.bias_regularization is not None:
        text += f" λ_b={params.bias_regularization:g}"
    return text


def mlflow_links(experiment_id: str, run_id: str) -> dict:
    return {
        "mlflow_run_id": run_id,
        "mlflow_experiment": registry.EXPERIMENT,
        "mlflow_run": dg.MetadataValue.url(registry.run_url(experiment_id, run_id)),
    }


def study_key(model: str, feedback: Feedback, backend: str) -> str:
    """Which earlier studies a search warm-starts from: the same model on the same kind of
    data and backend (their λ differ in scale)."""
    return f"{model}/{'ratings' if feedback == 'explicit' else 'plays'}/{backend}"


def search_summary(model: str, result: tuning.SearchResult) -> str:
    text = (
        f"{model} search: {len(result.trials)} trials ({result.n_pruned} pruned) in "
        f"{result.seconds:.0f} s, ended by {result.stopped_by}"
    )
    if result.widened:
        text += "; widened " + ", ".join(result.widened)
    if result.on_edge:
        text += "; still on an edge: " + ", ".join(result.on_edge)
    return text


def search_table(results: dict[str, tuning.SearchResult]) -> pd.DataFrame:
    """One row per model: what its search did and chose, at a glance."""
    return pd.DataFrame(
        [
            {
                "model": model,
                f"cv_{result.primary_metric}": round(
                    float(result.best.mean_metrics[result.primary_metric]), 4
                ),
                "chosen": describe(result.best.params),
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


def top_trials(trials: pd.DataFrame, results: dict[str, tuning.SearchResult]) -> pd.DataFrame:
    """The best 5 trials of each model, the columns that mean something for some of them."""
    best = [
        trials[trials["model"] == model]
        .sort_values("cv_score", ascending=not result.higher_is_better)
        .head(5)
        for model, result in results.items()
    ]
    return pd.concat(best).drop(columns=_BOOKKEEPING).dropna(axis="columns", how="all")


def gate(report: promotion.CandidateReport) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=GATE,
        passed=report.beats_baselines,
        metadata={
            **{name: round(float(value), 4) for name, value in report.gate().items()},
            "ratings_predicted_by": rating_source(report),
        },
    )


def rating_source(report: promotion.CandidateReport) -> str:
    if "rating" not in report.scores:
        return "nothing (play counts)"
    return "the bias model (fallback)" if report.rating_falls_back else "the rating model"


def applicable(params: TrainingParams | NeighbourParams) -> dict:
    """The params that mean something for the model's objective."""
    values = dataclasses.asdict(params)
    if params.objective == "rating":
        for name in RANKING_ONLY:
            values.pop(name)
    return values


def headline(report: promotion.CandidateReport) -> dict:
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
        if role == "ranking" and best in report.noise:
            numbers[f"{metric}_best_baseline_noise"] = report.noise[best]
    coverage = f"coverage_at_{promotion.RANKING_METRIC.rpartition('_')[2]}"
    numbers[coverage] = scores["ranking"][coverage]
    return {k: round(float(v), 4) if isinstance(v, float) else v for k, v in numbers.items()}


def model_metadata(report: promotion.CandidateReport, run: runs.TrainingRun) -> dict:
    pair = report.evaluation_model
    comparison = pd.DataFrame(report.scores).T.rename_axis("model")
    shown = [metric for metric in HEADLINE_METRICS if metric in comparison.columns]
    return {
        "model_version": run.logged.version,
        "model_uri": run.logged.model_uri,
        "alias": run.alias,
        "promotion": report.reason,
        "ratings_predicted_by": rating_source(report),
        "feedback": pair.feedback,
        **headline(report),
        "fit_seconds": round(sum(report.fit_seconds.values()), 1),
        "params": dg.MetadataValue.json(
            {role: applicable(model.params) for role, model in pair.models().items()}
        ),
        "metrics_by_model": frame_table(comparison[shown].reset_index()),
        **{
            name.removesuffix(".png"): dg.MetadataValue.md(plots.markdown_image(png, name))
            for name, png in run.figures.items()
        },
    }


def blend_summary(result: tuning.SearchResult) -> str:
    tried = ", ".join(f"{trial.params.blend_weight:g}" for trial in result.trials)
    return (
        f"blend of the lists: weight {result.best.params.blend_weight:g} of the predicted "
        f"rating, of {tried}"
    )
