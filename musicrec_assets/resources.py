"""Resources: where musicrec keeps its files, and the clients that read and write them."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

REPO_ROOT = Path(__file__).resolve().parents[1]


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


def warehouse_resource(home: Path) -> DuckDBResource:
    return DuckDBResource(database=str(home / "warehouse.duckdb"))
