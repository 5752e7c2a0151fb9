"""``MUSICREC_HOME``: the one folder that holds everything a musicrec installation keeps.

Every path under it is named here and nowhere else::

    landing/{users,artists,ratings}/   files to ingest
    warehouse.duckdb                   the warehouse (ingested tables, recommendation tables)
    mlflow.db, mlartifacts/            the MLflow tracking store and its artifacts
    optuna.db                          the tuning studies (Optuna), one per model and tuning
    models/<version>-<run id>/         the champion's files, downloaded once per version
    spark/                             Parquet exchanged with Spark (backend: spark)
    dagster/                           the Dagster instance (runs, event log, sensor cursors)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from musicrec_assets.warehouse.landing import KINDS

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Home:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @classmethod
    def from_env(cls) -> Home:
        """``MUSICREC_HOME``, or ``.musicrec/`` at the repository root."""
        return cls(Path(os.environ.get("MUSICREC_HOME") or REPO_ROOT / ".musicrec"))

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def optuna_db(self) -> Path:
        return self.root / "optuna.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def spark(self) -> Path:
        return self.root / "spark"

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    def create_landing(self) -> None:
        """Create the landing folder with one subfolder per kind of file."""
        for kind in KINDS:
            (self.landing / kind).mkdir(parents=True, exist_ok=True)
