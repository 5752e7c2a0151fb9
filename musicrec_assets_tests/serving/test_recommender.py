"""The Recommender: requests by id, answered through fold-in and the top-N kernel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix, save_npz

from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import ModelPair, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.serving.fold_in import explain, fold_in_item, predict_new_user
from musicrec_assets.serving.recommender import RESULT_COLUMNS, Recommender, UnknownIdError
from musicrec_assets.serving.topn import top_n_items, top_n_users


def _ratings(n_users: int = 150, n_items: int = 60, seed: int = 3) -> csr_matrix:
    """Ratings 1..5 of a rank-2 taste model on a fifth of the pairs."""
    rng = np.random.default_rng(seed)
    users, items = rng.standard_normal((n_users, 2)), rng.standard_normal((n_items, 2))
    rows, cols = np.nonzero(rng.random((n_users, n_items)) < 0.2)
    taste = np.einsum("ij,ij->i", users[rows], items[cols])
    ratings = np.clip(np.round(3.0 + taste + 0.3 * rng.standard_normal(len(rows))), 1, 5)
    return csr_matrix((ratings, (rows, cols)), shape=(n_users, n_items))


@pytest.fixture(scope="module")
def recommender() -> Recommender:
    ratings = _ratings()
    params = TrainingParams(objective="rating", rank=4, regularization=0.05, iterations=60)
    user_ids = np.array([f"u{row}" for row in range(ratings.shape[0])])
    item_ids = np.array([f"a{column}" for column in range(ratings.shape[1])])
    model = fit_explicit_als(ratings, params).with_ids(user_ids, item_ids)
    names = pd.DataFrame({"artist_id": item_ids, "name": [f"Artist {i}" for i in item_ids]})
    # one explicit model ranking and rating, as a version logged before the ranking model
    return Recommender(ModelPair(model, model), ratings, names)


def _ratings_of_artist(recommender: Recommender, column: int) -> list[dict]:
    raters = recommender.seen[:, column].tocoo()
    return [
        {"user_id": recommender.model.user_ids[row], "rating": float(rating)}
        for row, rating in zip(raters.row, raters.data, strict=True)
    ]


def test_new_artist_is_promoted_to_the_best_users_who_have_not_rated_it(recommender):
    model, column = recommender.model, 7
    ratings = _ratings_of_artist(recommender, column)
    audience = recommender.for_new_artist([*ratings, {"user_id": "nobody", "rating": 4.0}], n=8)

    assert audience.unknown_user_ids == ["nobody"]
    assert audience.users["rank"].tolist() == list(range(1, 9))
    assert not set(audience.users["user_id"]) & {rating["user_id"] for rating in ratings}
    assert np.all(np.diff(audience.users["score"]) <= 0)

    rows = pd.Index(model.user_ids).get_indexer([rating["user_id"] for rating in ratings])
    folded = fold_in_item(model, rows, np.array([rating["rating"] for rating in ratings]))
    scores = model.user_factors @ folded.factors + model.global_mean + model.user_bias
    scores += folded.bias
    scores[rows] = -np.inf
    best = np.argsort(-scores, kind="stable")[:8]
    assert audience.users["user_id"].tolist() == model.user_ids[best].tolist()
    np.testing.assert_allclose(audience.users["score"], scores[best], rtol=1e-4, atol=1e-4)

    # training ends with the item half-step: a known artist replayed as new gets its audience
    trained, _ = top_n_users(
        model.item_vectors()[column : column + 1],
        model.user_vectors(),
        n=8,
        exclude=recommender.seen[:, column].T.tocsr(),
    )
    assert audience.users["user_id"].tolist() == model.user_ids[trained[0]].tolist()


def test_new_artist_needs_known_users_and_well_formed_ratings(recommender):
    with pytest.raises(UnknownIdError, match="none of the users"):
        recommender.for_new_artist([{"user_id": "nobody", "rating": 3.0}])
    with pytest.raises(ValueError, match="user_id, rating"):
        recommender.for_new_artist([{"artist_id": "a1", "rating": 3.0}])


def test_new_artist_cannot_be_folded_into_a_bm25_model(recommender):
    params = TrainingParams(
        objective="ranking", rank=4, regularization=0.1, iterations=2, confidence="bm25"
    )
    model = recommender.model
    bm25 = fit_implicit_als(recommender.seen, params).with_ids(model.user_ids, model.item_ids)
    names = pd.DataFrame({"artist_id": model.item_ids, "name": model.item_ids})
    with pytest.raises(ValueError, match="bm25"):
        Recommender(ModelPair(bm25), recommender.seen, names).for_new_artist(
            [{"user_id": "u0", "plays": 12.0}]
        )


@pytest.fixture(scope="module")
def pair_recommender() -> Recommender:
    """A ranking model of ratings (the rating as confidence) beside a rating model."""
    ratings = _ratings()
    user_ids = np.array([f"u{row}" for row in range(ratings.shape[0])])
    item_ids = np.array([f"a{column}" for column in range(ratings.shape[1])])
    ranking = fit_implicit_als(
        ratings,
        TrainingParams("ranking", rank=4, regularization=1.0, alpha=3.0, confidence="rating"),
    )
    rating = fit_explicit_als(
        ratings, TrainingParams("rating", rank=4, regularization=0.05, iterations=30)
    )
    names = pd.DataFrame({"artist_id": item_ids, "name": item_ids})
    return Recommender(ModelPair(ranking, rating).with_ids(user_ids, item_ids), ratings, names)


def test_the_ranking_model_orders_and_the_rating_model_predicts(pair_recommender):
    recommender = pair_recommender
    ranking, rating = recommender.model, recommender.rating_model
    answer = recommender.for_user("u3", n=6).recommendations
    items = pd.Index(ranking.item_ids).get_indexer(answer["artist_id"])
    top, scores = top_n_items(
        ranking.user_vectors()[3:4], ranking.item_vectors(), recommender.seen[3], 6
    )
    assert items.tolist() == top[0].tolist()
    np.testing.assert_allclose(answer["score"], scores[0], rtol=1e-5)
    np.testing.assert_allclose(
        answer["predicted_rating"], rating.predict(np.full(6, 3), items), rtol=1e-5
    )
    assert recommender.predicted_rating("u3", answer["artist_id"][0]) == pytest.approx(
        answer["predicted_rating"][0]
    )


def _replayed_as_new(recommender: Recommender, row: int) -> list[dict]:
    """User ``row``'s ratings as a new listener's."""
    history = recommender.seen[row]
    return [
        {"artist_id": recommender.model.item_ids[i], "rating": float(r)}
        for i, r in zip(history.indices, history.data, strict=True)
    ]


def test_a_new_listener_is_folded_into_both_models(pair_recommender):
    recommender = pair_recommender
    history = recommender.seen[5]
    ratings = _replayed_as_new(recommender, 5)
    answer = recommender.for_new_listener(ratings, n=5).recommendations
    items = pd.Index(recommender.model.item_ids).get_indexer(answer["artist_id"])
    expected = predict_new_user(recommender.rating_model, history.indices, history.data, items)
    np.testing.assert_allclose(answer["predicted_rating"], expected, rtol=1e-5)
    # a listener replayed as new lands near their trained rating: fold-in is ALS's own step
    trained = recommender.rating_model.predict(np.full(5, 5), items)
    np.testing.assert_allclose(answer["predicted_rating"], trained, atol=0.05)
    served = recommender.predict(pd.DataFrame([{"user_id": "u5", "ratings": None, "n": 2}]))
    assert served.columns.tolist() == RESULT_COLUMNS


def test_play_counts_predict_no_rating(tmp_path):
    plays = _ratings() * 7
    user_ids = np.array([f"u{row}" for row in range(plays.shape[0])])
    item_ids = np.array([f"a{column}" for column in range(plays.shape[1])])
    model = fit_implicit_als(plays, TrainingParams("ranking", rank=3, regularization=1.0))
    names = pd.DataFrame({"artist_id": item_ids, "name": item_ids})
    recommender = Recommender(ModelPair(model.with_ids(user_ids, item_ids)), plays, names)
    assert recommender.feedback == "implicit"
    answer = recommender.for_user("u1", n=3).recommendations
    assert answer["predicted_rating"].isna().all()
    assert recommender.predicted_rating("u1", "a1") is None


def test_a_version_of_one_explicit_model_ranks_and_predicts_with_it(tmp_path):
    """Versions logged before the ranking model hold one model as ``factors``."""
    ratings = _ratings()
    user_ids = np.array([f"u{row}" for row in range(ratings.shape[0])])
    item_ids = np.array([f"a{column}" for column in range(ratings.shape[1])])
    params = TrainingParams(objective="rating", rank=3, regularization=0.05, iterations=10)
    fit_explicit_als(ratings, params).with_ids(user_ids, item_ids).save(tmp_path / "factors")
    save_npz(tmp_path / "seen.npz", ratings)
    names = pd.DataFrame({"artist_id": item_ids, "name": item_ids})
    names.to_parquet(tmp_path / "artist_names.parquet", index=False)
    recommender = Recommender.from_folder(tmp_path)
    assert recommender.rating_model is recommender.model and recommender.feedback == "explicit"
    answer = recommender.for_user("u0", n=3).recommendations
    np.testing.assert_allclose(answer["predicted_rating"], answer["score"], rtol=1e-5)


def _as_saved_before_the_objective(sidecar: Path) -> None:
    """Rewrite a model's JSON sidecar as versions before ``objective`` wrote it: the objective
    under ``feedback``, "explicit" for a rating model and "implicit" for a ranking model."""
    meta = json.loads(sidecar.read_text())
    objective = meta["params"].pop("objective")
    meta["params"]["feedback"] = {"rating": "explicit", "ranking": "implicit"}[objective]
    sidecar.write_text(json.dumps(meta, indent=2))


def test_a_champion_saved_before_the_objective_had_its_name_still_serves(
    pair_recommender, tmp_path
):
    """A champion's files in a user's home (models/, mlartifacts/) name each model's objective
    ``feedback``: they load as the same models and answer as they did."""
    written = pair_recommender.models.save(tmp_path, "factors")
    save_npz(tmp_path / "seen.npz", pair_recommender.seen)
    names = pd.DataFrame({"artist_id": pair_recommender.model.item_ids, "name": "x"})
    names.to_parquet(tmp_path / "artist_names.parquet", index=False)
    for sidecar in (path for path in written if path.suffix == ".json"):
        _as_saved_before_the_objective(sidecar)
    assert '"feedback": "implicit"' in (tmp_path / "factors.json").read_text()

    old = Recommender.from_folder(tmp_path)

    assert old.model.params == pair_recommender.model.params
    assert old.rating_model.params == pair_recommender.rating_model.params
    assert (old.model.params.objective, old.rating_model.params.objective) == ("ranking", "rating")
    answer = old.for_user("u3", n=6).recommendations
    expected = pair_recommender.for_user("u3", n=6).recommendations
    assert answer["artist_id"].tolist() == expected["artist_id"].tolist()
    np.testing.assert_allclose(answer["predicted_rating"], expected["predicted_rating"])


def test_a_single_rating_model_saved_before_the_objective_still_rates(tmp_path):
    """A version logged before the ranking model holds one model: it rates when its old
    ``feedback`` says it was fitted on ratings."""
    ratings = _ratings()
    user_ids = np.array([f"u{row}" for row in range(ratings.shape[0])])
    item_ids = np.array([f"a{column}" for column in range(ratings.shape[1])])
    params = TrainingParams(objective="rating", rank=3, regularization=0.05, iterations=10)
    model = fit_explicit_als(ratings, params).with_ids(user_ids, item_ids)
    _as_saved_before_the_objective(model.save(tmp_path / "factors").with_suffix(".json"))

    loaded = ModelPair.load(tmp_path, "factors")

    assert loaded.ranking.params == params and loaded.rating is loaded.ranking
    assert loaded.feedback == "explicit"


def test_each_pick_gets_its_own_reasons_beside_what_the_list_shares(pair_recommender):
    """The reasons are the exact per-artist shares of each pick's score (fold-in's explain,
    which is implicit's): the list's largest mean shares once, then each pick's own largest
    shares beyond that mean."""
    recommender = pair_recommender
    picks = recommender.for_user("u3", n=6).recommendations["artist_id"].tolist()
    reasons = recommender.explain_user("u3", picks, top=2)

    history = recommender.seen[3]
    shares = np.array(
        [
            pd.Series(explanation.contributions, index=explanation.items)
            .reindex(history.indices)
            .to_numpy()
            for explanation in (
                explain(recommender.model, history.indices, history.data, item)
                for item in pd.Index(recommender.model.item_ids).get_indexer(picks)
            )
        ]
    )
    names = recommender.model.item_ids[history.indices]
    mean = shares.mean(axis=0)
    assert reasons.shared["artist_id"].tolist() == names[np.argsort(-mean)[:2]].tolist()
    np.testing.assert_allclose(reasons.shared["contribution"], np.sort(mean)[::-1][:2])
    assert len(reasons.by_pick) == len(picks)
    for own, pick_shares in zip(reasons.by_pick, shares, strict=True):
        beyond = pick_shares - mean
        assert own["artist_id"].tolist() == names[np.argsort(-beyond)[:2]].tolist()
        rated = dict(zip(names, history.data, strict=True))
        assert own["value"].tolist() == [rated[artist] for artist in own["artist_id"]]
    assert len({tuple(own["artist_id"]) for own in reasons.by_pick}) > 1

    (single,) = recommender.explain_user("u3", picks[:1], top=2).by_pick
    assert recommender.explain_user("u3", picks[:1]).shared.empty
    assert single["artist_id"].tolist() == names[np.argsort(-shares[0])[:2]].tolist()


def test_a_new_listener_is_explained_from_the_ratings_given(pair_recommender):
    recommender = pair_recommender
    ratings = _replayed_as_new(recommender, 5)
    picks = recommender.for_new_listener(ratings, n=4).recommendations["artist_id"].tolist()
    as_new = recommender.explain_new_listener(ratings, picks)
    as_known = recommender.explain_user("u5", picks)
    assert as_new.shared["artist_id"].tolist() == as_known.shared["artist_id"].tolist()
    for new, known in zip(as_new.by_pick, as_known.by_pick, strict=True):
        assert new["artist_id"].tolist() == known["artist_id"].tolist()
    with pytest.raises(UnknownIdError, match="unknown artists"):
        recommender.explain_user("u5", ["nope"])
