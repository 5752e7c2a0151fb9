"""What the training assets show in the UI and log: short descriptions of settings, the
search's and the candidate's tables, links to MLflow."""

import dataclasses

import dagster as dg
import pandas as pd

from musicrec_assets.defs.metadata import frame_table
from musicrec_assets.evaluation import blend, promotion, tuning
from musicrec_assets.model.baselines import NeighbourParams
from musicrec_assets.model.factors import RANKING_ONLY, Feedback, TrainingParams
from musicrec_assets.tracking import plots, registry, runs

GATE = "als_model_beats_baselines"


def describe(params: TrainingParams | NeighbourParams | blend.BlendParams) -> str:
    if isinstance(params, NeighbourParams):
        return f"K={params.neighbours} {params.similarity}"
    if isinstance(params, blend.BlendParams):
        return f"w={params.blend_weight:g}"
    # 3 significant digits: a search's draws (λ=1.13119) say no more than that
    text = f"rank={params.rank} λ={params.regularization:.3g}"
    if params.objective == "ranking":
        text += f" α={params.alpha:.3g} {params.confidence}"
    elif params.bias_regularization is not None:
        text += f" λ_b={params.bias_regularization:.3g}"
    return text


def mlflow_links(experiment_id: str, run_id: str) -> dict:
    """The run, and the experiment's runs with the headline metrics as columns (the
    experiment's name is in that page's title)."""
    return {
        "mlflow_run": dg.MetadataValue.url(registry.run_url(experiment_id, run_id)),
        "mlflow_runs": dg.MetadataValue.url(runs.experiment_url(experiment_id)),
        "mlflow_run_id": run_id,
    }


def figures(experiment_id: str, run_id: str, pngs: dict[str, bytes]) -> dict:
    """Each plot inline (Dagster shows markdown behind a button) and as a link to the same
    image logged in the run."""
    shown = {}
    for file_name, png in pngs.items():
        name = file_name.removesuffix(".png")
        shown[name] = dg.MetadataValue.md(plots.markdown_image(png, name))
        shown[f"{name}_in_mlflow"] = dg.MetadataValue.url(
            runs.artifact_url(experiment_id, run_id, f"plots/{file_name}")
        )
    return shown


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
    """One row per model, its best CV score first: what its search did and chose."""
    return pd.DataFrame(
        [
            {
                "cv_score": float(result.best.mean_metrics[result.primary_metric]),
                "metric": result.primary_metric,
                "model": model,
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


def settings_table(results: dict[str, tuning.SearchResult]) -> pd.DataFrame:
    """One row per setting a search varied: the value chosen, what was tried, and whether its
    range grew or its best value is still on an edge of it."""
    rows = []
    for model, result in results.items():
        trials = plots.searched_settings(result)
        chosen = trials[trials["chosen"]].iloc[0]
        for name in trials.columns.drop(["cv_score", "pruned", "chosen"]):
            tried = trials[name].dropna()
            notes = [note for note in (*result.widened, *result.on_edge) if note.startswith(name)]
            rows.append(
                {
                    "model": model,
                    "setting": name,
                    "chosen": _short(chosen[name]),
                    "tried": _span(tried),
                    "values": tried.nunique(),
                    "range": "; ".join(notes) or "-",
                }
            )
    return pd.DataFrame(rows, columns=["model", "setting", "chosen", "tried", "values", "range"])


def _short(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # K 1862, not 1.86e+03
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _span(values: pd.Series) -> str:
    """``low – high`` of numbers, the words tried in order."""
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return f"{_short(float(values.min()))} – {_short(float(values.max()))}"
    return ", ".join(sorted(values.astype(str).unique()))


def top_trials(trials: pd.DataFrame, results: dict[str, tuning.SearchResult]) -> pd.DataFrame:
    """The best 5 complete trials of each model, score first, every model's settings in words
    (``trial`` is the row of ``tuning_trials``)."""
    # tuning_trials holds each model's trials in the order of its search
    settings = [describe(t.params) for result in results.values() for t in result.trials]
    named = trials.assign(settings=settings)
    best = [
        named[(named["model"] == model) & ~named["pruned"]]
        .sort_values("cv_score", ascending=not result.higher_is_better)
        .head(5)
        for model, result in results.items()
    ]
    # no metric column: each model's is in `search`, and the settings need the room
    return pd.concat(best)[["cv_score", "model", "settings", "trial", "chosen"]]


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
    """The params that mean something for the model's objective, numbers to 4 significant
    digits (a search's draw, α 0.7297610260343386, reads as 0.7298)."""
    values = dataclasses.asdict(params)
    if params.objective == "rating":
        for name in RANKING_ONLY:
            values.pop(name)
    return {
        name: float(f"{value:.4g}") if isinstance(value, float) else value
        for name, value in values.items()
    }


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


def model_metadata(
    report: promotion.CandidateReport, run: runs.TrainingRun, experiment_id: str
) -> dict:
    pair = report.evaluation_model
    return {
        "model_version": run.logged.version,
        "model_uri": run.logged.model_uri,
        "alias": run.alias,
        "promotion": report.reason,
        "ratings_predicted_by": rating_source(report),
        "feedback": pair.feedback,
        **headline(report),
        # the comparison before the long params: what a person came to the page for
        "metrics_by_model": frame_table(runs.metrics_by_model(report.scores).reset_index()),
        **figures(experiment_id, run.run_id, run.figures),
        "fit_seconds": round(sum(report.fit_seconds.values()), 1),
        "params": dg.MetadataValue.json(
            {role: applicable(model.params) for role, model in pair.models().items()}
        ),
    }


def blend_summary(result: tuning.SearchResult) -> str:
    tried = ", ".join(f"{trial.params.blend_weight:g}" for trial in result.trials)
    return (
        f"blend of the lists: weight {result.best.params.blend_weight:g} of the predicted "
        f"rating, of {tried}"
    )
