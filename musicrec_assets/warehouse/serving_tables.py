"""Publishing the recommendation tables: each swapped in whole, with a view that adds names
and the artists' top tags."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb
import pandas as pd

from musicrec_assets.warehouse.tables import publish_table


def _top_tags(artist_id: str) -> str:
    """SQL of the 5 heaviest tags (fewer where it has fewer; NULL where none) of the artist
    ``artist_id`` names: a correlated subquery, which DuckDB runs on the artists a query
    keeps, not on all of ``artist_tags``."""
    return (
        "(SELECT list(tagged.tag ORDER BY tagged.weight DESC, tagged.tag)[:5] "
        f"FROM artist_tags tagged WHERE tagged.artist_id = {artist_id})"
    )


# one view per table, with user and artist names and the artists' top tags, created beside it
NAMED_VIEWS = {
    "user_recommendations": f"""
CREATE OR REPLACE VIEW user_recommendations_named AS
SELECT r.user_id, nullif(concat_ws(' ', u.first_name, u.last_name), '') AS user_name, r.rank,
       r.artist_id, a.name AS artist_name, r.score, r.predicted_rating, r.model_version,
       r.created_at, r.source, r.refreshed_at, {_top_tags("r.artist_id")} AS top_tags
FROM user_recommendations r
LEFT JOIN users u ON u.id = r.user_id LEFT JOIN artists a ON a.id = r.artist_id""",
    "artist_top_users": f"""
CREATE OR REPLACE VIEW artist_top_users_named AS
SELECT t.artist_id, a.name AS artist_name, t.rank, t.user_id,
       nullif(concat_ws(' ', u.first_name, u.last_name), '') AS user_name, t.score,
       t.model_version, t.source, t.refreshed_at, {_top_tags("t.artist_id")} AS top_tags
FROM artist_top_users t
LEFT JOIN users u ON u.id = t.user_id LEFT JOIN artists a ON a.id = t.artist_id""",
    "similar_artists": f"""
CREATE OR REPLACE VIEW similar_artists_named AS
SELECT s.artist_id, a.name AS artist_name, s.rank, s.similar_artist_id,
       b.name AS similar_artist_name, s.similarity, s.model_version, s.artist_source,
       s.similar_artist_source,
       {_top_tags("s.artist_id")} AS top_tags,
       {_top_tags("s.similar_artist_id")} AS similar_artist_top_tags
FROM similar_artists s
LEFT JOIN artists a ON a.id = s.artist_id LEFT JOIN artists b ON b.id = s.similar_artist_id""",
}
KEY_OF = {
    "user_recommendations": "user_id",
    "artist_top_users": "artist_id",
    "similar_artists": "artist_id",
}


def publish_with_view(con: duckdb.DuckDBPyConnection, table: str, chunks: Iterable) -> int:
    """Publish ``table`` from ``chunks`` and (re)create its ``<table>_named`` view; rows."""
    rows = publish_table(con, table, chunks)
    con.execute(NAMED_VIEWS[table])
    return rows


def catalogue_coverage(con: duckdb.DuckDBPyConnection, table: str, column: str) -> float:
    """Share of the catalogue's artists that appear in ``table.column``."""
    covered, total = con.execute(
        f"SELECT (SELECT count(DISTINCT {column}) FROM {table}), (SELECT count(*) FROM artists)"
    ).fetchall()[0]
    return covered / total if total else 0.0


def preview(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """The first 5 ranks of the first 3 keys of ``table``'s named view."""
    view, key = f"{table}_named", KEY_OF[table]
    frame = con.execute(
        f"SELECT * EXCLUDE (model_version) FROM {view} "
        f"WHERE {key} IN (SELECT DISTINCT {key} FROM {view} ORDER BY {key} LIMIT 3) "
        f"AND rank <= 5 ORDER BY {key}, rank"
    ).df()
    return frame.drop(columns=["created_at", "refreshed_at"], errors="ignore")
