"""Fresh lists between retrains: listeners whose ratings arrived after the champion was trained
are folded into it (:func:`~musicrec_assets.serving.fold_in.recommend_new_listeners`) and their
rows of ``user_recommendations`` replaced, without retraining; and whether enough has arrived
that a retrain is worth it (:func:`freshness`).

What the champion saw is what was stored when it was trained: the ratings ingested at or before
its ``model_metrics.trained_at`` (training holds the warehouse's one writing slot from reading
the ratings to recording its metrics, so nothing is ingested in between). The listeners to fold
in are those with a rating ingested after that whose rows do not already say so (``source =
'fold_in'`` with a ``refreshed_at`` at or after their newest rating). The rows themselves are
the mark: a fold-in killed before its commit leaves the old rows, and tables republished by a
retrain whose version did not become champion drop the fold-in rows, so in both cases the next
fold-in takes the same listeners again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import ModelPair
from musicrec_assets.serving import fold_in, topn
from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.feedback_kind import VALUE_COLUMN
from musicrec_assets.warehouse.tables import scalar, table_exists, transaction

# the columns the published recommendation tables carry for this (model rows: 'model', the
# time the table was built), added to a table published before them
REFRESH_COLUMNS = {"source": "VARCHAR DEFAULT 'model'", "refreshed_at": "TIMESTAMP"}


@dataclass(frozen=True)
class _Side:
    """One refreshed table: its rows are keyed by ``key`` (the ids folded in), each ranking
    ``other`` ids (the champion's fixed side)."""

    table: str
    key: str
    other: str


LISTENERS = _Side("user_recommendations", "user_id", "artist_id")
ARTISTS = _Side("artist_top_users", "artist_id", "user_id")


@dataclass(frozen=True)
class Pending:
    """Listeners and artists whose stored ratings the served tables do not reflect yet."""

    version: str  # the champion the tables serve
    trained_at: datetime  # ratings ingested after this are not in its own rows
    user_ids: list[str]
    # artists the champion was trained on that gained ratings since (a new artist waits for
    # the retrain the retrain sensor requests for it)
    artist_ids: list[str]


@dataclass(frozen=True)
class FoldInReport:
    version: str
    listeners: int  # folded in, their rows of user_recommendations replaced
    artists: int  # folded in, their rows of artist_top_users replaced
    rows: int  # written, both tables
    # left as they were: listeners who rated only artists the champion does not know, and
    # artists under a confidence scheme that cannot fold them in
    unplaced: int = 0
    # a table serves another version than the one folded into (a newer champion's tables, or
    # an older one's while a retrain that moved the alias publishes): nothing was written
    superseded_by: str | None = None

    def summary(self) -> str:
        if self.superseded_by is not None:
            return (
                f"nothing written: the tables serve v{self.superseded_by}, not v{self.version} "
                "folded into (a retrain publishes; the next ingest run folds them in)"
            )
        unplaced = f"; {self.unplaced} left as they were" if self.unplaced else ""
        return (
            f"{self.listeners} listener(s) and {self.artists} artist(s) folded into "
            f"v{self.version}, {self.rows} rows{unplaced}"
        )


def served_version(
    con: duckdb.DuckDBPyConnection, table: str = "user_recommendations"
) -> str | None:
    """The model version ``table`` serves (None: no table, or no rows)."""
    if not table_exists(con, table):
        return None
    return scalar(con, f'SELECT any_value(model_version) FROM "{table}"')


def trained_at(con: duckdb.DuckDBPyConnection, version: str) -> datetime | None:
    """When ``version`` was trained (its ``model_metrics`` row), None where unknown."""
    if not table_exists(con, "model_metrics"):
        return None
    query = "SELECT max(trained_at) FROM model_metrics WHERE model_version = ?"
    return scalar(con, query, [version])


def pending(con: duckdb.DuckDBPyConnection) -> Pending | None:
    """The listeners and artists with ratings the served tables do not reflect (none: None),
    by SQL alone: whether a fold-in has anything to do is known before the champion loads."""
    version = served_version(con)
    kind = feedback_kind.decided(con) if table_exists(con, "feedback_kind") else None
    since = None if version is None or kind is None else trained_at(con, version)
    if since is None:
        return None
    users = _stale(con, LISTENERS, VALUE_COLUMN[kind], since)
    artists = _stale(con, ARTISTS, VALUE_COLUMN[kind], since, known_then=True)
    if not users and not artists:
        return None
    return Pending(version, since, users, artists)


def _stale(
    con: duckdb.DuckDBPyConnection,
    side: _Side,
    value: str,
    since: datetime,
    known_then: bool = False,
) -> list[str]:
    """Ids of ``side.key`` with a rating ingested after ``since`` whose rows do not say they
    reflect it (``source = 'fold_in'``, ``refreshed_at`` at or after it); ``known_then``: only
    those with a rating from before, too."""
    if not table_exists(con, side.table):
        return []
    refreshed = (
        f"SELECT {side.key}, min(refreshed_at) AS at FROM {side.table} "
        f"WHERE source = 'fold_in' GROUP BY {side.key}"
        if "source" in _columns(con, side.table)
        else f"SELECT NULL::VARCHAR AS {side.key}, NULL::TIMESTAMP AS at"
    )
    before = "HAVING min(ingested_at) <= $since" if known_then else ""
    # the recent rows first: a filter on ingested_at, where the rows of a large table are
    # skipped by block, not a pass grouping them all
    found = con.execute(
        f"""
        WITH recent AS (SELECT DISTINCT {side.key} FROM ratings
                        WHERE ingested_at > $since AND {value} IS NOT NULL),
             latest AS (SELECT {side.key}, max(ingested_at) AS at
                        FROM ratings JOIN recent USING ({side.key})
                        WHERE {value} IS NOT NULL GROUP BY {side.key} {before}),
             refreshed AS ({refreshed})
        SELECT l.{side.key} FROM latest l LEFT JOIN refreshed r USING ({side.key})
        WHERE r.at IS NULL OR r.at < l.at ORDER BY l.{side.key}""",
        {"since": since},
    ).fetchall()
    return [key for (key,) in found]


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
    return {name for (name,) in con.execute(query, [table]).fetchall()}


@dataclass(frozen=True)
class _Histories:
    ids: np.ndarray  # the row of each folded id
    interactions: csr_matrix  # those ids × the champion's other side


def _histories(
    con: duckdb.DuckDBPyConnection, side: _Side, ids: list[str], known: np.ndarray, value: str
) -> _Histories:
    """Every stored rating of ``ids`` (``side.key``) of the champion's ``known`` other ids,
    as a matrix; an id with none is left out."""
    con.register("fold_in_ids", pa.table({side.key: pa.array(ids, pa.string())}))
    try:
        history = con.execute(
            f"""SELECT r.{side.key} AS id, r.{side.other} AS other, r.{value}::DOUBLE AS value
            FROM ratings r JOIN fold_in_ids USING ({side.key}) WHERE r.{value} IS NOT NULL"""
        ).df()
    finally:
        con.unregister("fold_in_ids")
    columns = pd.Index(known).get_indexer(history["other"])
    history = history[columns >= 0]
    folded = np.array(sorted(history["id"].unique()), dtype=object)
    rows = pd.Index(folded).get_indexer(history["id"])
    interactions = csr_matrix(
        (history["value"].to_numpy(), (rows, columns[columns >= 0])),
        shape=(len(folded), len(known)),
    )
    return _Histories(folded, interactions)


def fold_in_pending(
    con: duckdb.DuckDBPyConnection,
    champion: Path,
    version: str,
    todo: Pending,
    top_n: int,
    now: datetime,
) -> FoldInReport:
    """Fold the listeners and artists of ``todo`` into the champion (its files in
    ``champion``, registered as ``version``) from all their stored ratings, and replace their
    rows of ``user_recommendations`` and ``artist_top_users`` (``source = 'fold_in'``,
    ``refreshed_at = now``) in one transaction that first checks that both tables still serve
    ``version``: a fold-in never writes an older champion's rows over a newer one's tables."""
    models = ModelPair.load(champion, "factors")
    ranking = models.ranking
    value = VALUE_COLUMN[models.feedback]
    # the rows say which ratings they reflect: none ingested after their refreshed_at
    now = max(now, scalar(con, "SELECT max(ingested_at) FROM ratings"))
    frames: dict[_Side, pd.DataFrame] = {}
    users = _histories(con, LISTENERS, todo.user_ids, ranking.item_ids, value)
    if len(users.ids):
        lists = fold_in.recommend_new_listeners(models, users.interactions, top_n)
        listed = lists.items >= 0
        predicted = (
            [pd.NA] * int(listed.sum())
            if lists.predicted_ratings is None
            else lists.predicted_ratings[listed]
        )
        frames[LISTENERS] = _rows(
            LISTENERS, users.ids, ranking.item_ids, lists.items, lists.scores, now
        ).assign(
            predicted_rating=pd.array(predicted, dtype="Float64"),
            model_version=version,
            created_at=now,
        )
    artists = _Histories(np.array([], dtype=object), csr_matrix((0, ranking.n_users)))
    if todo.artist_ids and fold_in.folds_in_items(ranking):
        artists = _histories(con, ARTISTS, todo.artist_ids, ranking.user_ids, value)
    if len(artists.ids):
        index, scores = fold_in.promote_new_items(ranking, artists.interactions, top_n)
        frames[ARTISTS] = _rows(ARTISTS, artists.ids, ranking.user_ids, index, scores, now).assign(
            model_version=version
        )
    unplaced = len(todo.user_ids) - len(users.ids) + len(todo.artist_ids) - len(artists.ids)
    counts = {"listeners": len(users.ids), "artists": len(artists.ids), "unplaced": unplaced}
    with transaction(con):
        for side in (LISTENERS, ARTISTS):
            serving = served_version(con, side.table)
            if side in frames and serving != version:
                return FoldInReport(version, 0, 0, 0, unplaced, superseded_by=serving)
        for side, frame in frames.items():
            _replace_rows(con, side, frame)
    return FoldInReport(version, rows=sum(map(len, frames.values())), **counts)


def _rows(
    side: _Side,
    ids: np.ndarray,
    others: np.ndarray,
    index: np.ndarray,
    scores: np.ndarray,
    now: datetime,
) -> pd.DataFrame:
    """Top-N rows of folded-in ids as the model's are made (:mod:`serving.tables`), marked."""
    key, rank, other, score = topn.flatten_top_n(ids, others, index, scores)
    return pd.DataFrame(
        {
            side.key: key.astype(str),
            "rank": rank,
            side.other: other.astype(str),
            "score": score.astype(np.float32),
            "source": "fold_in",
            "refreshed_at": now,
        }
    )


def _replace_rows(con: duckdb.DuckDBPyConnection, side: _Side, frame: pd.DataFrame) -> None:
    """Replace the rows of ``side.table`` of the ids ``frame`` holds with it (the caller's
    transaction); a table published before ``source`` and ``refreshed_at`` gets them."""
    table, key = side.table, side.key
    for column, definition in REFRESH_COLUMNS.items():
        con.execute(f'ALTER TABLE "{table}" ADD COLUMN IF NOT EXISTS {column} {definition}')
    con.register("fold_in_rows", frame)
    try:
        con.execute(
            f'DELETE FROM "{table}" WHERE {key} IN (SELECT DISTINCT {key} FROM fold_in_rows)'
        )
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM fold_in_rows')
    finally:
        con.unregister("fold_in_rows")


@dataclass(frozen=True)
class Freshness:
    """What arrived since the champion the tables serve was trained."""

    version: str
    trained_on: int  # ratings it was trained on (those stored when it was trained)
    since: int  # ratings ingested after it was trained
    new_artists: int  # artists rated since that it was not trained on: fold-in cannot place them

    @property
    def share(self) -> float:
        return self.since / self.trained_on if self.trained_on else float("inf")


def freshness(con: duckdb.DuckDBPyConnection) -> Freshness | None:
    """What arrived since the served champion was trained; None without one (or without its
    training time)."""
    version = served_version(con)
    kind = feedback_kind.decided(con) if table_exists(con, "feedback_kind") else None
    at = None if version is None or kind is None else trained_at(con, version)
    if at is None:
        return None
    value = VALUE_COLUMN[kind]
    trained_on, since, new_artists = con.execute(
        f"""
        WITH rated AS (SELECT artist_id, ingested_at > $at AS is_new FROM ratings
                       WHERE {value} IS NOT NULL)
        SELECT count(*) FILTER (WHERE NOT is_new), count(*) FILTER (WHERE is_new),
               (SELECT count(*) FROM (SELECT artist_id FROM rated GROUP BY artist_id
                                      HAVING bool_and(is_new)))
        FROM rated""",
        {"at": at},
    ).fetchall()[0]
    return Freshness(version, int(trained_on), int(since), int(new_artists))
