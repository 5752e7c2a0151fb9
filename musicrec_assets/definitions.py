"""The Dagster code location: every asset, check, resource, sensor and schedule of musicrec."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from musicrec_assets.assets.ingest import artists, ratings, users
from musicrec_assets.checks import ingest_checks
from musicrec_assets.resources import MusicrecHome, default_home, warehouse_resource


def build_definitions(home: Path) -> dg.Definitions:
    """Definitions bound to one ``MUSICREC_HOME`` (tests pass a temporary folder)."""
    return dg.Definitions(
        assets=[users, artists, ratings],
        asset_checks=ingest_checks,
        resources={
            "home": MusicrecHome(path=str(home)),
            "duckdb": warehouse_resource(home),
        },
    )


defs = build_definitions(default_home())
