"""The local backend: scipy matrices in this process, ``implicit`` and numpy fitting them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.backends.base import Backend, Connect
from musicrec_assets.evaluation import blend, promotion, tuning
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.baselines import fit_item_knn, item_knn_fits
from musicrec_assets.model.factors import Feedback, ModelPair, TrainingParams
from musicrec_assets.model.fitters import fit_local
from musicrec_assets.serving import tables
from musicrec_assets.serving.placed import PlacedArtists
from musicrec_assets.serving.recommender import Recommender
from musicrec_assets.warehouse import serving_tables
from musicrec_assets.warehouse.interactions import load_matrix, load_split, save_split


@dataclass
class LocalTuner:
    train: csr_matrix
    feedback: Feedback
    n_folds: int
    seed: int
    ranked_users: int
    regularization_scale: None = None

    @property
    def searches_item_knn(self) -> bool:
        return item_knn_fits(self.train)

    def cross_validate(
        self, model: str, base, space: tuning.SearchSpace, **search: Any
    ) -> tuning.SearchResult:
        fit = fit_local if isinstance(base, TrainingParams) else fit_item_knn
        return tuning.cross_validate(
            self.train,
            base,
            space,
            self.feedback,
            n_folds=self.n_folds,
            seed=self.seed,
            max_ranked_users=self.ranked_users,
            fit=fit,
            **search,
        )

    def choose_blend(
        self, ranking: TrainingParams, rating: TrainingParams, weights: tuple[float, ...]
    ) -> tuning.SearchResult:
        folds = tuning.cv_folds(self.train, self.n_folds, self.seed, self.ranked_users)
        return blend.choose_blend_weight(folds, ranking, rating, fit_local, weights=weights)


class LocalBackend:
    name = Backend.local

    def hold_out(self, connect: Connect, feedback: Feedback, test_share: float, seed: int) -> int:
        with connect() as con:
            matrix = load_matrix(con, feedback)
            split = train_test_split(matrix.values, test_share, seed=seed)
            save_split(con, split.train, split.test)
        return split.dropped

    @contextmanager
    def tuning(
        self, connect: Connect, feedback: Feedback, n_folds: int, seed: int, ranked_users: int
    ) -> Iterator[LocalTuner]:
        with connect() as con:
            train = load_split(con, feedback)[0]
        yield LocalTuner(train, feedback, n_folds, seed, ranked_users)

    def train(
        self,
        connect: Connect,
        chosen: promotion.CandidateSettings,
        ids: tuple[np.ndarray, np.ndarray],
        champion: promotion.Champion | None,
        ranked_users: int,
        seed: int,
    ) -> tuple[promotion.CandidateReport, ModelPair]:
        with connect() as con:
            train, test = load_split(con, chosen.feedback)
        report = promotion.evaluate_candidate(
            fit_local, chosen, train, test, ids, champion, max_ranked_users=ranked_users, seed=seed
        )
        # one copy of the interactions at a time: the split goes before all data comes
        del train, test
        with connect() as con:
            interactions = load_matrix(con, chosen.feedback).values
        serving = ModelPair(
            **{
                role: fit_local(interactions, params)
                for role, params in report.serving_roles().items()
            },
            blend_weight=report.evaluation_model.blend_weight,
        )
        return report, serving.with_ids(*ids)

    def publish_top_n(
        self,
        connect: Connect,
        table: str,
        champion: Path,
        version: str,
        top_n: int,
        created_at: datetime,
        placed: PlacedArtists | None = None,
    ) -> int:
        """:meth:`Backend.publish_top_n`; ``placed`` artists (by their tags) are ranked beside
        the champion's in artist_top_users and similar_artists, on a home of either backend
        (the Spark backend's tables rank the trained artists alone)."""
        recommender = Recommender.from_folder(champion)
        # rows of the model, as against those a fold-in refreshes (warehouse/refresh.py)
        refreshed = {"source": "model", "refreshed_at": created_at}
        if table == "user_recommendations":
            extra = {"model_version": version, "created_at": created_at, **refreshed}
            chunks = tables.user_recommendations(recommender, top_n, extra)
        elif table == "artist_top_users":
            extra = {"model_version": version, **refreshed}
            chunks = tables.artist_top_users(recommender, top_n, extra, placed)
        else:
            extra = {"model_version": version}
            chunks = [tables.similar_artists(recommender, top_n, extra, placed)]
        with connect() as con:
            return serving_tables.publish_with_view(con, table, chunks)
