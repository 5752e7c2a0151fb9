"""Read-side SQL over the published tables: what the CLI (and any analyst) asks.

Answers come as :class:`Table`, DuckDB's own rows: the command line prints them without
importing pandas, which takes longer to import than a reader may take to answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import duckdb

from musicrec_assets.warehouse.tables import columns, first_line, table_exists

Fetched = TypeVar("Fetched")

# what `musicrec sql` runs: queries (DESCRIBE, SHOW, SUMMARIZE and PIVOT … IN (…) among them),
# EXPLAIN, and PIVOT without IN, which DuckDB runs as a query plus a temporary enum of the
# values. The connection refuses any write anyway (tables.READER_LOCKDOWN); this says so
# before anything runs, and refuses what writes only the session (temporary tables, SET
# VARIABLE, CHECKPOINT)
QUERY_STATEMENTS = {
    duckdb.StatementType.SELECT,
    duckdb.StatementType.EXPLAIN,
    duckdb.StatementType.MULTI,
}


@dataclass(frozen=True)
class Column:
    type: str  # DuckDB's name of it: VARCHAR, INTEGER, DOUBLE, TIMESTAMP, …
    values: list


@dataclass(frozen=True)
class Table:
    """A query's answer column by column, in the query's order of columns."""

    columns: dict[str, Column]

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())).values) if self.columns else 0

    def __getitem__(self, name: str) -> list:
        return self.columns[name].values

    def select(self, names: Iterable[str]) -> Table:
        return Table({name: self.columns[name] for name in names})


def fetch_table(result: duckdb.DuckDBPyConnection) -> Table:
    """The rows of an executed query, as a :class:`Table`."""
    rows = result.fetchall()
    return Table(
        {
            name: Column(str(type_), [row[i] for row in rows])
            for i, (name, type_, *_) in enumerate(result.description)
        }
    )


class NotFound(LookupError):
    """An id or name that the warehouse does not have."""


class NotBuilt(LookupError):
    """A table that no run has published yet."""


def _require(con: duckdb.DuckDBPyConnection, table: str) -> None:
    if not table_exists(con, table):
        raise NotBuilt(f"the warehouse has no {table} yet: run `make demo` (or `musicrec run`)")


def run_query(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    fetch: Callable[[duckdb.DuckDBPyConnection], Fetched],
) -> Fetched:
    """The result of ``sql`` (its last statement's, when it holds several), as ``fetch``
    takes it from the executed connection; ``sql`` may hold queries only: anything else is
    refused before any of it runs.

    Raises
    ------
    ValueError
        Empty, malformed or refused SQL, or a query that fails: one line saying why.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise ValueError(first_line(error)) from error
    if not statements:
        raise ValueError("no SQL statement given")
    refused = sorted({s.type.name for s in statements if s.type not in QUERY_STATEMENTS})
    if refused:
        raise ValueError(
            f"the warehouse is read-only here: queries only (SELECT, FROM, WITH, PIVOT, "
            f"DESCRIBE, SHOW, SUMMARIZE, EXPLAIN), not {', '.join(refused)}"
        )
    try:
        return fetch(con.execute(sql))
    except duckdb.CatalogException as error:
        # DuckDB suggests one near name at most: the whole list is short
        if "Table with name" not in str(error):
            raise ValueError(first_line(error)) from error
        raise ValueError(f"{first_line(error)} The warehouse has: {_relations(con)}") from error
    except duckdb.Error as error:
        raise ValueError(first_line(error)) from error


def _relations(con: duckdb.DuckDBPyConnection) -> str:
    """The warehouse's tables and views, for a query that names neither."""
    found = con.execute(
        """SELECT table_type, string_agg(table_name, ', ' ORDER BY table_name)
           FROM information_schema.tables WHERE table_schema = 'main'
           GROUP BY table_type ORDER BY table_type"""
    ).fetchall()
    kinds = {"BASE TABLE": "tables", "VIEW": "views"}
    return "; ".join(f"{kinds.get(kind, kind.lower())} {names}" for kind, names in found) or (
        "no tables yet"
    )


def resolve_artist(con: duckdb.DuckDBPyConnection, id_or_name: str) -> tuple[str, str | None]:
    """(id, name) of an artist given its id or its exact name (case-insensitive)."""
    _require(con, "artists")
    rows = con.execute(
        "SELECT id, name FROM artists WHERE id = ? OR lower(name) = lower(?) "
        "ORDER BY id = ? DESC LIMIT 2",
        [id_or_name, id_or_name, id_or_name],
    ).fetchall()
    if not rows:
        raise NotFound(f"unknown artist {id_or_name!r} (give an artist id or exact name)")
    if len(rows) > 1 and rows[0][0] != id_or_name:
        raise NotFound(f"several artists are named {id_or_name!r}: give the artist id")
    return rows[0]


def user_names(con: duckdb.DuckDBPyConnection, user_ids: list[str]) -> list[str | None]:
    """The names (first and last) of ``user_ids``, in their order; None for a user the
    warehouse does not name."""
    _require(con, "users")
    named = dict(
        con.execute(
            "SELECT id, nullif(concat_ws(' ', first_name, last_name), '') FROM users "
            "WHERE id IN (SELECT unnest(?::VARCHAR[]))",
            [user_ids],
        ).fetchall()
    )
    return [named.get(user_id) for user_id in user_ids]


def stored_ranks(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """How many ranks ``table``, one of the recommendation tables, keeps per user or artist."""
    _require(con, table)
    return con.execute(f"SELECT coalesce(max(rank), 0) FROM {table}").fetchone()[0]


def user_recommendations(con: duckdb.DuckDBPyConnection, user_id: str, n: int) -> Table:
    _require(con, "user_recommendations")
    table = fetch_table(
        con.execute(
            "FROM user_recommendations_named WHERE user_id = ? AND rank <= ? ORDER BY rank",
            [user_id, n],
        )
    )
    shown = [
        "rank",
        "artist_id",
        "artist_name",
        "score",
        "predicted_rating",
        "model_version",
        "user_name",
    ]
    # predicted_rating: NULL for play counts (no rating model), absent in older warehouses
    if "predicted_rating" not in table.columns or all(
        missing(value) for value in table["predicted_rating"]
    ):
        shown.remove("predicted_rating")
    table = table.select(shown)
    if not table and not con.execute("SELECT 1 FROM users WHERE id = ?", [user_id]).fetchall():
        raise NotFound(f"unknown user {user_id!r}")
    return table


def missing(value) -> bool:
    """Whether a value is absent: NULL (None), or a float NaN, which pandas counts as absent."""
    return value is None or value != value


def similar_artists(con: duckdb.DuckDBPyConnection, artist_id: str, n: int) -> Table:
    """An artist's similar artists, as ``similar_artists`` lists them (an artist placed by its
    tags too)."""
    _require(con, "similar_artists")
    return fetch_table(
        con.execute(
            "SELECT rank, similar_artist_id, similar_artist_name, similarity "
            "FROM similar_artists_named WHERE artist_id = ? AND rank <= ? ORDER BY rank",
            [artist_id, n],
        )
    )


def artist_top_users(con: duckdb.DuckDBPyConnection, artist_id: str, n: int) -> Table:
    """The users to promote an artist to, as ``artist_top_users`` lists them (an artist placed
    by its tags too)."""
    _require(con, "artist_top_users")
    return fetch_table(
        con.execute(
            "SELECT rank, user_id, user_name, score "
            "FROM artist_top_users_named WHERE artist_id = ? AND rank <= ? ORDER BY rank",
            [artist_id, n],
        )
    )


def placed_by_tags(con: duckdb.DuckDBPyConnection, artist_id: str) -> bool:
    """Whether ``artist_factors`` holds the artist from its tags alone (nobody had rated it
    when the champion was trained)."""
    if "source" not in columns(con, "artist_factors"):
        return False
    return bool(
        con.execute(
            "SELECT count(*) FROM artist_factors WHERE artist_id = ? AND source = 'tags'",
            [artist_id],
        ).fetchall()[0][0]
    )


def model_run(con: duckdb.DuckDBPyConnection, versions: Iterable[str]) -> tuple[str, str] | None:
    """(model version, MLflow run id) of the one version ``versions`` (a table's
    ``model_version`` column) names, as ``model_metrics`` records it; None where they name
    more than one, or it has no metrics."""
    named = list(dict.fromkeys(map(str, versions)))
    if len(named) != 1 or not table_exists(con, "model_metrics"):
        return None
    runs = con.execute(
        "SELECT DISTINCT mlflow_run_id FROM model_metrics WHERE model_version = ?", [named[0]]
    ).fetchall()
    return (named[0], runs[0][0]) if len(runs) == 1 else None


def published_versions(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The model versions ``user_recommendations`` names (one, as its asset check keeps)."""
    if not table_exists(con, "user_recommendations"):
        return []
    return [
        version
        for (version,) in con.execute(
            "SELECT DISTINCT model_version FROM user_recommendations"
        ).fetchall()
    ]
