"""The Dagster code location: every asset, check, resource, sensor and schedule of musicrec."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from musicrec_assets.defs.automation import (
    full_job,
    ingest_job,
    landing_sensor,
    retrain_job,
    retrain_schedule,
    retrain_sensor,
)
from musicrec_assets.defs.ingest.assets import artists, ratings, users
from musicrec_assets.defs.ingest.checks import ingest_checks
from musicrec_assets.defs.resources import (
    MlflowTracking,
    ModelSettings,
    MusicrecHome,
    SparkResource,
    warehouse_resource,
)
from musicrec_assets.defs.serving.assets import (
    artist_top_users,
    factor_tables,
    similar_artists,
    user_recommendations,
)
from musicrec_assets.defs.serving.checks import serving_checks
from musicrec_assets.defs.training.assets import (
    als_model,
    als_tuning,
    evaluation_split,
    rating_matrix,
)
from musicrec_assets.home import Home


def build_definitions(home: Path, settings: ModelSettings | None = None) -> dg.Definitions:
    """Definitions bound to one ``MUSICREC_HOME`` (tests pass a temporary folder and settings)."""
    layout = Home(home)
    return dg.Definitions(
        assets=[
            *(users, artists, ratings),
            *(rating_matrix, evaluation_split, als_tuning, als_model),
            *(user_recommendations, artist_top_users, similar_artists, factor_tables),
        ],
        asset_checks=[*ingest_checks, *serving_checks],
        jobs=[ingest_job, retrain_job, full_job],
        sensors=[landing_sensor, retrain_sensor],
        schedules=[retrain_schedule],
        resources={
            "home": MusicrecHome(path=str(layout.root)),
            "duckdb": warehouse_resource(layout),
            "mlflow_tracking": MlflowTracking(home=str(layout.root)),
            "settings": settings or ModelSettings(**_budget_from_environment()),
            "spark": SparkResource(),
        },
    )


def _budget_from_environment() -> dict[str, float]:
    """The daemon's tuning budget, where the environment sets it (``MUSICREC_TUNING_TRIALS``,
    ``MUSICREC_TUNING_MINUTES``): the sensors' and the schedule's runs take no run config."""
    names = {"MUSICREC_TUNING_TRIALS": "tuning_trials", "MUSICREC_TUNING_MINUTES": "tuning_minutes"}
    return {field: float(os.environ[name]) for name, field in names.items() if os.environ.get(name)}


defs = build_definitions(Home.from_env().root)
