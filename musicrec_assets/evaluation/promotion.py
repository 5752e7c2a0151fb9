"""Champion / challenger decisions: how a newly trained candidate scores on the held-out part
beside the baselines, which model stands for the champion, and whether the candidate wins.

No MLflow here: :mod:`musicrec_assets.tracking.registry` loads the champion and moves aliases.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import evaluate, primary_metric, ranked_users
from musicrec_assets.evaluation.split import fingerprint
from musicrec_assets.model.baselines import fit_baselines
from musicrec_assets.model.factors import FactorModel, Fitter, TrainingParams


@dataclass(frozen=True)
class Champion:
    """The current champion: its version, its train-part model, and the fingerprint of the
    split that model was trained on (None for versions logged before it was recorded)."""

    version: str
    evaluation_model: FactorModel
    split: str | None


@dataclass(frozen=True)
class StandIn:
    """What the candidate is compared with: ``model`` stands for the champion on this split
    (``refit`` when it is the champion's settings fit anew), or is None, and ``reason`` says
    why nothing is compared."""

    model: FactorModel | None
    refit: bool = False
    reason: str = ""


def comparable_champion(
    champion: Champion | None,
    split_id: str,
    candidate: FactorModel,
    fit: Fitter,
    train: csr_matrix,
    ids: tuple[np.ndarray, np.ndarray],
) -> StandIn:
    """The model that stands for the champion on this split.

    The champion's own train-part model is fair only on the split it was trained on. On
    another split it has seen some of the held-out pairs and would score too well, so its
    settings are refit on this split instead: the candidate's own model when the settings
    are the same, and then a tie promotes, since the candidate has the newer data. Nothing
    stands in when there is no champion, when it was trained on other feedback (no score
    here compares with it), or when this backend cannot fit its settings.
    """
    if champion is None:
        return StandIn(None, reason="no champion yet")
    settings = champion.evaluation_model.params
    if settings.feedback != candidate.params.feedback:
        return StandIn(None, reason=f"the champion was trained on {settings.feedback} feedback")
    if champion.split == split_id:
        return StandIn(champion.evaluation_model)
    if settings == candidate.params:
        return StandIn(candidate, refit=True)
    try:
        return StandIn(fit(train, settings).with_ids(*ids), refit=True)
    except ValueError as error:  # e.g. a local champion with biases under the Spark backend
        return StandIn(None, reason=f"the champion's settings cannot be refit here: {error}")


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


def beats_baselines(
    scores: dict[str, dict[str, float]], metric: str, higher_is_better: bool
) -> bool:
    """Whether model "als" scores better than every baseline that has ``metric``."""
    own = scores["als"][metric]
    others = [
        values[metric] for name, values in scores.items() if name != "als" and metric in values
    ]
    return all(own > other if higher_is_better else own < other for other in others)


@dataclass(frozen=True)
class CandidateReport:
    """What :func:`evaluate_candidate` found.

    ``scores`` maps "als" (the candidate) and each baseline to its held-out metrics;
    ``history`` holds the candidate's per-iteration training metrics; ``promote`` and
    ``reason`` are the champion decision.
    """

    evaluation_model: FactorModel
    history: list[dict[str, float]]
    fit_seconds: float
    scores: dict[str, dict[str, float]]
    metric: str
    higher_is_better: bool
    split_id: str
    ranked_users: int
    promote: bool
    reason: str

    @property
    def beats_baselines(self) -> bool:
        return beats_baselines(self.scores, self.metric, self.higher_is_better)


def evaluate_candidate(
    fit: Fitter,
    params: TrainingParams,
    train: csr_matrix,
    test: csr_matrix,
    ids: tuple[np.ndarray, np.ndarray],
    champion: Champion | None,
    max_ranked_users: int = 0,
    seed: int = 42,
) -> CandidateReport:
    """Fit ``params`` on the training part, score it and the baselines on the held-out part,
    and decide whether it takes the champion's place.

    Parameters
    ----------
    fit : Fitter
        The backend's fitter; also refits the champion's settings when the split changed.
    params : TrainingParams
        The candidate's settings.
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
    feedback = params.feedback
    metric, higher_is_better = primary_metric(feedback)
    history: list[dict[str, float]] = []
    started = time.perf_counter()
    model = fit(train, params, callback=lambda _, step: history.append(step)).with_ids(*ids)
    fit_seconds = time.perf_counter() - started

    ranked = ranked_users(test, max_ranked_users, seed)
    scores = {"als": evaluate(model, train, test, feedback, ranked=ranked)}
    for name, baseline in fit_baselines(train, feedback).items():
        baseline_scores = evaluate(baseline, train, test, feedback, ranked=ranked)
        if name == "most_popular":  # popularity ranks; its "ratings" mean nothing
            baseline_scores = {k: v for k, v in baseline_scores.items() if "_at_" in k}
        scores[name] = baseline_scores

    split_id = fingerprint(train, test, *ids)
    stand_in = comparable_champion(champion, split_id, model, fit, train, ids)
    if stand_in.model is None:
        champion_score = None
    elif stand_in.model is model:
        champion_score = scores["als"][metric]
    else:
        champion_score = evaluate(
            stand_in.model.reindexed(*ids), train, test, feedback, ranked=ranked
        )[metric]
    promote, reason = should_promote(
        scores["als"][metric],
        champion_score,
        higher_is_better,
        tie_promotes=stand_in.refit,
        no_champion=stand_in.reason,
    )
    if stand_in.refit:
        reason += " (its settings refit on this split, which its model had partly seen)"
    return CandidateReport(
        evaluation_model=model,
        history=history,
        fit_seconds=fit_seconds,
        scores=scores,
        metric=metric,
        higher_is_better=higher_is_better,
        split_id=split_id,
        ranked_users=len(ranked),
        promote=promote,
        reason=reason,
    )
