"""Fresh lists between retrains: listeners whose ratings arrived after the champion was trained
are folded into it (:func:`~musicrec_assets.serving.fold_in.recommend_new_listeners`) and their
rows of ``user_recommendations`` replaced, and they enter the top users (``artist_top_users``)
of the artists they now score high for, without retraining; and whether enough has arrived
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

from collections.abc import Iterable
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
from musicrec_assets.serving.placed import PlacedArtists
from musicrec_assets.warehouse import feedback_kind
from musicrec_assets.warehouse.feedback_kind import VALUE_COLUMN
from musicrec_assets.warehouse.tables import columns, scalar, table_exists, transaction

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
    # other artists whose top users the folded-in listeners entered (or left, or moved in):
    # their rows of artist_top_users replaced
    audiences: int = 0
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
            f"v{self.version}, the top users of {self.audiences} more artist(s) changed by the "
            f"listeners, {self.rows} rows{unplaced}"
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
    reflect it (every row ``source = 'fold_in'`` with a ``refreshed_at`` at or after it: an
    artist whose audience only gained folded-in listeners keeps the model's other rows, which
    do not); ``known_then``: only those with a rating from before, too."""
    if not table_exists(con, side.table):
        return []
    # a row of the model's makes the id's rows as old as the model (NULL: no fold-in since)
    refreshed = (
        f"SELECT {side.key}, CASE WHEN bool_and(source = 'fold_in') THEN min(refreshed_at) END "
        f"AS at FROM {side.table} JOIN recent USING ({side.key}) GROUP BY {side.key}"
        if "source" in columns(con, side.table)
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


@dataclass(frozen=True)
class _Histories:
    ids: np.ndarray  # the row of each folded id
    interactions: csr_matrix  # those ids × the champion's other side


def _histories(
    con: duckdb.DuckDBPyConnection, side: _Side, ids: list[str], known: np.ndarray, value: str
) -> _Histories:
    """Every stored rating of ``ids`` (``side.key``) of the champion's ``known`` other ids,
    as a matrix; an id with none is left out."""
    history = _stored_ratings(con, side, ids, value)
    positions = pd.Index(known).get_indexer(history["other"])
    history = history[positions >= 0]
    folded = np.array(sorted(history["id"].unique()), dtype=object)
    rows = pd.Index(folded).get_indexer(history["id"])
    interactions = csr_matrix(
        (history["value"].to_numpy(), (rows, positions[positions >= 0])),
        shape=(len(folded), len(known)),
    )
    return _Histories(folded, interactions)


def _stored_ratings(
    con: duckdb.DuckDBPyConnection, side: _Side, ids: list[str], value: str
) -> pd.DataFrame:
    """``id``, ``other``, ``value``: every stored rating (the ``value`` column) of ``ids``."""
    con.register("fold_in_ids", pa.table({side.key: pa.array(ids, pa.string())}))
    try:
        return con.execute(
            f"""SELECT r.{side.key} AS id, r.{side.other} AS other, r.{value}::DOUBLE AS value
            FROM ratings r JOIN fold_in_ids USING ({side.key}) WHERE r.{value} IS NOT NULL"""
        ).df()
    finally:
        con.unregister("fold_in_ids")


def folded_in_ratings(con: duckdb.DuckDBPyConnection, user_id: str) -> list[dict] | None:
    """The stored ratings that ``user_id``'s rows of ``user_recommendations`` were folded in
    from, as a new listener's request gives them (``{"artist_id": ..., "rating"|"plays":
    ...}``: what ``Recommender.explain_new_listener`` takes, which leaves out the artists the
    champion does not know, as the fold-in does); None when their rows are the model's (or
    they have none)."""
    table = LISTENERS.table
    if not table_exists(con, table) or "source" not in columns(con, table):
        return None
    query = f"SELECT bool_and(source = 'fold_in') FROM {table} WHERE {LISTENERS.key} = ?"
    if not scalar(con, query, [user_id]):
        return None
    value = VALUE_COLUMN[feedback_kind.decided(con)]
    stored = _stored_ratings(con, LISTENERS, [user_id], value)
    return [
        {LISTENERS.other: other, value: rating}
        for other, rating in zip(stored["other"], stored["value"], strict=True)
    ]


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
    ``refreshed_at = now``), with the rows of the artists whose top users the folded-in
    listeners enter (:data:`_MERGED_AUDIENCES`), in one transaction that first checks that both
    tables still serve ``version``: a fold-in never writes an older champion's rows over a
    newer one's tables."""
    models = ModelPair.load(champion, "factors")
    ranking = models.ranking
    value = VALUE_COLUMN[models.feedback]
    # the rows say which ratings they reflect: none ingested after their refreshed_at
    now = max(now, scalar(con, "SELECT max(ingested_at) FROM ratings"))
    users = _histories(con, LISTENERS, todo.user_ids, ranking.item_ids, value)
    artists = _Histories(np.array([], dtype=object), csr_matrix((0, ranking.n_users)))
    if todo.artist_ids and fold_in.folds_in_items(ranking):
        artists = _histories(con, ARTISTS, todo.artist_ids, ranking.user_ids, value)
    # what artist_top_users ranks listeners by: the ranking model's artist vectors, those of
    # the artists folded in replaced
    artist_vectors = ranking.item_vectors()
    audiences = _no_rows(ARTISTS, top_n, now)  # the folded-in artists' own, from the model's
    if len(artists.ids):
        promoted = fold_in.promote_new_items(ranking, artists.interactions, top_n)
        audiences = _rows(
            ARTISTS, artists.ids, ranking.user_ids, promoted.users, promoted.scores, now
        )
        artist_vectors = artist_vectors.copy()  # the model's own array, for a model without biases
        artist_vectors[pd.Index(ranking.item_ids).get_indexer(artists.ids)] = promoted.vectors
    listener_rows, entering = None, _no_rows(ARTISTS, top_n, now)
    if len(users.ids):
        lists = fold_in.recommend_new_listeners(models, users.interactions, top_n)
        listed = lists.items >= 0
        predicted = (
            [pd.NA] * int(listed.sum())
            if lists.predicted_ratings is None
            else lists.predicted_ratings[listed]
        )
        listener_rows = _rows(
            LISTENERS, users.ids, ranking.item_ids, lists.items, lists.scores, now
        ).assign(
            predicted_rating=pd.array(predicted, dtype="Float64"),
            model_version=version,
            created_at=now,
        )
        # each artist's best folded-in listeners: one product of their vectors with every
        # artist's, the artists each rated left out; then with those the champion placed by
        # their tags, as their audiences were ranked (nobody has rated them, as far as the
        # model knows)
        index, scores = topn.top_n_users(
            artist_vectors, lists.ranking_vectors, top_n, users.interactions.T.tocsr()
        )
        entering = _rows(ARTISTS, ranking.item_ids, users.ids, index, scores, now)
        placed = PlacedArtists.of_version(champion)
        if placed is not None:
            index, scores = placed.top_users(
                slice(None), lists.ranking_vectors, ranking.item_vectors(), top_n
            )
            entering = pd.concat(
                [entering, _rows(ARTISTS, placed.ids, users.ids, index, scores, now)],
                ignore_index=True,
            )
    unplaced = len(todo.user_ids) - len(users.ids) + len(todo.artist_ids) - len(artists.ids)
    written = [LISTENERS] if listener_rows is not None else []
    if listener_rows is not None or len(artists.ids):
        written.append(ARTISTS)
    changed, artist_rows = [], _no_rows(ARTISTS, top_n, now)
    with transaction(con):
        for side in written:
            serving = served_version(con, side.table)
            if serving != version:
                return FoldInReport(version, 0, 0, 0, unplaced=unplaced, superseded_by=serving)
        for side in written:
            for column, definition in REFRESH_COLUMNS.items():
                con.execute(
                    f'ALTER TABLE "{side.table}" ADD COLUMN IF NOT EXISTS {column} {definition}'
                )
        if listener_rows is not None:
            _replace_rows(con, LISTENERS, users.ids, listener_rows)
        if ARTISTS in written:
            changed, artist_rows = _merged_audiences(con, audiences, entering, users.ids, top_n)
            _replace_rows(con, ARTISTS, changed, artist_rows.assign(model_version=version))
    return FoldInReport(
        version,
        listeners=len(users.ids),
        artists=len(artists.ids),
        rows=(0 if listener_rows is None else len(listener_rows)) + len(artist_rows),
        audiences=len(changed) - len(artists.ids),
        unplaced=unplaced,
    )


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


def _no_rows(side: _Side, top_n: int, now: datetime) -> pd.DataFrame:
    """:func:`_rows` of no id, with its columns and their types."""
    nothing = np.array([], dtype=object)
    return _rows(side, nothing, nothing, np.empty((0, top_n), np.int32), np.empty((0, top_n)), now)


# The rows of artist_top_users that a fold-in changes, merged from the table as it is (in the
# fold-in's transaction) and what the fold-in computed: fold_in_audiences, the top users of the
# artists folded in (they replace those artists' rows), and fold_in_entering, each artist's
# best folded-in listeners (fold_in_listeners). An artist changes when it was folded in, when
# a folded-in listener is among its top users already (their old score goes, or they rated it
# since), or when one scores above its lowest top user (any, while it has fewer than $n). Its
# new top users are the best $n of its rows but the folded-in listeners', and theirs. A
# listener of the model who leaves a list is followed by none: the table holds only the top
# $n, so that listener's new score keeps their place when it falls below the others'.
_MERGED_AUDIENCES = """
WITH current AS (
    SELECT artist_id, user_id, score, source, refreshed_at FROM artist_top_users
    WHERE artist_id NOT IN (SELECT artist_id FROM fold_in_audiences)
    UNION ALL
    SELECT artist_id, user_id, score, source, refreshed_at FROM fold_in_audiences),
lowest AS (
    SELECT artist_id, CASE WHEN count(*) >= $n THEN min(score) END AS score,
           bool_or(user_id IN (SELECT user_id FROM fold_in_listeners)) AS holds_folded
    FROM current GROUP BY artist_id),
changed AS (
    SELECT artist_id FROM fold_in_audiences
    UNION SELECT artist_id FROM lowest WHERE holds_folded
    UNION SELECT e.artist_id FROM fold_in_entering e LEFT JOIN lowest l USING (artist_id)
          WHERE l.score IS NULL OR e.score > l.score),
candidates AS (
    SELECT artist_id, user_id, score, source, refreshed_at FROM current
    WHERE user_id NOT IN (SELECT user_id FROM fold_in_listeners)
    UNION ALL
    SELECT artist_id, user_id, score, source, refreshed_at FROM fold_in_entering)
-- a changed artist left with no candidate keeps one row of NULLs, so that it is named
SELECT artist_id, c.user_id, c.score, c.source, c.refreshed_at,
       row_number() OVER (PARTITION BY artist_id ORDER BY c.score DESC NULLS LAST, c.user_id)
           AS rank
FROM changed LEFT JOIN candidates c USING (artist_id)
QUALIFY rank <= $n
"""


def _merged_audiences(
    con: duckdb.DuckDBPyConnection,
    audiences: pd.DataFrame,
    entering: pd.DataFrame,
    listeners: np.ndarray,
    top_n: int,
) -> tuple[list[str], pd.DataFrame]:
    """(the artists whose rows of ``artist_top_users`` change, their new rows):
    :data:`_MERGED_AUDIENCES` of the folded-in artists' ``audiences``, the folded-in
    ``listeners`` and each artist's best of them, ``entering``."""
    registered = {
        "fold_in_audiences": audiences,
        "fold_in_entering": entering,
        "fold_in_listeners": pa.table({"user_id": pa.array(listeners.tolist(), pa.string())}),
    }
    for name, frame in registered.items():
        con.register(name, frame)
    try:
        merged = con.execute(_MERGED_AUDIENCES, {"n": top_n}).df()
    finally:
        for name in registered:
            con.unregister(name)
    return sorted(merged["artist_id"].unique()), merged.dropna(subset=["user_id"])


def _replace_rows(
    con: duckdb.DuckDBPyConnection, side: _Side, ids: Iterable[str], frame: pd.DataFrame
) -> None:
    """Replace the rows of ``side.table`` of ``ids`` with ``frame`` (the caller's transaction,
    which has given the table ``REFRESH_COLUMNS``)."""
    table, key = side.table, side.key
    con.register("fold_in_ids", pa.table({key: pa.array(list(ids), pa.string())}))
    con.register("fold_in_rows", frame)
    try:
        con.execute(f'DELETE FROM "{table}" WHERE {key} IN (SELECT {key} FROM fold_in_ids)')
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM fold_in_rows')
    finally:
        con.unregister("fold_in_rows")
        con.unregister("fold_in_ids")


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
