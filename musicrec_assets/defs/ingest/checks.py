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


def _files_ingested_by(context: dg.AssetCheckExecutionContext) -> list[dict]:
    """The landing files this run ingested, every kind, as its ingest steps' ``files`` tables
    list them (file, rows_read, rows_accepted, rows_rejected)."""
    files = []
    for asset in (users, artists, ratings):
        event = context.instance.get_latest_materialization_event(asset.key)
        if event is None or event.run_id != context.run.run_id:
            continue
        table = event.asset_materialization.metadata.get("files")
        files += [record.data for record in table.records] if table is not None else []
    return files


@dg.asset_check(
    asset=ratings,
    description="Each landing file this run ingested (all kinds), judged alone: warns when one "
    "had more than the configured share of its rows rejected, and names the worst.",
)
def rejected_share_below_threshold(
    context: dg.AssetCheckExecutionContext, config: RejectedShareConfig
) -> dg.AssetCheckResult:
    # each file on its own: a bad file among thousands of good rows is still a bad file
    files = _files_ingested_by(context)
    if not files:
        return dg.AssetCheckResult(passed=True, metadata={"files_ingested": 0})
    read = sum(f["rows_read"] for f in files)
    rejected = sum(f["rows_rejected"] for f in files)
    worst = max(files, key=lambda f: f["rows_rejected"] / max(f["rows_read"], 1))
    worst_share = worst["rows_rejected"] / max(worst["rows_read"], 1)
    passed = worst_share <= config.max_rejected_share
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if passed
        else f"{worst['file']}: {worst['rows_rejected']} of {worst['rows_read']} rows rejected",
        metadata={
            "files_ingested": len(files),
            "rows_read": read,
            "rows_rejected": rejected,
            "rejected_share": round(rejected / read, 4) if read else 0.0,
            "worst_file": worst["file"],
            "worst_file_rejected_share": round(worst_share, 4),
        },
    )


ingest_checks = [
    users_id_unique,
    artists_id_unique,
    ratings_key_unique,
    ratings_in_range,
    ratings_no_dangling_ids,
    rejected_share_below_threshold,
]
