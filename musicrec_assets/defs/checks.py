"""Asset checks: data quality of the warehouse tables."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from musicrec_assets.defs.ingest.assets import artists, ratings, users
from musicrec_assets.defs.training.assets import als_model
from musicrec_assets.warehouse.tables import scalar


def _count(duckdb: DuckDBResource, query: str) -> int:
    with duckdb.get_connection() as con:
        return scalar(con, query)


def _zero(name: str, count: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=count == 0, metadata={name: count})


@dg.asset_check(asset=users, description="Every user id appears once.", blocking=True)
def users_id_unique(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    query = "SELECT count(*) FROM (SELECT id FROM users GROUP BY id HAVING count(*) > 1)"
    return _zero("duplicated_ids", _count(duckdb, query))


@dg.asset_check(asset=artists, description="Every artist id appears once.", blocking=True)
def artists_id_unique(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    query = "SELECT count(*) FROM (SELECT id FROM artists GROUP BY id HAVING count(*) > 1)"
    return _zero("duplicated_ids", _count(duckdb, query))


@dg.asset_check(asset=ratings, description="One rating per (user, artist).", blocking=True)
def ratings_key_unique(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    query = """SELECT count(*) FROM (SELECT user_id, artist_id FROM ratings
               GROUP BY ALL HAVING count(*) > 1)"""
    return _zero("duplicated_pairs", _count(duckdb, query))


@dg.asset_check(
    asset=ratings, description="Ratings within 0.5–5.0, plays not negative.", blocking=True
)
def ratings_in_range(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    query = """SELECT count(*) FROM ratings
               WHERE rating NOT BETWEEN 0.5 AND 5.0 OR plays < 0
                  OR (rating IS NULL AND plays IS NULL)"""
    return _zero("out_of_range", _count(duckdb, query))


@dg.asset_check(
    asset=ratings, description="Every rating points at a known user and artist.", blocking=True
)
def ratings_no_dangling_ids(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    query = """SELECT count(*) FROM ratings r
               WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id)
                  OR NOT EXISTS (SELECT 1 FROM artists a WHERE a.id = r.artist_id)"""
    return _zero("dangling", _count(duckdb, query))


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
        read, rejected = con.execute(
            "SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0) "
            "FROM ingested_files"
        ).fetchall()[0]
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


@dg.asset_check(
    asset=als_model,
    blocking=True,
    description="The newest model beats every baseline on the held-out part (RMSE for ratings, "
    "NDCG@10 for play counts); the recommendation tables are not rebuilt otherwise.",
)
def als_model_beats_baselines(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        scores = con.execute(
            """
            WITH newest AS (SELECT model_version, feedback FROM model_metrics
                            ORDER BY trained_at DESC LIMIT 1)
            SELECT m.model, m.value, n.feedback
            FROM model_metrics m JOIN newest n USING (model_version)
            WHERE m.metric = CASE n.feedback WHEN 'explicit' THEN 'rmse' ELSE 'ndcg_at_10' END
            """
        ).fetchall()
    feedback = scores[0][2]
    values = {model: value for model, value, _ in scores}
    model_score = values.pop("als")
    higher_is_better = feedback == "implicit"
    beaten = all(
        (model_score > v) if higher_is_better else (model_score < v) for v in values.values()
    )
    return dg.AssetCheckResult(
        passed=beaten,
        metadata={"metric": "ndcg_at_10" if higher_is_better else "rmse", "als": model_score}
        | {f"baseline_{name}": value for name, value in values.items()},
    )


model_checks = [als_model_beats_baselines]
