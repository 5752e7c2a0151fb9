"""warehouse/refresh.py on a warehouse of play counts with a champion fitted here: which
listeners are pending, their rows replaced in one transaction, never over a newer champion's
tables, and a fold-in killed in its transaction leaves the old rows."""

import subprocess
import sys
import textwrap
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from harness import small_world
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import ModelPair, TrainingParams
from musicrec_assets.model.fitters import fit_local
from musicrec_assets.serving import fold_in, tables
from musicrec_assets.serving.recommender import Recommender
from musicrec_assets.warehouse import feedback_kind, model_tables, refresh, serving_tables
from musicrec_assets.warehouse.interactions import load_matrix, update_indexes
from musicrec_assets.warehouse.tables import ensure_schema

TRAINED_AT = datetime(2026, 1, 1, 12, 0)
TOP_N = 5
NEWCOMER = "newcomer"


def add_ratings(con, frame: pd.DataFrame, ingested_at: datetime) -> None:
    con.register("added", frame.assign(ingested_at=ingested_at))
    con.execute(
        "INSERT INTO ratings SELECT user_id, artist_id, NULL, plays, NULL, 'test.jsonl', "
        "ingested_at FROM added"
    )
    con.unregister("added")


@pytest.fixture
def warehouse(tmp_path):
    """A play-count warehouse whose model rows come from a champion ("1") fitted on it; then
    a newcomer's plays and a known listener's plays of three artists of their list arrive."""
    world = small_world(seed=3)
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    ensure_schema(con)
    feedback_kind.decide(con, "implicit", "test")
    add_ratings(con, world.ratings[["user_id", "artist_id", "plays"]], TRAINED_AT)
    update_indexes(con, "implicit")
    matrix = load_matrix(con, "implicit")
    params = TrainingParams(
        "ranking", rank=8, regularization=1.0, iterations=5, confidence="log1p", alpha=2.0
    )
    models = ModelPair(fit_local(matrix.values, params).with_ids(matrix.user_ids, matrix.item_ids))
    champion = tmp_path / "champion"
    champion.mkdir()
    models.save(champion, "factors")
    names = pd.DataFrame({"artist_id": matrix.item_ids, "name": matrix.item_ids})
    recommender = Recommender(models, matrix.values, names)
    extra = {"model_version": "1", "created_at": TRAINED_AT, "source": "model"}
    chunks = tables.user_recommendations(recommender, TOP_N, extra | {"refreshed_at": TRAINED_AT})
    serving_tables.publish_with_view(con, "user_recommendations", chunks)
    chunks = tables.artist_top_users(
        recommender, TOP_N, {"model_version": "1", "source": "model", "refreshed_at": TRAINED_AT}
    )
    serving_tables.publish_with_view(con, "artist_top_users", chunks)
    model_tables.record_model_metrics(
        con, "1", "run", TRAINED_AT, "implicit", {"ranking": {"ndcg_at_10": 0.5}}
    )

    known = str(matrix.user_ids[0])
    listed = con.execute(
        "SELECT artist_id FROM user_recommendations WHERE user_id = ? ORDER BY rank", [known]
    ).fetchall()
    newcomer = world.ratings[world.ratings.user_id == world.users.id.iloc[5]].head(12)
    arrived = pd.concat(
        [
            newcomer.assign(user_id=NEWCOMER)[["user_id", "artist_id", "plays"]],
            pd.DataFrame({"user_id": known, "artist_id": [a for (a,) in listed[:3]], "plays": 40}),
        ]
    )
    add_ratings(con, arrived, TRAINED_AT + timedelta(hours=1))
    yield {
        "con": con,
        "path": path,
        "champion": champion,
        "models": models,
        "known": known,
        "played": [a for (a,) in listed[:3]],
    }
    con.close()


def rows_but(con, table: str, key: str, ids: list[str]) -> list[tuple]:
    """Every row of ``table`` but those of ``ids``, in one order."""
    query = f"SELECT * FROM {table} WHERE {key} NOT IN (SELECT unnest(?)) ORDER BY ALL"
    return con.execute(query, [ids]).fetchall()


def ranked(con, table: str, key: str, id_: str, columns: str) -> list[tuple]:
    query = f"SELECT {columns} FROM {table} WHERE {key} = ? ORDER BY rank"
    return con.execute(query, [id_]).fetchall()


def rows_of(con, user_id):
    columns = "artist_id, score, source, model_version, refreshed_at"
    return ranked(con, "user_recommendations", "user_id", user_id, columns)


def test_play_counts_fold_in_replaces_the_pending_listeners_rows(warehouse):
    con, known, models = warehouse["con"], warehouse["known"], warehouse["models"]
    todo = refresh.pending(con)
    assert todo.version == "1" and todo.user_ids == sorted([NEWCOMER, known])
    others_before = rows_but(con, "user_recommendations", "user_id", [NEWCOMER, known])
    now = datetime(2030, 1, 1)
    report = refresh.fold_in_pending(con, warehouse["champion"], "1", todo, TOP_N, now)
    assert (report.listeners, report.superseded_by) == (2, None)
    assert report.rows == TOP_N * (2 + report.artists + report.audiences)

    newcomer = rows_of(con, NEWCOMER)
    history = con.execute("SELECT artist_id, plays FROM ratings WHERE user_id = ?", [NEWCOMER]).df()
    columns = pd.Index(models.ranking.item_ids).get_indexer(history.artist_id)
    expected, scores = fold_in.recommend_new_user(
        models.ranking, columns, history.plays.to_numpy(float), TOP_N
    )
    assert [a for a, *_ in newcomer] == list(models.ranking.item_ids[expected])
    np.testing.assert_allclose([s for _, s, *_ in newcomer], scores, rtol=1e-5)
    assert {(source, v, at) for *_, source, v, at in newcomer} == {("fold_in", "1", now)}
    played = {
        a
        for (a,) in con.execute(
            "SELECT artist_id FROM ratings WHERE user_id = ?", [known]
        ).fetchall()
    }
    assert len(rows_of(con, known)) == TOP_N
    assert not played & {a for a, *_ in rows_of(con, known)}
    assert rows_but(con, "user_recommendations", "user_id", [NEWCOMER, known]) == others_before
    assert refresh.pending(con) is None  # their rows say they are up to date

    add_ratings(
        con,
        pd.DataFrame({"user_id": [NEWCOMER], "artist_id": [newcomer[0][0]], "plays": [9]}),
        now + timedelta(seconds=1),
    )
    assert refresh.pending(con).user_ids == [NEWCOMER]


def test_a_fold_in_never_writes_over_a_newer_champions_table(warehouse):
    con = warehouse["con"]
    todo = refresh.pending(con)
    con.execute("UPDATE user_recommendations SET model_version = '2'")  # a retrain published
    before = con.execute("SELECT * FROM user_recommendations ORDER BY ALL").fetchall()
    report = refresh.fold_in_pending(
        con, warehouse["champion"], "1", todo, TOP_N, datetime(2030, 1, 1)
    )
    assert report.superseded_by == "2" and report.rows == 0
    assert con.execute("SELECT * FROM user_recommendations ORDER BY ALL").fetchall() == before


KILLED_MID_TRANSACTION = textwrap.dedent(
    """
    import os, signal, sys
    from datetime import datetime
    from pathlib import Path
    import duckdb
    from musicrec_assets.warehouse import refresh

    class DiesBeforeInserting:
        def __init__(self, con):
            self.con = con
        def __getattr__(self, name):
            return getattr(self.con, name)
        def execute(self, sql, *args):
            if sql.startswith('INSERT INTO "user_recommendations"'):  # after the DELETE
                os.kill(os.getpid(), signal.SIGKILL)
            return self.con.execute(sql, *args)

    con = duckdb.connect(sys.argv[1])
    todo = refresh.pending(con)
    refresh.fold_in_pending(
        DiesBeforeInserting(con), Path(sys.argv[2]), "1", todo, 5, datetime(2030, 1, 1)
    )
    """
)


def test_a_fold_in_killed_in_its_transaction_leaves_the_old_rows_and_the_next_folds_in(
    warehouse,
):
    con, known = warehouse["con"], warehouse["known"]
    before = rows_of(con, known)
    con.close()
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_MID_TRANSACTION, warehouse["path"], warehouse["champion"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    con = warehouse["con"] = duckdb.connect(str(warehouse["path"]))
    assert rows_of(con, known) == before
    assert rows_of(con, NEWCOMER) == []
    todo = refresh.pending(con)
    assert todo.user_ids == sorted([NEWCOMER, known])
    refresh.fold_in_pending(con, warehouse["champion"], "1", todo, TOP_N, datetime(2030, 1, 1))
    assert {source for *_, source, _, _ in rows_of(con, known)} == {"fold_in"}
    assert len(rows_of(con, NEWCOMER)) == TOP_N


def audience(con, artist_id):
    return ranked(con, "artist_top_users", "artist_id", artist_id, "user_id, source")


def folded_listeners(con, ranking) -> tuple[np.ndarray, np.ndarray, set]:
    """(ids, ranking vectors, (id, artist) pairs rated) of the listeners a fold-in takes, from
    every stored play of the champion's artists."""
    todo = refresh.pending(con)
    plays = con.execute(
        "SELECT user_id, artist_id, plays FROM ratings WHERE user_id IN (SELECT unnest(?))",
        [todo.user_ids],
    ).df()
    ids = np.array(sorted(plays.user_id.unique()), dtype=object)
    interactions = csr_matrix(
        (
            plays.plays.to_numpy(float),
            (
                pd.Index(ids).get_indexer(plays.user_id),
                pd.Index(ranking.item_ids).get_indexer(plays.artist_id),
            ),
        ),
        shape=(len(ids), ranking.n_items),
    )
    vectors = fold_in.new_user_vectors(ranking, interactions)
    return ids, vectors, set(zip(plays.user_id, plays.artist_id, strict=True))


def best(candidates: dict[str, float], n: int = TOP_N) -> list[str]:
    return sorted(candidates, key=lambda user: (-candidates[user], user))[:n]


def test_artists_gaining_plays_get_a_new_audience_without_their_listeners(warehouse):
    con, known, models = warehouse["con"], warehouse["known"], warehouse["models"]
    todo = refresh.pending(con)
    # the known listener's three and the newcomer's, all known to the champion
    arrived = con.execute(
        "SELECT DISTINCT artist_id FROM ratings WHERE ingested_at > ? ORDER BY 1", [TRAINED_AT]
    ).fetchall()
    assert todo.artist_ids == [a for (a,) in arrived]
    assert set(warehouse["played"]) <= set(todo.artist_ids)
    ranking = models.ranking
    listeners, vectors, rated = folded_listeners(con, ranking)
    report = refresh.fold_in_pending(
        con, warehouse["champion"], "1", todo, TOP_N, datetime(2030, 1, 1)
    )
    assert report.artists == len(todo.artist_ids)
    model_users = ranking.user_vectors().astype(np.float64)
    for artist in todo.artist_ids:
        after = audience(con, artist)
        assert len(after) == TOP_N and {source for _, source in after} == {"fold_in"}
        stored = con.execute(
            "SELECT user_id, plays FROM ratings WHERE artist_id = ?", [artist]
        ).df()
        assert {known, NEWCOMER} & set(stored.user_id)
        assert not set(stored.user_id) & {user for user, _ in after}
        # the artist folded in from every stored play of the champion's listeners, its
        # audience the best of the model's listeners and the folded-in ones (by their new
        # vectors), its own listeners left out
        rows = pd.Index(ranking.user_ids).get_indexer(stored.user_id)
        kept = rows >= 0
        folded = fold_in.fold_in_item(
            ranking, rows[kept], stored.plays.to_numpy(float)[kept]
        ).factors.astype(np.float64)
        scores = dict(zip(ranking.user_ids, model_users @ folded, strict=True))
        scores |= dict(zip(listeners, vectors.astype(np.float64) @ folded, strict=True))
        candidates = {u: s for u, s in scores.items() if u not in set(stored.user_id)}
        assert [user for user, _ in after] == best(candidates)


def test_folded_in_listeners_enter_the_audiences_of_artists_they_outscore(warehouse):
    """An artist no one rated since keeps its top users but where a folded-in listener scores
    above its lowest (their new score replaces an old one): the best of both."""
    con, models = warehouse["con"], warehouse["models"]
    ranking = models.ranking
    todo = refresh.pending(con)
    listeners, vectors, rated = folded_listeners(con, ranking)
    before = {
        artist: rows for artist, rows in audiences(con).items() if artist not in todo.artist_ids
    }
    now = datetime(2030, 1, 1)
    report = refresh.fold_in_pending(con, warehouse["champion"], "1", todo, TOP_N, now)
    scores = vectors.astype(np.float64) @ ranking.item_vectors().astype(np.float64).T
    entered = unchanged = 0
    audiences_after = audiences(con)
    for artist, rows in before.items():
        column = pd.Index(ranking.item_ids).get_loc(artist)
        new = {
            user: scores[row, column]
            for row, user in enumerate(listeners)
            if (user, artist) not in rated
        }
        candidates = {user: score for user, score, _ in rows if user not in listeners} | new
        after = audiences_after[artist]
        assert [user for user, *_ in after] == best(candidates), artist
        for user, score, source in after:
            if user in new:
                assert source == "fold_in" and score == pytest.approx(new[user], rel=1e-4)
            else:  # the model's row, as it was
                assert (user, score, source) in rows
        entered += any(user in new for user, *_ in after)
        unchanged += after == rows
    assert entered > 0 and unchanged > 0
    assert report.audiences == len(before) - unchanged
    # an artist whose rows the model made in part is due at its next rating: the fold-in
    # rows among them do not say the model's reflect it
    mixed = next(artist for artist, rows in before.items() if rows != audiences_after[artist])
    assert refresh.pending(con) is None
    add_ratings(
        con,
        pd.DataFrame({"user_id": [warehouse["known"]], "artist_id": [mixed], "plays": [3]}),
        now - timedelta(days=1),  # before the fold-in's rows were refreshed
    )
    assert mixed in refresh.pending(con).artist_ids


def audiences(con) -> dict[str, list[tuple]]:
    """Every artist's (user_id, score, source) rows of artist_top_users, best first."""
    rows = con.execute(
        "SELECT artist_id, user_id, score, source FROM artist_top_users ORDER BY artist_id, rank"
    ).fetchall()
    grouped: dict[str, list[tuple]] = {}
    for artist, *row in rows:
        grouped.setdefault(artist, []).append(tuple(row))
    return grouped


def test_freshness_counts_what_arrived_since_the_champion_and_the_artists_it_cannot_place(
    warehouse,
):
    con = warehouse["con"]
    trained_on, since = con.execute(
        "SELECT count(*) FILTER (WHERE ingested_at <= ?), count(*) FILTER (WHERE ingested_at > ?) "
        "FROM ratings",
        [TRAINED_AT, TRAINED_AT],
    ).fetchall()[0]
    arrived = refresh.freshness(con)
    assert (arrived.version, arrived.trained_on, arrived.since) == ("1", trained_on, since)
    assert arrived.new_artists == 0 and arrived.share == since / trained_on
    new_artist = pd.DataFrame({"user_id": [NEWCOMER], "artist_id": ["never-seen"], "plays": [3]})
    add_ratings(con, new_artist, TRAINED_AT + timedelta(hours=2))
    assert refresh.freshness(con).new_artists == 1
