"""Data-quality counts over the ingested tables; each is 0 on a healthy warehouse."""

from __future__ import annotations

import duckdb

from musicrec_assets.warehouse.tables import scalar


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


def ingested_and_rejected(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(rows read, rows rejected) over every ingested file of every kind."""
    read, rejected = con.execute(
        "SELECT coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0) FROM ingested_files"
    ).fetchall()[0]
    return int(read), int(rejected)
