"""Serving assets: recommendation tables in the warehouse, computed from the champion model.

Every table is built under a staging name and swapped in with one transaction, and every row
carries the MLflow registered ``model_version`` that made it.
"""

from datetime import UTC, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from musicrec_assets.defs.resources import MlflowTracking, ModelSettings, MusicrecHome
from musicrec_assets.defs.training.assets import als_model
from musicrec_assets.serving import tables
from musicrec_assets.tracking import registry
from musicrec_assets.warehouse import serving_tables
from musicrec_assets.warehouse.tables import publish_table

_COMMON = {
    "group_name": "serving",
    "owners": ["team:musicrec"],
    "tags": {"layer": "serving"},
    "pool": "duckdb",
    "kinds": {"duckdb", "numpy"},
    "deps": [als_model],
}
# every serving asset takes `mlflow_tracking`: its set-up points MLflow at the home's store


@dg.asset(
    **_COMMON,
    description="Top-N artists per user (already-rated artists excluded), the seed's "
    "`recommendForAllUsers`: `user_recommendations(user_id, rank, artist_id, score, "
    "model_version, created_at)`, and the view `user_recommendations_named`.",
)
def user_recommendations(
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    version, recommender = registry.load_champion(home.layout.root)
    created_at = datetime.now(UTC).replace(tzinfo=None)
    chunks = tables.user_recommendations(
        recommender, settings.top_n, {"model_version": version, "created_at": created_at}
    )
    with duckdb.get_connection() as con:
        rows = serving_tables.publish_with_view(con, "user_recommendations", chunks)
        coverage = serving_tables.catalogue_coverage(con, "user_recommendations", "artist_id")
        preview = serving_tables.preview(con, "user_recommendations")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "model_version": version,
            "catalogue_coverage": coverage,
            "preview": dg.MetadataValue.md(preview),
        }
    )


@dg.asset(
    **_COMMON,
    description="Top-N users per artist, who to promote an artist to (its current listeners "
    "excluded), the seed's `recommendForAllItems`: `artist_top_users(artist_id, rank, user_id, "
    "score, model_version)` and the view `artist_top_users_named`.",
)
def artist_top_users(
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    version, recommender = registry.load_champion(home.layout.root)
    chunks = tables.artist_top_users(recommender, settings.top_n, {"model_version": version})
    with duckdb.get_connection() as con:
        rows = serving_tables.publish_with_view(con, "artist_top_users", chunks)
        preview = serving_tables.preview(con, "artist_top_users")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "model_version": version,
            "preview": dg.MetadataValue.md(preview),
        }
    )


@dg.asset(
    **_COMMON,
    description="Most similar artists by cosine similarity of their factors: "
    "`similar_artists(artist_id, rank, similar_artist_id, similarity, model_version)` and the "
    "view `similar_artists_named`.",
)
def similar_artists(
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    version, recommender = registry.load_champion(home.layout.root)
    frame = tables.similar_artists(recommender, settings.top_n, {"model_version": version})
    with duckdb.get_connection() as con:
        rows = serving_tables.publish_with_view(con, "similar_artists", [frame])
        preview = serving_tables.preview(con, "similar_artists")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "model_version": version,
            "preview": dg.MetadataValue.md(preview),
        }
    )


@dg.asset(
    **_COMMON,
    description="`user_factors(user_id, factors FLOAT[k])` and `artist_factors(artist_id, "
    "factors FLOAT[k])`: the champion's vectors, biases folded in, so that "
    "`array_inner_product(u.factors, a.factors)` is the model's score for any pair.",
)
def factor_tables(
    duckdb: DuckDBResource, mlflow_tracking: MlflowTracking, home: MusicrecHome
) -> dg.MaterializeResult:
    version, recommender = registry.load_champion(home.layout.root)
    model = recommender.model
    user_vectors = model.user_vectors()
    with duckdb.get_connection() as con:
        users = publish_table(
            con, "user_factors", [tables.factors(model.user_ids, "user_id", user_vectors, version)]
        )
        artists = publish_table(
            con,
            "artist_factors",
            [tables.factors(model.item_ids, "artist_id", model.item_vectors(), version)],
        )
    return dg.MaterializeResult(
        metadata={
            "user_rows": users,
            "artist_rows": artists,
            "model_version": version,
            "width": int(user_vectors.shape[1]),
        }
    )
