"""Champion / challenger decisions: how a newly trained candidate (a ranking model and, for
ratings, a rating model) scores on the held-out part beside the baselines, which model stands
for the champion, and whether the candidate wins.

No MLflow here: :mod:`musicrec_assets.tracking.registry` loads the champion and moves aliases.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import (
    evaluate,
    primary_metric,
    ranked_lists,
    ranked_users,
    stats_of_lists,
)
from musicrec_assets.evaluation.split import fingerprint
from musicrec_assets.model.baselines import BIAS_PARAMS, NeighbourParams, fit_baselines
from musicrec_assets.model.factors import FactorModel, Feedback, Fitter, ModelPair, TrainingParams


@dataclass(frozen=True)
class Champion:
    """The current champion: its version, its train-part models, and the fingerprint of the
    split they were trained on (None for versions logged before it was recorded)."""

    version: str
    evaluation_model: ModelPair
    split: str | None


@dataclass(frozen=True)
class StandIn:
    """What the candidate's ranking model is compared with: ``model`` ranks for the champion on
    this split (``refit`` when it is the champion's settings fit anew), or is None, and
    ``reason`` says why nothing is compared."""

    model: FactorModel | None
    refit: bool = False
    reason: str = ""
    is_candidate: bool = False  # the candidate's own list: the same settings, refit


def comparable_champion(
    champion: Champion | None,
    split_id: str,
    candidate: ModelPair,
    fit: Fitter,
    train: csr_matrix,
    ids: tuple[np.ndarray, np.ndarray],
) -> StandIn:
    """The list model (``ModelPair.list_model``) that stands for the champion on this split.

    The champion's own train-part model is fair only on the split it was trained on. On
    another split it has seen some of the held-out pairs and would score too well, so its
    settings are refit on this split instead: the candidate's own model when the settings
    are the same, and then a tie promotes, since the candidate has the newer data. Nothing
    stands in when there is no champion, when it was trained on other feedback (no score
    here compares with it), or when this backend cannot fit its settings. ``fit`` fits a
    model of either objective: a version from before the ranking model ranks with its rating
    model.
    """
    if champion is None:
        return StandIn(None, reason="no champion yet")
    theirs = champion.evaluation_model
    if theirs.feedback != candidate.feedback:
        return StandIn(None, reason=f"the champion was trained on {theirs.feedback} feedback")
    if champion.split == split_id:
        return StandIn(theirs.list_model())
    if _settings(theirs) == _settings(candidate):
        return StandIn(candidate.list_model(), refit=True, is_candidate=True)
    try:
        rating = theirs.rating if theirs.blend_weight > 0 else None
        refit = ModelPair(
            fit(train, theirs.ranking.params),
            None if rating is None else fit(train, rating.params),
            theirs.blend_weight,
        )
        return StandIn(refit.with_ids(*ids).list_model(), refit=True)
    except ValueError as error:  # e.g. a local champion with biases under the Spark backend
        return StandIn(None, reason=f"the champion's settings cannot be refit here: {error}")


def _settings(pair: ModelPair) -> tuple:
    """What decides a pair's lists: the ranking model's settings, and the rating model's and
    the weight where they are blended."""
    if pair.rating is None or pair.blend_weight <= 0:
        return (pair.ranking.params,)
    return pair.ranking.params, pair.rating.params, pair.blend_weight


def should_promote(
    candidate: float,
    champion: float | None,
    higher_is_better: bool,
    tie_promotes: bool = False,
    no_champion: str = "no champion yet",
) -> tuple[bool, str]:
    """Promote when there is no champion score (``no_champion`` says why), or when the
    candidate scores better (or, with ``tie_promotes``, as well)."""
    if champion is None:
        return True, no_champion
    if candidate == champion and tie_promotes:
        return True, f"candidate {candidate:.4f} ties with champion {champion:.4f}"
    better = candidate > champion if higher_is_better else candidate < champion
    comparison = "better" if better else "not better"
    return better, f"candidate {candidate:.4f} is {comparison} than champion {champion:.4f}"


# what each role of a ModelPair has to beat: the ranking model on NDCG@K, the rating model on
# RMSE (model/baselines.py names them)
RANKING_BASELINES = ("most_popular", "item_knn")
RATING_BASELINES = ("global_mean", "bias")
RANKING_METRIC, _ = primary_metric("ranking")
RATING_METRIC, _ = primary_metric("rating")
# a baseline beats the list only when it is better by more than this many standard errors of
# the per-listener difference (one-sided 95%): a held-out part of a few hundred listeners
# cannot tell smaller differences from chance, and a first run would otherwise publish
# nothing, or something, on a coin flip
NOISE_Z = 1.645


def beats_baselines(
    scores: dict[str, dict[str, float]],
    metric: str,
    higher_is_better: bool,
    candidate: str = "ranking",
    baselines: tuple[str, ...] | None = None,
    noise: dict[str, float] | None = None,
) -> bool:
    """Whether model ``candidate`` scores better than every baseline that has ``metric``: the
    ``baselines`` named (those of them in ``scores``), by default every other model. With
    ``noise`` (a baseline's standard error of the paired difference, :func:`paired_noise`),
    a baseline must be better by more than ``NOISE_Z`` of them to win."""
    own = scores[candidate][metric]
    sign = 1.0 if higher_is_better else -1.0
    return all(
        sign * (own - values[metric]) > -NOISE_Z * (noise or {}).get(name, 0.0)
        for name, values in scores.items()
        if name != candidate and (baselines is None or name in baselines) and metric in values
    )


def paired_noise(
    models: dict[str, FactorModel],
    candidate: str,
    baselines: tuple[str, ...],
    train: csr_matrix,
    test: csr_matrix,
    ranked: np.ndarray | None,
    k: int = 10,
) -> dict[str, float]:
    """The :func:`paired_standard_error` of the lists of ``candidate`` against each baseline's
    on the same held-out listeners (``ranked``)."""
    per_listener = {}
    for name in (candidate, *baselines):
        model = models[name]
        users, top = ranked_lists(
            model.user_vectors(), model.item_vectors(), train, test, k, ranked
        )
        per_listener[name] = stats_of_lists(users, top, csr_matrix(test), k).ndcg
    return {
        name: paired_standard_error(per_listener[candidate], per_listener[name])
        for name in baselines
    }


def paired_standard_error(own: np.ndarray, other: np.ndarray) -> float:
    """The standard error of the mean per-listener difference ``own - other`` (two models'
    NDCG@K of the same listeners, in the same order); 0 with fewer than two listeners."""
    if own.size < 2:
        return 0.0
    return float(np.std(own - other, ddof=1) / np.sqrt(own.size))


def score_models(
    models: dict[str, FactorModel],
    train: csr_matrix,
    test: csr_matrix,
    feedback: Feedback,
    ranked: np.ndarray | None = None,
    judge: FactorModel | None = None,
) -> dict[str, dict[str, float]]:
    """Held-out metrics (``metrics.evaluate``) of every model by name, on the same split and
    ranked users, every list judged by the same rating model ``judge``: e.g.
    ``ModelPair.models()`` beside ``fit_baselines(...)``."""
    return {
        name: evaluate(model, train, test, feedback, ranked=ranked, judge=judge)
        for name, model in models.items()
    }


@dataclass(frozen=True)
class CandidateSettings:
    """What tuning chose: the ranking model's params, the rating model's (ratings only) and
    the item-kNN baseline's (None where the catalogue is too large for it,
    ``baselines.item_knn_fits``)."""

    ranking: TrainingParams
    rating: TrainingParams | None = None
    neighbours: NeighbourParams | None = None
    blend_weight: float = 0.0

    @property
    def feedback(self) -> Feedback:
        """What the models are for: "explicit" (ratings) when there is a rating model."""
        return "implicit" if self.rating is None else "explicit"


@dataclass(frozen=True)
class CandidateReport:
    """What :func:`evaluate_candidate` found.

    ``scores`` maps "ranking", "rating" (ratings only) and each baseline to its held-out
    metrics; ``history`` and ``fit_seconds`` hold each of our models' per-iteration training
    metrics and fit time, by role; ``promote`` and ``reason`` are the champion decision.
    """

    evaluation_model: ModelPair
    history: dict[str, list[dict[str, float]]]
    fit_seconds: dict[str, float]
    scores: dict[str, dict[str, float]]
    split_id: str
    ranked_users: int
    promote: bool
    reason: str
    # each ranking baseline's standard error of the paired NDCG@K difference (paired_noise);
    # empty where the backend does not measure it, and then the gate compares plainly
    noise: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def rating_falls_back(self) -> bool:
        """Whether the version predicts ratings with the bias model (``baselines.BIAS_PARAMS``)
        instead of its rating model, which did not beat the rating baselines: a weak rating
        model never takes the lists down with it."""
        return not self.rating_beats_baselines

    @property
    def serving_rating_params(self) -> TrainingParams | None:
        """What the served rating model is fitted with: the rating model's settings, the bias
        model's when it falls back, None for play counts."""
        if "rating" not in self.scores:
            return None
        if self.rating_falls_back:
            return BIAS_PARAMS
        return self.evaluation_model.rating.params

    def serving_roles(self) -> dict[str, TrainingParams]:
        """The settings each served model is refitted on all data with: the ranking model's
        and, for ratings, :attr:`serving_rating_params`."""
        roles = {"ranking": self.evaluation_model.ranking.params}
        if self.serving_rating_params is not None:
            roles["rating"] = self.serving_rating_params
        return roles

    @property
    def ranking_beats_baselines(self) -> bool:
        return beats_baselines(
            self.scores, RANKING_METRIC, True, "ranking", RANKING_BASELINES, self.noise
        )

    @property
    def rating_beats_baselines(self) -> bool:
        """True without a rating model (play counts): nothing predicts ratings there."""
        return "rating" not in self.scores or beats_baselines(
            self.scores, RATING_METRIC, False, "rating", RATING_BASELINES
        )

    @property
    def beats_baselines(self) -> bool:
        """The gate: no baseline beats the lists by more than the held-out noise. Predicted
        ratings need not beat theirs: where the rating model loses, the bias model predicts
        them (:attr:`rating_falls_back`)."""
        return self.ranking_beats_baselines

    def gate(self) -> dict[str, float]:
        """The numbers the gate compares, ``<model>_<metric>``: the ranking model and its
        baselines on NDCG@K and, for ratings, the rating model and its baselines on RMSE."""
        compared = {RANKING_METRIC: ("ranking", *RANKING_BASELINES)}
        if "rating" in self.scores:
            compared[RATING_METRIC] = ("rating", *RATING_BASELINES)
        return {
            f"{name}_{metric}": self.scores[name][metric]
            for metric, names in compared.items()
            for name in names
            if name in self.scores
        } | {f"{name}_{RANKING_METRIC}_noise": value for name, value in self.noise.items()}


def fit_each_role(
    settings: CandidateSettings, fit: Callable[[str, TrainingParams, Callable[[dict], None]], Any]
) -> tuple[dict[str, Any], dict[str, list[dict[str, float]]], dict[str, float]]:
    """Fit the candidate's models (the ranking model, and the rating model for ratings) on
    either backend, timing each: ``fit(role, params, record)`` returns the model and may call
    ``record(step)`` with each iteration's training metrics. Returns (models, history, fit
    seconds), by role."""
    fitted, history, fit_seconds = {}, {}, {}
    for role, params in (("ranking", settings.ranking), ("rating", settings.rating)):
        if params is None:
            continue
        history[role] = []
        started = time.perf_counter()
        fitted[role] = fit(role, params, history[role].append)
        fit_seconds[role] = time.perf_counter() - started
    return fitted, history, fit_seconds


def evaluate_candidate(
    fit: Fitter,
    settings: CandidateSettings,
    train: csr_matrix,
    test: csr_matrix,
    ids: tuple[np.ndarray, np.ndarray],
    champion: Champion | None,
    max_ranked_users: int = 0,
    seed: int = 42,
) -> CandidateReport:
    """Fit the candidate's models on the training part, score them and the baselines on the
    held-out part, and decide whether the candidate takes the champion's place.

    The decision compares the ranking models on NDCG@K, the lists users receive; a candidate
    whose ranking model does not beat its baselines is refused whatever else it does, and one
    whose rating model does not beat the rating baselines predicts ratings with the bias model.

    Parameters
    ----------
    fit : Fitter
        The backend's fitter of either objective (``params.objective``); also refits the
        champion's settings when the split changed.
    settings : CandidateSettings
        The candidate's settings, as tuning chose them.
    train, test : csr_matrix
        The evaluation split, aligned with ``ids``.
    ids : (user ids, artist ids)
        Names of the rows and columns.
    champion : Champion or None
        The current champion.
    max_ranked_users, seed : int
        The ranking metrics average over a seeded sample of at most this many held-out users
        (:func:`~musicrec_assets.evaluation.metrics.ranked_users`), the same for every model.
    """
    fitted, history, fit_seconds = fit_each_role(
        settings, lambda _, params, record: fit(train, params, callback=lambda _, s: record(s))
    )
    pair = ModelPair(**fitted, blend_weight=settings.blend_weight).with_ids(*ids)
    feedback = pair.feedback

    ranked = ranked_users(test, max_ranked_users, seed)
    baselines = fit_baselines(train, feedback, settings.neighbours)
    judge = None
    if pair.rating is not None:
        # the lists are blended with, and judged by, whatever will predict the ratings
        rating_scores = score_models(
            {"rating": pair.rating, **{name: baselines[name] for name in RATING_BASELINES}},
            train,
            test,
            feedback,
            ranked,
        )
        falls_back = not beats_baselines(
            rating_scores, RATING_METRIC, False, "rating", RATING_BASELINES
        )
        judge = baselines["bias"] if falls_back else pair.rating
    listed = ModelPair(pair.ranking, judge, pair.blend_weight).list_model()
    # the ranking model alone beside its blend: what the blend bought and cost on held-out data
    alone = {} if listed is pair.ranking else {"ranking_alone": pair.ranking}
    models = pair.models() | {"ranking": listed} | alone | baselines
    scores = score_models(models, train, test, feedback, ranked, judge)
    compared = tuple(name for name in RANKING_BASELINES if name in models)

    def noise_of(candidate: str) -> dict[str, float]:
        return paired_noise(models, candidate, compared, train, test, ranked)

    noise = noise_of("ranking")
    dropped_blend = ""
    if alone and not beats_baselines(scores, RANKING_METRIC, True, "ranking", compared, noise):
        alone_noise = noise_of("ranking_alone")
        if beats_baselines(scores, RANKING_METRIC, True, "ranking_alone", compared, alone_noise):
            # as a weak rating model never takes the lists down, neither does their blend with
            # it: the lists are the ranking model's alone
            dropped_blend = (
                f"; its blended lists (w={pair.blend_weight:g}) scored "
                f"{scores['ranking'][RANKING_METRIC]:.4f}, which a baseline beats, so it lists "
                "by the ranking model alone"
            )
            pair = dataclasses.replace(pair, blend_weight=0.0)
            scores = {"ranking": scores.pop("ranking_alone")} | {
                name: values for name, values in scores.items() if name != "ranking"
            }
            noise = alone_noise

    split_id = fingerprint(train, test, *ids)
    stand_in = comparable_champion(champion, split_id, pair, fit, train, ids)
    report = decide(
        pair,
        history,
        fit_seconds,
        scores,
        split_id,
        len(ranked),
        stand_in,
        lambda model: evaluate(model.reindexed(*ids), train, test, feedback, ranked=ranked)[
            RANKING_METRIC
        ],
        noise,
    )
    return dataclasses.replace(report, reason=report.reason + dropped_blend)


def decide(
    pair: ModelPair,
    history: dict[str, list[dict[str, float]]],
    fit_seconds: dict[str, float],
    scores: dict[str, dict[str, float]],
    split_id: str,
    ranked_users: int,
    stand_in: StandIn,
    score_stand_in: Callable[[FactorModel], float],
    noise: dict[str, float] | None = None,
) -> CandidateReport:
    """The report of a scored candidate and the champion decision, whichever backend scored
    it: ``score_stand_in(model)`` is the champion stand-in's NDCG@K on the same split,
    ``noise`` the baselines' :func:`paired_noise` where the backend measures it."""
    own = scores["ranking"][RANKING_METRIC]
    if stand_in.model is None:
        champion_score = None
    elif stand_in.is_candidate:
        champion_score = own
    else:
        champion_score = score_stand_in(stand_in.model)
    promote, reason = should_promote(
        own, champion_score, True, tie_promotes=stand_in.refit, no_champion=stand_in.reason
    )
    if stand_in.refit:
        reason += " (its settings refit on this split, which its model had partly seen)"
    report = CandidateReport(
        evaluation_model=pair,
        history=history,
        fit_seconds=fit_seconds,
        scores=scores,
        split_id=split_id,
        ranked_users=ranked_users,
        promote=promote,
        reason=reason,
        noise=noise or {},
    )
    if not report.ranking_beats_baselines:
        winner = next(
            name
            for name in sorted(
                (name for name in RANKING_BASELINES if name in scores),
                key=lambda name: -scores[name][RANKING_METRIC],
            )
            if not beats_baselines(scores, RANKING_METRIC, True, "ranking", (name,), noise)
        )
        beyond = f", by more than the held-out noise (±{noise[winner]:.4f})" if noise else ""
        return dataclasses.replace(
            report,
            promote=False,
            reason=f"its ranking model's {RANKING_METRIC} {own:.4f} is not better than the "
            f"{winner} baseline's {scores[winner][RANKING_METRIC]:.4f}{beyond}",
        )
    if report.rating_falls_back:
        best = min(RATING_BASELINES, key=lambda name: scores[name][RATING_METRIC])
        reason = (
            f"{report.reason}; its rating model's RMSE {scores['rating'][RATING_METRIC]:.4f} is "
            f"not better than the {best} baseline's {scores[best][RATING_METRIC]:.4f}, so the "
            "bias model predicts the ratings"
        )
        return dataclasses.replace(report, reason=reason)
    return report
