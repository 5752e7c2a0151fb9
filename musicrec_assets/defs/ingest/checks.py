"""Asset checks on the ingested tables: the blocking ones keep bad data away from training."""

from collections.abc import Callable

import dagster as dg
from dagster_duckdb import DuckDBResource

from musicrec_assets.defs.ingest.assets import artists, ratings, users
from musicrec_assets.warehouse import quality


def _zero(duckdb: DuckDBResource, name: str, count: Callable) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        found = count(con)
    return dg.AssetCheckResult(passed=found == 0, metadata={name: found})


@dg.asset_check(asset=users, description="Every user id appears once.", blocking=True)
def users_id_unique(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    return _zero(duckdb, "duplicated_ids", lambda con: quality.duplicated_ids(con, "users"))


@dg.asset_check(asset=artists, description="Every artist id appears once.", blocking=True)
def artists_id_unique(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    return _zero(duckdb, "duplicated_ids", lambda con: quality.duplicated_ids(con, "artists"))


@dg.asset_check(asset=ratings, description="One rating per (user, artist).", blocking=True)
def ratings_key_unique(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    return _zero(duckdb, "duplicated_pairs", quality.duplicated_rating_pairs)


@dg.asset_check(
    asset=ratings, description="Ratings within 0.5–5.0, plays not negative.", blocking=True
)
def ratings_in_range(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    return _zero(duckdb, "out_of_range", quality.ratings_out_of_range)


@dg.asset_check(
    asset=ratings, description="Every rating points at a known user and artist.", blocking=True
)
def ratings_no_dangling_ids(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    return _zero(duckdb, "dangling", quality.dangling_ratings)


class RejectedShareConfig(dg.Config):
    max_rejected_share: float = 0.05


@dg.asset_check(
    asset=ratings,
    description="Share of ingested rows (all files, all kinds) that were rejected; warns above "
    "the configured threshold.",
)
def rejected_share_below_threshold(
    config: RejectedShareConfig, duckdb: DuckDBResource
) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        read, rejected = quality.ingested_and_rejected(con)
    share = rejected / read if read else 0.0
    return dg.AssetCheckResult(
        passed=share <= config.max_rejected_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rows_read": read, "rows_rejected": rejected, "rejected_share": share},
    )


ingest_checks = [
    users_id_unique,
    artists_id_unique,
    ratings_key_unique,
    ratings_in_range,
    ratings_no_dangling_ids,
    rejected_share_below_threshold,
]
