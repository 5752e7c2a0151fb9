"""Serving assets: recommendation tables in the warehouse, computed from the champion model.

Every table is built under a staging name and swapped in with one transaction, and every row
carries the MLflow registered ``model_version`` that made it.
"""

from datetime import UTC, datetime

import dagster as dg
from dagster_duckdb import DuckDBResource

from musicrec_assets.backends.local import LocalBackend
from musicrec_assets.defs.metadata import frame_table, names_not_ids, table_metadata
from musicrec_assets.defs.resources import (
    MlflowTracking,
    ModelSettings,
    MusicrecHome,
    SparkResource,
    backend_of,
)
from musicrec_assets.defs.training.assets import als_model
from musicrec_assets.model.factors import ModelPair
from musicrec_assets.model.tag_mapping import TagFactors
from musicrec_assets.serving import tables
from musicrec_assets.serving.placed import PlacedArtists
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
# the tables that list the artists the champion placed by their tags beside the trained ones:
# they read them from its files, as artist_factors publishes them, and come after it
_WITH_PLACED = {**_COMMON, "deps": [als_model, dg.AssetKey("artist_factors")]}
# the lists' check judges them against the champion's users and artists, which the factor
# tables hold: published first, or the check reads the previous champion's (none on a first run)
_CHECKED_AGAINST_FACTORS = {
    **_COMMON,
    "deps": [als_model, dg.AssetKey("user_factors"), dg.AssetKey("artist_factors")],
}
# every serving asset takes `mlflow_tracking`: its set-up points MLflow at the home's store


@dg.asset(
    **_CHECKED_AGAINST_FACTORS,
    description="Top-N artists per user (already-rated artists excluded; what Spark's ALS "
    "calls `recommendForAllUsers`), ordered by the ranking model: `user_recommendations(user_id, "
    "rank, artist_id, score, predicted_rating, model_version, created_at)` (`score` orders the "
    "list: the ranking model's, for ratings standardised per listener plus w × the predicted "
    "rating, w chosen by cross-validation; `predicted_rating` the rating model's prediction, NULL "
    "for play counts), and the view `user_recommendations_named`.",
)
def user_recommendations(
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    spark: SparkResource,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    version, rows = _publish(duckdb, settings, spark, home, "user_recommendations")
    with duckdb.get_connection() as con:
        coverage = serving_tables.catalogue_coverage(con, "user_recommendations", "artist_id")
        return _published(
            con, "user_recommendations", rows, version, catalogue_coverage=round(coverage, 4)
        )


@dg.asset(
    **_WITH_PLACED,
    description="Top-N users per artist by the ranking model, who to promote an artist to (its "
    "current listeners excluded; Spark's `recommendForAllItems`): `artist_top_users("
    "artist_id, rank, user_id, score, model_version, source, refreshed_at)`, `source` `tags` "
    "for an artist nobody had rated, placed by its tags (`artist_factors`), and the view "
    "`artist_top_users_named` (with the artist's `top_tags`).",
)
def artist_top_users(
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    spark: SparkResource,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    version, rows = _publish(duckdb, settings, spark, home, "artist_top_users")
    with duckdb.get_connection() as con:
        return _published(con, "artist_top_users", rows, version)


@dg.asset(
    **_WITH_PLACED,
    description="Most similar artists by cosine similarity of their ranking-model factors: "
    "`similar_artists(artist_id, rank, similar_artist_id, similarity, model_version, "
    "artist_source, similar_artist_source)`, each source `ratings` or `tags` as in "
    "`artist_factors` (an artist placed by its tags has trained neighbours, and is a neighbour "
    "of trained artists); the view `similar_artists_named` (with both artists' top tags).",
)
def similar_artists(
    duckdb: DuckDBResource,
    settings: ModelSettings,
    mlflow_tracking: MlflowTracking,
    spark: SparkResource,
    home: MusicrecHome,
) -> dg.MaterializeResult:
    version, rows = _publish(duckdb, settings, spark, home, "similar_artists")
    with duckdb.get_connection() as con:
        return _published(con, "similar_artists", rows, version)


def _publish(
    duckdb: DuckDBResource,
    settings: ModelSettings,
    spark: SparkResource,
    home: MusicrecHome,
    table: str,
) -> tuple[str, int]:
    """Compute ``table`` from the champion on the settings' backend and publish it; returns
    (the champion's version, rows).

    Where the champion placed artists by their tags, ``artist_top_users`` and
    ``similar_artists`` rank them beside the trained ones locally, on either backend."""
    version, folder = registry.champion_files(home.layout.root)
    created_at = datetime.now(UTC).replace(tzinfo=None)
    placed = None if table == "user_recommendations" else PlacedArtists.of_version(folder)
    if placed is None:
        rows = backend_of(settings, spark, home).publish_top_n(
            duckdb.get_connection, table, folder, version, settings.top_n, created_at
        )
    else:
        rows = LocalBackend().publish_top_n(
            duckdb.get_connection, table, folder, version, settings.top_n, created_at, placed
        )
    return version, rows


def _published(con, table: str, rows: int, version: str, **numbers) -> dg.MaterializeResult:
    """What the UI shows of a recommendation table: schema, row count, version, a preview."""
    preview = serving_tables.preview(con, table)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(con, table, rows),
            "model_version": version,
            **numbers,
            "preview": frame_table(names_not_ids(preview), digits=3),
        }
    )


_FACTOR_SPEC = {key: _COMMON[key] for key in ("group_name", "owners", "tags", "kinds", "deps")}


@dg.multi_asset(
    name="factor_tables",
    pool=_COMMON["pool"],
    specs=[
        dg.AssetSpec(
            "user_factors",
            **_FACTOR_SPEC,
            description="`user_factors(user_id, model, factors FLOAT[k], model_version)`: the "
            "champion's user vectors of each model (`ranking`, and for ratings `rating` and, "
            "where the lists blend in the predicted rating, `list`), biases folded in and "
            "zero-padded to one width, so that `array_inner_product(u.factors, a.factors)` with "
            "the same model's `artist_factors` row is its score for any pair: the ranking "
            "score, the predicted rating, or the `score` of `user_recommendations`.",
        ),
        dg.AssetSpec(
            "artist_factors",
            **_FACTOR_SPEC,
            description="`artist_factors(artist_id, model, factors FLOAT[k], model_version, "
            "source)`: the champion's artist vectors of each model, biases folded in (see "
            "`user_factors`); `source` is `ratings` (trained) or `tags` (an artist nobody had "
            "rated, placed by the mapping of its tags, published only when the mapping beats "
            "tag popularity and the mean artist on the champion's own data).",
        ),
    ],
)
def factor_tables(duckdb: DuckDBResource, mlflow_tracking: MlflowTracking, home: MusicrecHome):
    version, folder = registry.champion_files(home.layout.root)
    pair = ModelPair.load(folder, "factors")
    models, ranking = pair.published_models(), pair.ranking
    # the artists known only by their tags that the champion placed when it was trained
    cold = TagFactors.load(folder)
    vectors = {
        "user_factors": tables.factors(
            ranking.user_ids,
            "user_id",
            {role: model.user_vectors() for role, model in models.items()},
            version,
        ),
        "artist_factors": tables.artist_factors(
            ranking.item_ids,
            {role: model.item_vectors() for role, model in models.items()},
            version,
            cold,
        ),
    }
    with duckdb.get_connection() as con:
        for table, frame in vectors.items():  # Arrow tables
            rows = publish_table(con, table, [frame])
            yield dg.MaterializeResult(
                asset_key=table,
                metadata={
                    **table_metadata(con, table, rows),
                    "model_version": version,
                    "width": frame.schema.field("factors").type.list_size,
                    **(_tag_metadata(cold) if table == "artist_factors" else {}),
                },
            )


def _tag_metadata(cold) -> dict:
    """What the artist_factors page says of the artists placed by their tags."""
    if cold is None:
        return {"from_tags": "no artist had tags when the champion was trained"}
    ids, result = cold
    metadata = {"from_tags": result.reason, "artists_from_tags": len(ids) if result.passed else 0}
    if result.passed:
        metadata["their audiences ranked by"] = (
            "each user's score in units of their spread (it ranked the protocol's held-out "
            "artists' listeners higher)"
            if result.audience_by_spread
            else "the ranking score"
        )
    for name, margin in result.margins.items():
        metadata[f"gate: {name} (standard errors)"] = float(margin)
    for task, by_method in result.scores.items():
        for method, scores in by_method.items():
            metadata[f"cold ({task}) {method} AUC"] = float(scores["auc"])
            metadata[f"cold ({task}) {method} NDCG@10"] = float(scores["ndcg_at_10"])
    return metadata
