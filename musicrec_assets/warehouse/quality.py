"""Data-quality counts over the ingested tables; each is 0 on a healthy warehouse."""

from __future__ import annotations

import duckdb

from musicrec_assets.model.factors import Feedback
from musicrec_assets.warehouse.interactions import VALUE_COLUMN
from musicrec_assets.warehouse.tables import columns, scalar


def duplicated_ids(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Ids of ``users`` or ``artists`` stored more than once."""
    if table not in ("users", "artists"):
        raise ValueError(f"no id column check for {table!r}")
    return scalar(
        con, f"SELECT count(*) FROM (SELECT id FROM {table} GROUP BY id HAVING count(*) > 1)"
    )


def duplicated_rating_pairs(con: duckdb.DuckDBPyConnection) -> int:
    """(user, artist) pairs with more than one rating."""
    return scalar(
        con,
        """SELECT count(*) FROM (SELECT user_id, artist_id FROM ratings
           GROUP BY ALL HAVING count(*) > 1)""",
    )


def ratings_out_of_range(con: duckdb.DuckDBPyConnection) -> int:
    """Ratings outside 0.5–5.0, negative plays, or rows with neither."""
    return scalar(
        con,
        """SELECT count(*) FROM ratings
           WHERE rating NOT BETWEEN 0.5 AND 5.0 OR plays < 0
              OR (rating IS NULL AND plays IS NULL)""",
    )


def dangling_ratings(con: duckdb.DuckDBPyConnection) -> int:
    """Ratings whose user or artist is not in ``users`` / ``artists``."""
    return scalar(
        con,
        """SELECT count(*) FROM ratings r
           WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.user_id)
              OR NOT EXISTS (SELECT 1 FROM artists a WHERE a.id = r.artist_id)""",
    )


# The published tables come from the champion, which may be older than the newest data (a
# retrain that did not beat it leaves them): judge them against the users and artists of its
# factor tables (their ranking rows: one per id; the trained artists, which the lists hold) and
# the ratings stored when it was trained.
_CHAMPION_RATINGS = """
WITH user_ids AS (SELECT user_id FROM user_factors WHERE model = 'ranking'),
     artist_ids AS (SELECT artist_id FROM artist_factors WHERE model = 'ranking'{trained}),
     trained AS (SELECT max(trained_at) AS trained_at FROM model_metrics
                 WHERE model_version = (SELECT any_value(model_version) FROM user_factors)),
     champion_ratings AS (
         SELECT r.user_id, r.artist_id FROM ratings r JOIN artist_ids USING (artist_id)
         WHERE r.{value} IS NOT NULL AND r.ingested_at <= (SELECT trained_at FROM trained))"""


def _champion_ratings(con: duckdb.DuckDBPyConnection, feedback: Feedback) -> str:
    """:data:`_CHAMPION_RATINGS` for ``con``'s tables: an ``artist_factors`` from before the
    artists placed by their tags has no ``source``, and holds trained artists alone."""
    trained = " AND source = 'ratings'" if "source" in columns(con, "artist_factors") else ""
    return _CHAMPION_RATINGS.format(value=VALUE_COLUMN[feedback], trained=trained)


def users_short_of_recommendations(
    con: duckdb.DuckDBPyConnection, n: int, feedback: Feedback
) -> int:
    """The champion's users with fewer than ``n`` recommendations although its catalogue
    holds at least ``n`` artists they had not rated."""
    return scalar(
        con,
        _champion_ratings(con, feedback)
        + """,
     rated AS (SELECT user_id, count(*) AS n_rated FROM champion_ratings GROUP BY ALL),
     listed AS (SELECT user_id, count(*) AS n_listed FROM user_recommendations GROUP BY ALL)
SELECT count(*) FROM user_ids LEFT JOIN rated USING (user_id) LEFT JOIN listed USING (user_id)
WHERE coalesce(n_listed, 0)
      < least(?, (SELECT count(*) FROM artist_ids) - coalesce(n_rated, 0))""",
        [n],
    )


def recommended_but_rated(con: duckdb.DuckDBPyConnection, feedback: Feedback) -> int:
    """Recommendations of an artist the user had rated (or played) when the champion was
    trained."""
    return scalar(
        con,
        _champion_ratings(con, feedback)
        + """
SELECT count(*) FROM user_recommendations JOIN champion_ratings USING (user_id, artist_id)""",
    )


def wrong_predicted_ratings(con: duckdb.DuckDBPyConnection, feedback: Feedback) -> int:
    """Recommendations whose ``predicted_rating`` is missing or not finite (ratings), or
    present at all (play counts: nothing predicts ratings there)."""
    if feedback == "implicit":
        return scalar(
            con, "SELECT count(*) FROM user_recommendations WHERE predicted_rating IS NOT NULL"
        )
    return scalar(
        con,
        """SELECT count(*) FROM user_recommendations
           WHERE predicted_rating IS NULL OR NOT isfinite(predicted_rating)""",
    )


SCORE_COLUMN = {
    "user_recommendations": "score",
    "artist_top_users": "score",
    "similar_artists": "similarity",
}


def non_finite_scores(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """Rows of a top-N table whose score (or similarity) is NaN or infinite."""
    return scalar(con, f"SELECT count(*) FROM {table} WHERE NOT isfinite({SCORE_COLUMN[table]})")


def model_versions(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """How many model versions the rows of a published table come from (1 when healthy)."""
    if table not in (*SCORE_COLUMN, "user_factors", "artist_factors"):
        raise ValueError(f"no model_version check for {table!r}")
    return scalar(con, f"SELECT count(DISTINCT model_version) FROM {table}")
