"""The serving tables' quality counts on hand-made tables, where a case is easier to make than
in a real run."""

import duckdb
import pytest

from musicrec_assets.warehouse import quality
from musicrec_assets.warehouse.tables import ensure_schema


@pytest.mark.parametrize("placed_artists", [False, True])
def test_a_user_short_of_artists_only_by_placed_ones_is_not_short(placed_artists):
    # a champion of three trained artists (and two placed by their tags, which no list holds):
    # its user rated one, so two are left for a list of five, and the list holds both
    con = duckdb.connect()
    ensure_schema(con)
    con.execute(
        """CREATE TABLE user_factors AS
               SELECT 'u' AS user_id, 'ranking' AS model, '1' AS model_version;
           CREATE TABLE artist_factors AS
               SELECT * FROM (VALUES ('a1', 'ratings'), ('a2', 'ratings'), ('a3', 'ratings'))
                   AS t(artist_id, source);
           CREATE TABLE model_metrics AS
               SELECT '1' AS model_version, TIMESTAMP '2026-01-02' AS trained_at;
           INSERT INTO ratings VALUES ('u', 'a1', 4.0, NULL, NULL, 'f', TIMESTAMP '2026-01-01');
           CREATE TABLE user_recommendations AS
               SELECT 'u' AS user_id, * FROM (VALUES ('a2'), ('a3')) AS t(artist_id)"""
    )
    con.execute("ALTER TABLE artist_factors ADD COLUMN model VARCHAR DEFAULT 'ranking'")
    if placed_artists:
        con.execute(
            "INSERT INTO artist_factors VALUES ('n1', 'tags', 'ranking'), ('n2', 'tags', 'ranking')"
        )
    assert quality.users_short_of_recommendations(con, 5, "explicit") == 0
    # one list row fewer than the trained artists allow is short
    con.execute("DELETE FROM user_recommendations WHERE artist_id = 'a3'")
    assert quality.users_short_of_recommendations(con, 5, "explicit") == 1
