"""How much the predicted rating weighs in the lists of ratings (``ModelPair.blend_weight``),
chosen by cross-validation.

The ranking model predicts what a listener will rate, not what they will like: left alone, its
lists hold artists its own rating model expects them to rate below their mean. Each weight w of
:data:`WEIGHTS` orders the validation folds' lists by ``z(u, i) + w · r̂(u, i)``
(``factors.blended_vectors``), with the tuned ranking and rating models fitted once per fold.
The weight chosen keeps the lists' NDCG@K on any held-out rating within
:data:`NDCG_TOLERANCE` of the ranking model's alone (w = 0, always admissible); among those it
has the best mean of NDCG@K on any held-out rating and on the liked ones (rated at least the
user's mean), preferring weights whose lists hold at most :data:`DISLIKE_LIMIT` of predicted
dislikes where any does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.tuning import SearchResult, Trial
from musicrec_assets.model.factors import ModelPair, Objective, TrainingParams

WEIGHTS = (0.0, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0)
# the most of a top-K list its own rating model may predict below the listener's mean
DISLIKE_LIMIT = 0.10
# how much of the ranking model's NDCG@K (in CV) a blend may give up for fewer predicted
# dislikes: none, as the lists must rank at least as well as the ranking model tuned for it.
# At 2% the weight CV chose cost 2-3% on held-out data and put the lists below implicit ALS
# tuned by grid on FilmTrust and a generated world (benchmarks/README.md)
NDCG_TOLERANCE = 0.0


@dataclass(frozen=True)
class BlendParams:
    """The blend of one trial; its ``objective`` is "ranking" because the blend ranks."""

    blend_weight: float
    objective: Objective = "ranking"


def choose_blend_weight(
    folds: list[tuple[Any, Any, Any]],
    ranking: TrainingParams,
    rating: TrainingParams,
    fit: Callable[[Any, TrainingParams], Any],
    k: int = 10,
    weights: tuple[float, ...] = WEIGHTS,
) -> SearchResult:
    """One trial per weight over the folds ``(train, validation, ranked users)``, the two
    models fitted once per fold (the first weight, 0 by default, is the reference); the best
    trial as the module says. Its metric ``list_score_at_{k}``, the mean of the two NDCGs, is
    what the tables show."""
    objective = f"list_score_at_{k}"
    fold_metrics: dict[float, list[dict[str, float]]] = {weight: [] for weight in weights}
    for train, validation, ranked in folds:
        started = time.perf_counter()
        ranking_model, rating_model = fit(train, ranking), fit(train, rating)
        # fitted once for every weight: the first weight's trial carries the time
        fit_seconds = [time.perf_counter() - started] + [0.0] * (len(weights) - 1)
        for weight, seconds in zip(weights, fit_seconds, strict=True):
            scores = evaluate(
                ModelPair(ranking_model, rating_model, weight).list_model(),
                train,
                validation,
                "explicit",
                k,
                ranked,
                judge=rating_model,
            )
            scores[objective] = (scores[f"ndcg_at_{k}"] + scores[f"ndcg_liked_at_{k}"]) / 2
            scores["fit_seconds"] = seconds
            fold_metrics[weight].append(scores)
    trials = [
        Trial(
            index,
            BlendParams(weight),
            fold_metrics[weight],
            {
                name: float(np.mean([f[name] for f in fold_metrics[weight]]))
                for name in fold_metrics[weight][0]
            },
        )
        for index, weight in enumerate(weights)
    ]
    dislikes, ndcg = f"predicted_dislikes_at_{k}", f"ndcg_at_{k}"
    floor = (1 - NDCG_TOLERANCE) * trials[0].mean_metrics[ndcg]
    admissible = [t for t in trials if t.mean_metrics[ndcg] >= floor or t.index == 0]
    within = [t for t in admissible if t.mean_metrics[dislikes] <= DISLIKE_LIMIT]
    best = max(within or admissible, key=lambda t: t.mean_metrics[objective])
    return SearchResult(trials, best, objective, higher_is_better=True)
