"""Asset checks on the published recommendation tables: what a listener would notice first."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from musicrec_assets.defs.resources import ModelSettings
from musicrec_assets.defs.serving.assets import (
    artist_top_users,
    similar_artists,
    user_recommendations,
)
from musicrec_assets.warehouse import quality
from musicrec_assets.warehouse.interactions import resolve_feedback


@dg.asset_check(
    asset=user_recommendations,
    description="Every user the champion knows gets top_n artists they had not rated (fewer "
    "only when fewer are left), each with a finite score and, for ratings, a finite predicted "
    "rating (none for play counts).",
)
def every_user_gets_unrated_recommendations(
    duckdb: DuckDBResource, settings: ModelSettings
) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        feedback = resolve_feedback(con, settings.feedback)
        found = {
            "users_short_of_recommendations": quality.users_short_of_recommendations(
                con, settings.top_n, feedback
            ),
            "recommended_but_rated": quality.recommended_but_rated(con, feedback),
            "non_finite_scores": quality.non_finite_scores(con, "user_recommendations"),
            "wrong_predicted_ratings": quality.wrong_predicted_ratings(con, feedback),
        }
    return dg.AssetCheckResult(passed=not any(found.values()), metadata=found)


def _one_model_version(table: str, asset) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name=f"{table}_from_one_model_version",
        description=f"Every row of `{table}` comes from the same registered model version"
        + (", with a finite score." if table in quality.SCORE_COLUMN else "."),
    )
    def check(duckdb: DuckDBResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            found = {"model_versions": quality.model_versions(con, table)}
            if table in quality.SCORE_COLUMN:
                found["non_finite_scores"] = quality.non_finite_scores(con, table)
        healthy = found["model_versions"] == 1 and not found.get("non_finite_scores")
        return dg.AssetCheckResult(passed=healthy, metadata=found)

    return check


serving_checks = [
    every_user_gets_unrated_recommendations,
    *(
        _one_model_version(table, asset)
        for table, asset in (
            ("user_recommendations", user_recommendations),
            ("artist_top_users", artist_top_users),
            ("similar_artists", similar_artists),
            ("user_factors", dg.AssetKey("user_factors")),
            ("artist_factors", dg.AssetKey("artist_factors")),
        )
    ),
]
