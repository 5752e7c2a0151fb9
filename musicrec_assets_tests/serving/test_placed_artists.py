"""Artists placed by their tags in the published lists: in artist_top_users with their own
audience, in similar_artists with trained neighbours and as a neighbour of trained artists,
each row marked; the lists of the trained artists otherwise as they were. The served model
answers for them as the tables do."""

import json
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import ModelPair, TrainingParams
from musicrec_assets.model.fitters import fit_local
from musicrec_assets.model.tag_mapping import TagFactors
from musicrec_assets.serving import tables
from musicrec_assets.serving.recommender import Recommender, UnknownIdError
from musicrec_assets.serving.topn import similar_items
from musicrec_assets.warehouse import serving_tables
from musicrec_assets.warehouse.tables import ensure_schema

N = 5


def small_recommender() -> Recommender:
    rng = np.random.default_rng(1)
    plays = csr_matrix((rng.random((60, 30)) < 0.2).astype(np.float32))
    params = TrainingParams(
        "ranking", rank=8, regularization=0.5, iterations=5, confidence="log1p", alpha=2.0
    )
    users, artists = np.array([f"u{i}" for i in range(60)]), np.array([f"a{i}" for i in range(30)])
    models = ModelPair(fit_local(plays, params).with_ids(users, artists))
    return Recommender(models, plays, pd.DataFrame({"artist_id": artists, "name": artists}))


def placed_like(recommender: Recommender, rows: list[int], width: int) -> tables.PlacedArtists:
    """Artists placed exactly where trained artists ``rows`` are, vectors zero-padded to
    ``width`` as artist_factors pads them."""
    vectors = recommender.model.item_vectors()[rows]
    return tables.PlacedArtists(
        np.array([f"new{row}" for row in rows]),
        np.pad(vectors, ((0, 0), (0, width - vectors.shape[1]))),
    )


def test_similar_items_lists_placed_rows_among_the_others_but_not_among_themselves():
    factors = np.array([[1, 0], [0, 1], [1, 1], [1, 0.1], [1, 0]], dtype=np.float32)
    index, cosine = similar_items(factors, n=2, placed=2)
    assert index[0].tolist() == [4, 3]  # the placed rows are the first's nearest
    assert set(index[3:].ravel()) <= {0, 1, 2}  # theirs are the others alone
    assert cosine[4, 0] == np.float32(1.0)
    # without placed rows, the lists are those of every row among all
    unplaced, _ = similar_items(factors, n=2)
    assert unplaced[4].tolist() == [0, 3]


def test_placed_artists_get_an_audience_marked_tags():
    recommender = small_recommender()
    placed = placed_like(recommender, [3, 7], width=10)
    extra = {"model_version": "1", "source": "model"}
    rows = pd.concat(tables.artist_top_users(recommender, N, extra, placed))
    alone = pd.concat(tables.artist_top_users(recommender, N, extra))
    trained = rows[~rows.artist_id.str.startswith("new")].reset_index(drop=True)
    pd.testing.assert_frame_equal(trained, alone)  # the trained artists' lists as they were
    mine = rows[rows.artist_id == "new3"]
    assert (mine.source == "tags").all() and (trained.source == "model").all()
    # nobody listens to a placed artist: its audience is every user by the score
    scores = recommender.model.user_vectors() @ recommender.model.item_vectors()[3]
    assert mine.user_id.tolist() == recommender.model.user_ids[np.argsort(-scores)[:N]].tolist()


def test_placed_artists_are_similar_both_ways_each_artist_marked():
    recommender = small_recommender()
    # placed where the artist most listen to is: each is the other's nearest
    most = int(np.argmax(tables.listeners(recommender.seen, 30)))
    placed = placed_like(recommender, [most], width=10)
    rows = tables.similar_artists(recommender, N, {"model_version": "1"}, placed)
    alone = tables.similar_artists(recommender, N, {"model_version": "1"})
    # without placed artists, the same columns (every backend's), each artist trained
    assert (
        list(alone.columns)
        == list(rows.columns)
        == [
            "artist_id",
            "rank",
            "similar_artist_id",
            "similarity",
            "model_version",
            "artist_source",
            "similar_artist_source",
        ]
    )
    assert (alone.artist_source == "ratings").all()
    assert (alone.similar_artist_source == "ratings").all()
    mine = rows[rows.artist_id == f"new{most}"]
    assert (mine.artist_source == "tags").all() and (mine.similar_artist_source == "ratings").all()
    assert mine.similar_artist_id.iloc[0] == f"a{most}"
    assert len(rows) == len(alone) + N
    # it enters trained artists' lists, pushing their last neighbour out; the others are kept
    trained = rows[rows.artist_source == "ratings"]
    entered = set(trained[trained.similar_artist_source == "tags"].artist_id)
    assert f"a{most}" in entered  # its twin's list first of all, at cosine 1
    twin = trained[trained.artist_id == f"a{most}"].iloc[0]
    assert twin.similar_artist_id == f"new{most}" and abs(twin.similarity - 1) < 1e-5
    for artist, before in alone.groupby("artist_id"):
        after = trained[trained.artist_id == artist]
        kept = after[after.similar_artist_source == "ratings"].similar_artist_id.tolist()
        assert kept == before.similar_artist_id.tolist()[: N - (artist in entered)]


def test_the_named_views_show_each_artists_top_tags():
    recommender = small_recommender()
    con = duckdb.connect()
    ensure_schema(con)
    con.execute(
        "INSERT INTO artist_tags VALUES ('a0', 'rock', 3), ('a0', 'indie', 9), ('a0', 'pop', 1),"
        " ('a0', 'jazz', 2), ('a0', 'folk', 4), ('a0', 'punk', 5), ('new3', 'drone', 20)"
    )
    placed = placed_like(recommender, [3], width=10)
    extra = {"model_version": "1", "created_at": None, "source": "model", "refreshed_at": None}
    published = {
        "user_recommendations": tables.user_recommendations(recommender, N, extra),
        "artist_top_users": tables.artist_top_users(recommender, N, extra, placed),
        "similar_artists": [tables.similar_artists(recommender, N, {"model_version": "1"}, placed)],
    }
    for table, chunks in published.items():
        serving_tables.publish_with_view(con, table, chunks)
    by_weight = ["indie", "punk", "folk", "rock", "jazz"]  # at most 5
    for view, artist in (
        ("user_recommendations_named", "artist_id"),
        ("artist_top_users_named", "artist_id"),
        ("similar_artists_named", "artist_id"),
        ("similar_artists_named", "similar_artist_id"),
    ):
        tags = "similar_artist_top_tags" if artist == "similar_artist_id" else "top_tags"
        found = con.execute(
            f"SELECT {artist}, list(DISTINCT {tags}) FROM {view} "
            f"WHERE {artist} IN ('a0', 'a1', 'new3') GROUP BY 1 ORDER BY 1"
        ).fetchall()
        expected = {"a0": [by_weight], "a1": [None], "new3": [["drone"]]}
        assert found and all(tags == expected[key] for key, tags in found), (view, found)
    assert con.execute(
        "SELECT DISTINCT artist_source FROM similar_artists_named WHERE artist_id = 'new3'"
    ).fetchall() == [("tags",)]


@pytest.mark.parametrize("by_spread", [False, True])
def test_the_served_model_answers_for_an_artist_trained_or_placed_as_artist_top_users_ranks(
    by_spread,
):
    recommender = small_recommender()
    placed = replace(placed_like(recommender, [3, 7], width=10), by_spread=by_spread)
    vectors = {"ranking": placed.vectors}
    verdict = TagFactors(True, "published", {}, {}, np.arange(2), vectors, {}, by_spread)
    served = Recommender(
        recommender.models,
        recommender.seen,
        pd.DataFrame({"artist_id": ["a3", "new3"], "name": ["Three", "New Three"]}),
        (placed.ids, verdict),
    )
    extra = {"model_version": "1", "source": "model"}
    table = pd.concat(tables.artist_top_users(recommender, N, extra, placed))
    answer = served.predict(
        pd.DataFrame([{"artist_id": "a3", "n": N}, {"artist_id": "new3", "n": N}])
    )
    for request, artist in enumerate(("a3", "new3")):
        rows = answer[answer.request == request]
        expected = table[table.artist_id == artist]
        assert rows.user_id.tolist() == expected.user_id.tolist()
        np.testing.assert_allclose(rows.score, expected.score, rtol=1e-5)
        assert (rows.artist_id == artist).all() and rows["rank"].tolist() == list(range(1, N + 1))
    assert set(answer.artist_name) == {"Three", "New Three"}
    # a trained artist's listeners are left out; a placed one has none
    listeners = set(recommender.model.user_ids[recommender.seen[:, 3].nonzero()[0]])
    assert listeners and not listeners & set(answer[answer.request == 0].user_id)
    # withheld tag factors place nobody; an unknown artist is refused, as an unknown user is
    withheld = TagFactors(False, "withheld", {}, {}, np.arange(0), {}, {})
    unplaced = Recommender(
        recommender.models,
        recommender.seen,
        pd.DataFrame({"artist_id": [], "name": []}),
        (np.zeros(0, dtype=str), withheld),
    )
    for model in (served, unplaced):
        with pytest.raises(UnknownIdError, match="unknown artist 'nobody'"):
            model.predict(pd.DataFrame([{"artist_id": "nobody"}]))
    with pytest.raises(UnknownIdError, match="unknown artist 'new3'"):
        unplaced.predict(pd.DataFrame([{"artist_id": "new3"}]))
    with pytest.raises(ValueError, match="a user_id and an artist_id"):
        served.predict(pd.DataFrame([{"artist_id": "a3", "user_id": "u1"}]))


def test_the_served_model_folds_a_new_artist_in_from_known_users_ratings():
    recommender = small_recommender()
    ratings = [{"user_id": "u1", "plays": 5}, {"user_id": "u2", "plays": 2}]
    answer = recommender.predict(
        pd.DataFrame([{"artist_id": "brand-new", "ratings": json.dumps(ratings), "n": 4}])
    )
    expected = recommender.for_new_artist(ratings, 4).users
    assert answer.user_id.tolist() == expected.user_id.tolist()
    assert (answer.artist_id == "brand-new").all() and answer.artist_name.isna().all()
    assert not {"u1", "u2"} & set(answer.user_id)


def test_a_placed_artists_audience_by_spread_ranks_users_by_their_own_scores_spread():
    recommender = small_recommender()
    placed = replace(placed_like(recommender, [3], width=10), by_spread=True)
    extra = {"model_version": "1", "source": "model"}
    rows = pd.concat(tables.artist_top_users(recommender, N, extra, placed))
    mine = rows[rows.artist_id == "new3"]
    model = recommender.model
    users, items = model.user_vectors().astype(np.float64), model.item_vectors()
    centred = items - items.mean(axis=0)
    spread = np.sqrt(np.einsum("ij,jk,ik->i", users, centred.T @ centred / len(items), users))
    scores = users @ items[3] / spread
    assert mine.user_id.tolist() == model.user_ids[np.argsort(-scores)[:N]].tolist()
    np.testing.assert_allclose(mine.score, np.sort(scores)[::-1][:N], rtol=1e-4)
    # the trained artists' audiences keep the plain score
    plain = pd.concat(tables.artist_top_users(recommender, N, extra))
    pd.testing.assert_frame_equal(rows[rows.artist_id != "new3"].reset_index(drop=True), plain)
