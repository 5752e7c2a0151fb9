"""Resources: where musicrec keeps its files, and the clients that read and write them."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

REPO_ROOT = Path(__file__).resolve().parents[2]


def default_home() -> Path:
    """``MUSICREC_HOME``, or ``.musicrec/`` at the repository root."""
    return Path(os.environ.get("MUSICREC_HOME") or REPO_ROOT / ".musicrec").resolve()


class MusicrecHome(dg.ConfigurableResource):
    """The one folder that holds the warehouse, the MLflow store and the landing folder."""

    path: str

    @property
    def root(self) -> Path:
        return Path(self.path)

    @property
    def landing_dir(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"


class WarehouseResource(DuckDBResource):
    """``DuckDBResource`` that also closes its connection when the step fails, so a failed
    step leaves no open handle that would keep the file locked or in one configuration."""

    @contextmanager
    def get_connection(self):
        with super().get_connection() as connection:
            try:
                yield connection
            finally:
                connection.close()


def warehouse_resource(home: Path) -> WarehouseResource:
    # no replacement scans: a missing table must be an error, never a Python variable's data
    return WarehouseResource(
        database=str(home / "warehouse.duckdb"),
        connection_config={"python_enable_replacements": False},
    )


class MlflowTracking(dg.ConfigurableResource):
    """Owns MLflow's tracking URI: the sqlite store and artifacts under MUSICREC_HOME."""

    home: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # import here: MLflow is slow to import and only training steps need it
        from musicrec_assets.tracking import registry as tracking

        self._experiment_id = tracking.configure(Path(self.home))

    @property
    def experiment_id(self) -> str:
        return self._experiment_id

    @property
    def tracking_uri(self) -> str:
        from musicrec_assets.tracking import registry as tracking

        return tracking.tracking_uri(Path(self.home))


class ModelSettings(dg.ConfigurableResource):
    """How models are trained and served; shared by every training and serving asset."""

    feedback: str = "auto"  # auto | explicit | implicit
    seed: int = 42
    iterations: int = 15
    n_folds: int = 3
    test_share: float = 0.2
    backend: str = "local"  # local | spark: who fits ALS in tuning and training
    top_n: int = 10
    # ranking metrics average over at most this many held-out users (a seeded sample, the
    # same for every model compared); 0 ranks them all
    ranked_users: int = 10_000
    # the retrain sensor ignores ingest runs that brought fewer new ratings than this
    min_new_ratings: int = 1
    # tuning grid; empty lists take the defaults for the feedback kind
    ranks: list[int] = []
    regularizations: list[float] = []
    alphas: list[float] = []
    confidences: list[str] = []


class SparkResource(dg.ConfigurableResource):
    """A Spark session for ``backend: spark``; started only by the steps that train on it.

    ``master`` is ``local[*]`` by default; point it at a cluster (``spark://host:7077``,
    ``yarn``, …) and keep ``MUSICREC_HOME`` on storage the executors can read.
    """

    master: str = "local[*]"
    driver_memory: str = "4g"
    conf: dict[str, str] = {}

    @contextmanager
    def session(self):
        from musicrec_assets.model.spark_als import spark_session

        with spark_session(self.master, self.driver_memory, self.conf) as spark:
            yield spark
