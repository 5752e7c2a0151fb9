"""Resources: where musicrec keeps its files, and the clients that read and write them."""

from __future__ import annotations

import tempfile
from contextlib import contextmanager, suppress
from enum import StrEnum
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt

from musicrec_assets.backends import Backend, TrainingBackend, open_backend
from musicrec_assets.home import Home
from musicrec_assets.warehouse import published


class MusicrecHome(dg.ConfigurableResource):
    """The one folder that holds the warehouse, the MLflow store and the landing folder."""

    path: str

    @property
    def layout(self) -> Home:
        return Home(Path(self.path))


class WarehouseResource(DuckDBResource):
    """The pipeline's working copy of the warehouse (``database``), which no reader opens,
    published as ``published_as`` (the ``warehouse.duckdb`` readers open) after every use: see
    :mod:`musicrec_assets.warehouse.published`. Its connection is closed when the step fails
    too, so a failed step leaves no open handle that would keep the file locked."""

    published_as: str

    @contextmanager
    def get_connection(self):
        working, readers_copy = Path(self.database), Path(self.published_as)
        published.adopt(readers_copy, working)
        working.parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as connection:
            try:
                yield connection
            except BaseException:
                # what the failed step committed is kept and shown; its own error is the news
                with suppress(duckdb.Error, OSError):
                    published.publish(connection, working, readers_copy)
                raise
            else:
                published.publish(connection, working, readers_copy)
            finally:
                connection.close()


def warehouse_resource(home: Home) -> WarehouseResource:
    # no replacement scans: a missing table must be an error, never a Python variable's data
    return WarehouseResource(
        database=str(published.working_copy(home.warehouse)),
        published_as=str(home.warehouse),
        connection_config={"python_enable_replacements": False},
    )


class MlflowTracking(dg.ConfigurableResource):
    """Owns MLflow's tracking URI: the sqlite store and artifacts under MUSICREC_HOME."""

    home: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # import here: MLflow is slow to import and only training steps need it
        from musicrec_assets.tracking import registry

        self._experiment_id = registry.configure(Path(self.home))

    @property
    def experiment_id(self) -> str:
        return self._experiment_id


# member names equal their values, so run config says `feedback: explicit` as the README does
class FeedbackSetting(StrEnum):
    auto = "auto"  # explicit when any rating carries a `rating`, else implicit
    explicit = "explicit"
    implicit = "implicit"


class ModelSettings(dg.ConfigurableResource):
    """How models are trained and served; shared by every training and serving asset."""

    feedback: FeedbackSetting = FeedbackSetting.auto
    seed: int = 42
    iterations: int = Field(default=15, ge=1)
    n_folds: int = Field(default=3, ge=2)
    test_share: float = Field(default=0.2, gt=0.0, lt=1.0)
    backend: Backend = Field(
        default=Backend.local,
        description="where the evaluation split, tuning, training, scoring and the serving "
        "tables are computed: local (in this process) or spark (on the `spark` resource's "
        "master, over Parquet the driver never loads)",
    )
    top_n: int = Field(default=10, ge=1)
    ranked_users: int = Field(
        default=10_000,
        ge=0,
        description="ranking metrics average over at most this many held-out users (a seeded "
        "sample, the same for every model compared); 0 ranks them all",
    )
    min_new_ratings: int = Field(
        default=1,
        ge=0,
        description="the retrain sensor ignores ingest runs that brought fewer new ratings",
    )
    # a tenth: fold-in keeps 94-97% of a retrain's NDCG@10 for the listeners it serves
    # (docs/automation.md), so a retrain's minutes of CPU pay once a drop is a sizeable part of
    # what the champion knows; the daily schedule retrains whatever arrives
    retrain_share: PositiveFloat | None = Field(
        default=0.1,
        description="the retrain sensor retrains when the ratings ingested since the champion "
        "was trained reach this share of the ratings it was trained on, or bring an artist it "
        "was not trained on; smaller drops are served by the fold-in of their listeners at "
        "ingest alone. None (with retrain_ratings None): retrain after every ingest run that "
        "brought min_new_ratings",
    )
    retrain_ratings: PositiveInt | None = Field(
        default=None,
        description="... or when they reach this many ratings, whatever their share",
    )
    tuning_trials: PositiveInt = Field(
        default=30,
        description="the most trials each model's search (ranking, rating, item-kNN) runs",
    )
    tuning_minutes: PositiveFloat = Field(
        default=1.0,
        description="the most minutes each model's search spends; a trial under way finishes",
    )
    # Fixed values instead of a searched range; empty lists search the model's whole range
    # (evaluation/tuning.py). `ranks`, `regularizations`, `bias_regularizations` (and, for play
    # counts, `alphas`, `confidences`) are those of the model of the data's own objective: the
    # rating model of ratings, the ranking model of play counts. `ranking_*` are the ranking
    # model of ratings', `neighbours` and `similarities` item-kNN's (the baseline the ranking
    # model has to beat). A model whose every setting is fixed runs that grid.
    ranks: list[PositiveInt] = []
    regularizations: list[NonNegativeFloat] = []
    bias_regularizations: list[PositiveFloat] = []
    alphas: list[NonNegativeFloat] = []
    confidences: list[str] = []
    ranking_ranks: list[PositiveInt] = []
    ranking_regularizations: list[NonNegativeFloat] = []
    ranking_alphas: list[NonNegativeFloat] = []
    ranking_confidences: list[str] = []
    neighbours: list[PositiveInt] = Field(
        default=[], description="item-kNN's K: how many neighbours each artist keeps"
    )
    similarities: list[str] = []
    blend_weights: list[NonNegativeFloat] = Field(
        default=[],
        description="the weights of the predicted rating in the lists of ratings that "
        "cross-validation chooses from (empty: evaluation/blend.py's WEIGHTS)",
    )
    min_tag_artists: PositiveInt = Field(
        default=2,
        description="tags fewer artists carry are dropped before tags place the artists nobody "
        "has rated (docs/tags.md): a typo or a private label says nothing about anyone else",
    )

    def grid_overrides(self) -> dict[str, list]:
        """The grid of the model of the data's own objective (see above)."""
        return {
            "rank": self.ranks,
            "regularization": self.regularizations,
            "bias_regularization": self.bias_regularizations,
            "alpha": self.alphas,
            "confidence": self.confidences,
        }

    def ranking_grid_overrides(self, feedback: str) -> dict[str, list]:
        """The ranking model's grid: of ratings its own, of play counts :meth:`grid_overrides`."""
        if feedback != "explicit":
            return self.grid_overrides()
        return {
            "rank": self.ranking_ranks,
            "regularization": self.ranking_regularizations,
            "alpha": self.ranking_alphas,
            "confidence": self.ranking_confidences,
        }

    def neighbour_overrides(self) -> dict[str, list]:
        return {"neighbours": self.neighbours, "similarity": self.similarities}


class SparkResource(dg.ConfigurableResource):
    """A Spark session for ``backend: spark``; started only by the steps that train on it.

    ``master`` is ``local[*]`` by default; point it at a cluster (``spark://host:7077``,
    ``yarn``, …) and keep ``MUSICREC_HOME`` on storage the executors can read.
    """

    master: str = Field(
        default="local[*]",
        description="Spark master URL, used when settings.backend is spark: local[*] (threads "
        "in this process), spark://127.0.0.1:7077 (`make spark-cluster`), yarn, …",
    )
    driver_memory: str = Field(
        default="4g", description="JVM heap of the driver (in local mode, of the executors too)"
    )
    conf: dict[str, str] = Field(
        default={},
        description="more Spark settings (e.g. spark.executor.memory); they override musicrec's",
    )

    @contextmanager
    def session(self):
        from musicrec_assets.backends.spark.als import shared_spark_session

        # one session for every step this process runs, stopped when the process exits
        yield shared_spark_session(self.master, self.driver_memory, self.conf)

    @contextmanager
    def workspace(self, root: Path):
        """A session and a fresh folder under ``root`` (``MUSICREC_HOME/spark``, the storage
        executors must share) for one step's Parquet, removed when the step ends."""
        root.mkdir(parents=True, exist_ok=True)
        with self.session() as spark, tempfile.TemporaryDirectory(dir=root, prefix="step-") as work:
            yield spark, Path(work)


def backend_of(
    settings: ModelSettings, spark: SparkResource, home: MusicrecHome
) -> TrainingBackend:
    """The backend the settings name; Spark's steps work under ``MUSICREC_HOME/spark``."""
    return open_backend(settings.backend, lambda: spark.workspace(home.layout.spark))
