"""The Spark backend: each step exports what it reads from the warehouse as Parquet, Spark works
on it in a folder of its own (the warehouse connection is closed meanwhile), and what comes back
is published under ids."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from musicrec_assets.backends.base import Backend, Connect
from musicrec_assets.backends.spark import tables as spark_tables
from musicrec_assets.backends.spark.baselines import fit_frame
from musicrec_assets.backends.spark.exchange import (
    export_interactions,
    publish_split,
    publish_top_n,
)
from musicrec_assets.backends.spark.promotion import evaluate_spark_candidate
from musicrec_assets.backends.spark.split import hold_out
from musicrec_assets.backends.spark.tuning import cross_validate_spark
from musicrec_assets.evaluation import promotion, tuning
from musicrec_assets.model.factors import Feedback, ModelPair, TrainingParams
from musicrec_assets.warehouse import serving_tables
from musicrec_assets.warehouse.interactions import split_counts
from musicrec_assets.warehouse.tables import scalar

# (session, folder) of one step: SparkResource.workspace under MUSICREC_HOME/spark
Workspace = Callable[[], AbstractContextManager[tuple[Any, Path]]]
# what each published table selects from Spark's rows (aliases: exchange.publish_top_n); its
# placeholders take the version, then the time it was built (created_at, refreshed_at)
_SELECT = {
    "user_recommendations": "u.user_id, t.rank, a.artist_id, t.score, t.predicted_rating, "
    "?::VARCHAR AS model_version, ?::TIMESTAMP AS created_at, 'model' AS source, "
    "?::TIMESTAMP AS refreshed_at",
    "artist_top_users": "a.artist_id, t.rank, u.user_id, t.score, ?::VARCHAR AS model_version, "
    "'model' AS source, ?::TIMESTAMP AS refreshed_at",
    "similar_artists": "a.artist_id, t.rank, b.artist_id AS similar_artist_id, t.similarity, "
    "?::VARCHAR AS model_version, 'ratings' AS artist_source, 'ratings' AS similar_artist_source",
}


@dataclass(frozen=True)
class _Data:
    """What a Spark step works on: its session, its folder, the interactions it reads (by
    part of the evaluation split, "all" for all of them) and the matrix's shape."""

    session: Any
    workdir: Path
    parts: dict[str, Any]
    shape: tuple[int, int]


@dataclass
class SparkTuner:
    data: _Data
    feedback: Feedback
    n_folds: int
    seed: int
    ranked_users: int
    regularization_scale: float
    searches_item_knn: bool = False

    def cross_validate(
        self, model: str, base, space: tuning.SearchSpace, **search: Any
    ) -> tuning.SearchResult:
        return cross_validate_spark(
            self.data.session,
            self.data.parts["train"],
            self.data.shape,
            base,
            space,
            self.data.workdir / model,
            self.feedback,
            n_folds=self.n_folds,
            seed=self.seed,
            max_ranked_users=self.ranked_users,
            **search,
        )

    def choose_blend(self, ranking, rating, weights) -> None:
        return None  # Spark's lists are the ranking model's own


class SparkBackend:
    name = Backend.spark

    def __init__(self, workspace: Workspace):
        self._workspace = workspace

    @contextmanager
    def _data(self, connect: Connect, feedback: Feedback, parts: list[str]) -> Iterator[_Data]:
        """``parts`` of the interactions ("train", "test", "all") exported as Parquet for
        Spark to read; the warehouse connection is closed again before Spark works."""
        with self._workspace() as (session, workdir):
            with connect() as con:
                folders = {
                    part: export_interactions(
                        con, feedback, workdir / part, None if part == "all" else part
                    )
                    for part in parts
                }
                shape = (
                    scalar(con, "SELECT count(*) FROM user_index"),
                    scalar(con, "SELECT count(*) FROM artist_index"),
                )
            frames = {part: session.read.parquet(path.as_uri()) for part, path in folders.items()}
            yield _Data(session, workdir, frames, shape)

    def hold_out(self, connect: Connect, feedback: Feedback, test_share: float, seed: int) -> int:
        with self._data(connect, feedback, ["all"]) as data:
            interactions = data.parts["all"]
            split = hold_out(interactions, test_share, seed=seed)
            written = data.workdir / "split"
            split.frame.select("user_idx", "item_idx", "part").write.parquet(written.as_uri())
            with connect() as con:
                rows = publish_split(con, written)
            # what the split left out is the cold held-out rows: counted from Parquet's
            # footers, not by a second pass of Spark over the hashes and windows
            return interactions.count() - rows

    @contextmanager
    def tuning(
        self, connect: Connect, feedback: Feedback, n_folds: int, seed: int, ranked_users: int
    ) -> Iterator[SparkTuner]:
        with connect() as con:
            parts = split_counts(con)
        users_per_interaction = parts["users_with_train_rows"] / max(parts["train"], 1)
        with self._data(connect, feedback, ["train"]) as data:
            yield SparkTuner(data, feedback, n_folds, seed, ranked_users, users_per_interaction)

    def train(
        self,
        connect: Connect,
        chosen: promotion.CandidateSettings,
        ids: tuple[np.ndarray, np.ndarray],
        champion: promotion.Champion | None,
        ranked_users: int,
        seed: int,
    ) -> tuple[promotion.CandidateReport, ModelPair]:
        with self._data(connect, chosen.feedback, ["train", "test", "all"]) as data:
            report = evaluate_spark_candidate(
                data.session,
                chosen,
                data.parts["train"],
                data.parts["test"],
                ids,
                champion,
                data.workdir / "evaluation",
                max_ranked_users=ranked_users,
                seed=seed,
            )
            serving = ModelPair(
                **{
                    role: _fit_all(data, role, params).to_factor_model()
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
    ) -> int:
        models = ModelPair.load(champion, "factors")
        with self._workspace() as (session, workdir):
            with connect() as con:
                seen = export_interactions(con, models.feedback, workdir / "interactions")
            stored = spark_tables.stored_models(models, workdir / "models")
            seen = session.read.parquet(seen.as_uri())
            if table == "user_recommendations":
                rows = spark_tables.user_recommendations(session, stored, seen, top_n)
            elif table == "artist_top_users":
                rows = spark_tables.artist_top_users(session, stored, seen, top_n)
            else:
                rows = spark_tables.similar_artists(session, stored, seen, top_n)
            written = workdir / table
            rows.write.parquet(written.as_uri())
            built = {"user_recommendations": 2, "artist_top_users": 1}.get(table, 0)
            params = [version] + [created_at] * built
            with connect() as con:
                published = publish_top_n(con, table, written, _SELECT[table], params)
                con.execute(serving_tables.NAMED_VIEWS[table])
        return published


def _fit_all(data: _Data, role: str, params: TrainingParams):
    return fit_frame(data.session, data.parts["all"], params, data.workdir / role, *data.shape)
