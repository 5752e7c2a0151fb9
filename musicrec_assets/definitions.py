"""The Dagster code location: every asset, check, resource, sensor and schedule of musicrec."""

from __future__ import annotations

import json
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
            "settings": settings or ModelSettings(**_settings_from_environment()),
            "spark": SparkResource(),
        },
    )


def _settings_from_environment() -> dict:
    """The settings of the daemon's runs, which take no run config (the sensors', the
    schedule's): ``MUSICREC_SETTINGS``, a JSON object of ``ModelSettings`` fields, where set."""
    text = os.environ.get("MUSICREC_SETTINGS")
    return json.loads(text) if text else {}


defs = build_definitions(Home.from_env().root)
