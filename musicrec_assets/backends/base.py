"""The one seam between the Dagster assets and where the work runs.

A backend holds out the evaluation split, cross-validates the models, fits and scores a
candidate, and computes the published top-N tables; the local backend does it with scipy and
``implicit`` in this process, the Spark backend (:mod:`musicrec_assets.backends.spark`) on
frames a cluster holds. Both read and write the warehouse through a ``connect`` callable (a
connection per use, closed again before long work) and share every formula below this layer:
the split rule, the metrics, the search, the champion decision.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import duckdb
import numpy as np

from musicrec_assets.evaluation import tuning
from musicrec_assets.evaluation.promotion import CandidateReport, CandidateSettings, Champion
from musicrec_assets.model.baselines import NeighbourParams
from musicrec_assets.model.factors import Feedback, ModelPair, TrainingParams
from musicrec_assets.model.fitters import ranking_base_params, rating_base_params

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]


# member names equal their values, so run config says `backend: spark`
class Backend(StrEnum):
    local = "local"
    spark = "spark"


class Tuner(Protocol):
    """One tuning's work on the training part, open while its searches run."""

    # what the training part holds, ratings or play counts
    feedback: Feedback
    # whether item-kNN is searched (its dense scores are a local baseline only)
    searches_item_knn: bool
    # Spark's ALS scales λ by each row's count: the ranking model's λ range (implicit's plain
    # λ) is rescaled by this factor to the same strength; None where λ is plain
    regularization_scale: float | None

    def cross_validate(
        self,
        model: str,
        base: TrainingParams | NeighbourParams,
        space: tuning.SearchSpace,
        **search: Any,
    ) -> tuning.SearchResult:
        """:func:`~musicrec_assets.evaluation.tuning.cross_validate` of one ``model`` of
        :func:`searches` on this backend, on data of its ``feedback``."""

    def choose_blend(
        self, ranking: TrainingParams, rating: TrainingParams, weights: tuple[float, ...]
    ) -> tuning.SearchResult | None:
        """The weight of the predicted rating in the lists, by cross-validation
        (:func:`~musicrec_assets.evaluation.blend.choose_blend_weight`); None where the
        backend keeps the lists unblended."""


class TrainingBackend(Protocol):
    name: Backend

    def hold_out(self, connect: Connect, feedback: Feedback, test_share: float, seed: int) -> int:
        """Write ``evaluation_split``; returns the held-out rows dropped as cold (their user or
        artist has no training row)."""

    def tuning(
        self, connect: Connect, feedback: Feedback, n_folds: int, seed: int, ranked_users: int
    ) -> AbstractContextManager[Tuner]:
        """A :class:`Tuner` on the training part of ``evaluation_split``."""

    def train(
        self,
        connect: Connect,
        chosen: CandidateSettings,
        ids: tuple[np.ndarray, np.ndarray],
        champion: Champion | None,
        ranked_users: int,
        seed: int,
    ) -> tuple[CandidateReport, ModelPair]:
        """Fit the chosen settings on the training part and score them beside the baselines
        and the champion (the report), then refit what serves on all data (the model pair,
        under ``ids``)."""

    def publish_top_n(
        self,
        connect: Connect,
        table: str,
        champion: Path,
        version: str,
        top_n: int,
        created_at: datetime,
    ) -> int:
        """Compute ``table`` (user_recommendations, artist_top_users or similar_artists; the
        factor tables need no backend) from the champion's files and publish it (and its named
        view) in one transaction; returns its row count."""


def searches(
    feedback: Feedback,
    tuner: Tuner,
    iterations: int,
    seed: int,
    ranking_overrides: dict[str, list],
    rating_overrides: dict[str, list],
    neighbour_overrides: dict[str, list],
) -> dict[str, tuple[TrainingParams | NeighbourParams, tuning.SearchSpace]]:
    """What tuning searches, by model: (fixed settings, search space). Values the overrides
    fix are taken as they are, on either backend."""
    ranking = tuning.ranking_space(feedback, ranking_overrides)
    if tuner.regularization_scale is not None and not ranking_overrides["regularization"]:
        ranking = ranking.scaled("regularization", tuner.regularization_scale)
    weighted = tuner.regularization_scale is not None
    found = {"ranking": (ranking_base_params(feedback, iterations, seed, weighted), ranking)}
    if feedback == "explicit":
        found["rating"] = (
            rating_base_params(iterations, seed),
            tuning.rating_space(rating_overrides),
        )
    if tuner.searches_item_knn:
        found["item_knn"] = (NeighbourParams(), tuning.neighbour_space(neighbour_overrides))
    return found
