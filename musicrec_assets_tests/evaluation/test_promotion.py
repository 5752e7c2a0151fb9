"""Champion and challenger: which model stands for the champion on this split, and when the
candidate takes the alias."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.datasets.synthetic.world import generate_world
from musicrec_assets.evaluation import promotion
from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.split import fingerprint, train_test_split
from musicrec_assets.model.baselines import (
    BIAS_PARAMS,
    NeighbourParams,
    fit_bias_model,
    fit_most_popular,
)
from musicrec_assets.model.factors import FactorModel, ModelPair, TrainingParams
from musicrec_assets.model.fitters import fit_local

IDS = (np.array(["ann", "bob"]), np.array(["a1", "a2", "a3"]))
TRAIN = csr_matrix(np.array([[5.0, 0, 3], [0, 4, 1]]))


def model(**params) -> FactorModel:
    settings = TrainingParams(**{"objective": "rating", "rank": 2, "regularization": 0.1, **params})
    return FactorModel(settings, np.ones((2, 2), np.float32), np.ones((3, 2), np.float32)).with_ids(
        *IDS
    )


def pair(**params) -> ModelPair:
    """One model in both roles (ratings) or ranking alone (play counts), as a version logged
    before the ranking model loads."""
    one = model(**params)
    return ModelPair(one, one if one.params.objective == "rating" else None)


def champion(split: str | None, **params) -> promotion.Champion:
    return promotion.Champion("1", pair(**params), split)


def never_fit(*args):
    raise AssertionError("no refit expected")


def test_split_fingerprint_tells_splits_apart():
    matrix = csr_matrix(np.random.default_rng(0).integers(0, 3, size=(40, 30)).astype(float))
    split = train_test_split(matrix, seed=1)
    users, items = np.arange(40).astype(str), np.arange(30).astype(str)
    same = fingerprint(split.train, split.test, users, items)
    assert same == fingerprint(split.train.copy(), split.test.copy(), users, items)
    other = train_test_split(matrix, seed=2)
    assert fingerprint(other.train, other.test, users, items) != same
    assert fingerprint(split.train, split.test, users[::-1], items) != same
    # a separator inside an id cannot make two id lists read the same
    two, one = np.array(["a", "b"]), np.array(["a\x1fb", ""])
    assert fingerprint(split.train, split.test, two, items) != fingerprint(
        split.train, split.test, one, items
    )


def test_the_champion_scores_its_own_model_on_its_own_split():
    stand_in = promotion.comparable_champion(
        champion("s1", rank=4), "s1", pair(), never_fit, TRAIN, IDS
    )
    assert stand_in.model.params.rank == 4 and not stand_in.refit


def test_on_another_split_the_champion_settings_are_refit():
    fitted = []

    def fit(matrix, params, callback=None):
        fitted.append(params)
        return model(rank=params.rank)

    stand_in = promotion.comparable_champion(
        champion("old split", rank=4), "s1", pair(), fit, TRAIN, IDS
    )
    assert stand_in.refit and [p.rank for p in fitted] == [4]
    assert stand_in.model.params.rank == 4


def test_on_another_split_the_same_settings_are_the_candidate_itself():
    candidate = pair()
    for split in ("old split", None):  # None: logged before splits were fingerprinted
        stand_in = promotion.comparable_champion(
            champion(split), "s1", candidate, never_fit, TRAIN, IDS
        )
        assert stand_in.model is candidate.ranking and stand_in.refit


def test_a_champion_for_other_feedback_is_not_compared():
    stand_in = promotion.comparable_champion(
        champion("s1", objective="ranking"), "s1", pair(), never_fit, TRAIN, IDS
    )
    assert stand_in.model is None
    assert stand_in.reason == "the champion was trained on implicit feedback"
    decision, reason = promotion.should_promote(0.9, None, False, no_champion=stand_in.reason)
    assert decision and reason == stand_in.reason


def test_settings_this_backend_cannot_fit_leave_nothing_to_compare():
    def spark_fit(matrix, params, *ids):
        raise ValueError(
            "Spark's ALS always scales λ by each row's count: set weighted_regularization=True"
        )

    stand_in = promotion.comparable_champion(
        champion("old split", use_biases=True), "s1", pair(use_biases=False), spark_fit, TRAIN, IDS
    )
    assert stand_in.model is None and "cannot be refit here" in stand_in.reason
    assert "weighted_regularization" in stand_in.reason


def test_no_champion_is_said_so():
    stand_in = promotion.comparable_champion(None, "s1", pair(), never_fit, TRAIN, IDS)
    assert stand_in.model is None and stand_in.reason == "no champion yet"


@pytest.mark.parametrize(
    ("candidate", "champion_score", "tie_promotes", "promoted"),
    [
        (0.9, None, False, True),
        (0.8, 0.9, False, True),  # lower RMSE is better
        (0.9, 0.9, False, False),
        (0.9, 0.9, True, True),
        (1.0, 0.9, True, False),
    ],
)
def test_should_promote(candidate, champion_score, tie_promotes, promoted):
    decision, reason = promotion.should_promote(candidate, champion_score, False, tie_promotes)
    assert decision is promoted and reason


def test_each_role_is_gated_on_its_own_metric_against_its_own_baselines():
    scores = {
        "ranking": {"ndcg_at_10": 0.61},
        "rating": {"rmse": 0.78, "ndcg_at_10": 0.01},
        "most_popular": {"ndcg_at_10": 0.57},
        "item_knn": {"ndcg_at_10": 0.50},
        "bias": {"rmse": 0.79, "ndcg_at_10": 0.02},
        "global_mean": {"rmse": 0.92, "ndcg_at_10": 0.0},
    }
    gate = promotion.beats_baselines
    assert gate(scores, "ndcg_at_10", True, "ranking", promotion.RANKING_BASELINES)
    assert gate(scores, "rmse", False, "rating", promotion.RATING_BASELINES)
    # the rating model ranks worse than popularity: not a ranking model
    assert not gate(scores, "ndcg_at_10", True, "rating", promotion.RANKING_BASELINES)
    scores["item_knn"]["ndcg_at_10"] = 0.62
    assert not gate(scores, "ndcg_at_10", True, "ranking", promotion.RANKING_BASELINES)
    # by default every other model with the metric is a baseline
    assert not gate(scores, "rmse", False, "bias")


def test_models_are_scored_on_the_same_split():
    ratings = csr_matrix(np.random.default_rng(0).integers(0, 5, (30, 12)).astype(float))
    split = train_test_split(ratings, seed=42)
    models = {
        "bias": fit_bias_model(split.train),
        "most_popular": fit_most_popular(split.train),
    }
    scores = promotion.score_models(models, split.train, split.test, "explicit")
    assert list(scores) == ["bias", "most_popular"]
    assert "rmse" in scores["bias"] and "rmse" not in scores["most_popular"]
    assert scores["bias"] == evaluate(models["bias"], split.train, split.test, "explicit")


def _popular_ratings(seed: int = 0) -> csr_matrix:
    """Ratings whose held-out artists are mostly the popular ones."""
    rng = np.random.default_rng(seed)
    popularity = np.linspace(0.6, 0.02, 40)
    rated = rng.random((80, 40)) < popularity
    return csr_matrix(np.where(rated, rng.integers(1, 6, (80, 40)), 0).astype(float))


def _report(
    ranking: TrainingParams, rating: TrainingParams, fit=fit_local
) -> promotion.CandidateReport:
    split = train_test_split(_popular_ratings(), seed=3)
    ids = (np.arange(80).astype(str), np.arange(40).astype(str))
    settings = promotion.CandidateSettings(ranking, rating)
    return promotion.evaluate_candidate(fit, settings, split.train, split.test, ids, None)


RATING = TrainingParams("rating", rank=2, regularization=0.1, iterations=10)
RANKING = TrainingParams(
    "ranking", rank=4, regularization=1.0, weighted_regularization=False, confidence="binary"
)


def test_a_ranking_model_that_loses_to_most_popular_fails_the_gate():
    def fit_least_popular_first(matrix, params, callback=None):
        """A ranking model that lists the least played artists first."""
        if params.objective == "rating":
            return fit_local(matrix, params, callback)
        popular = fit_most_popular(matrix)
        return dataclasses.replace(popular, params=params, item_factors=-popular.item_factors)

    report = _report(RANKING, RATING, fit_least_popular_first)
    gate = report.gate()
    assert gate["ranking_ndcg_at_10"] < gate["most_popular_ndcg_at_10"]
    assert not report.ranking_beats_baselines and not report.beats_baselines
    assert set(gate) == {
        "ranking_ndcg_at_10",
        "most_popular_ndcg_at_10",
        "most_popular_ndcg_at_10_noise",
        "rating_rmse",
        "global_mean_rmse",
        "bias_rmse",
    }
    # far worse than popularity: beyond the held-out noise
    assert gate["most_popular_ndcg_at_10"] - gate["ranking_ndcg_at_10"] > (
        promotion.NOISE_Z * gate["most_popular_ndcg_at_10_noise"]
    )
    assert "by more than the held-out noise" in report.reason


def test_a_rating_model_that_loses_to_the_bias_baseline_falls_back_to_the_bias_model():
    # rank 8 without biases and almost no λ: it fits the training ratings' noise
    overfit = TrainingParams("rating", rank=8, regularization=1e-4, iterations=30, use_biases=False)
    report = _report(RANKING, overfit)
    assert report.scores["rating"]["rmse"] > report.scores["bias"]["rmse"]
    assert report.rating_falls_back and report.serving_rating_params == BIAS_PARAMS
    # the gate judges the lists alone
    assert report.beats_baselines == report.ranking_beats_baselines
    assert "rmse" not in report.scores["ranking"]  # a ranking score is no rating


def _world_report(blend_weight: float) -> promotion.CandidateReport:
    """A ranking model that beats most popular on a small generated world, its lists blended
    with a rating model by ``blend_weight``."""
    ratings = generate_world(
        seed=1, n_users=120, n_artists=200, n_ratings=5000, min_ratings_per_user=10
    ).ratings
    users, user_ids = pd.factorize(ratings["user_id"])
    artists, artist_ids = pd.factorize(ratings["artist_id"])
    matrix = csr_matrix(
        (ratings["rating"].to_numpy(float), (users, artists)),
        shape=(len(user_ids), len(artist_ids)),
    )
    split = train_test_split(matrix, seed=3)
    ranking = dataclasses.replace(RANKING, rank=8, regularization=10.0)
    settings = promotion.CandidateSettings(ranking, RATING, blend_weight=blend_weight)
    ids = (np.asarray(user_ids, dtype=str), np.asarray(artist_ids, dtype=str))
    return promotion.evaluate_candidate(fit_local, settings, split.train, split.test, ids, None)


def test_a_blend_that_costs_the_lists_their_lead_gives_way_to_the_ranking_model_alone():
    alone = _world_report(0.0)
    assert alone.beats_baselines
    # so much weight on the predicted rating that the lists are the rating model's order,
    # which ranks far worse than popularity
    report = _world_report(1000.0)
    assert report.beats_baselines and report.promote
    assert report.evaluation_model.blend_weight == 0.0
    assert "its blended lists (w=1000) scored" in report.reason
    assert "lists by the ranking model alone" in report.reason
    # the published lists are scored as the ranking model's alone, and no blend is on record
    assert report.scores["ranking"] == alone.scores["ranking"]
    assert "ranking_alone" not in report.scores
    assert report.noise == alone.noise


def _decided(
    ranking_ndcg: float, rating_rmse: float, noise: dict[str, float] | None = None
) -> promotion.CandidateReport:
    scores = {
        "ranking": {"ndcg_at_10": ranking_ndcg},
        "rating": {"rmse": rating_rmse},
        "most_popular": {"ndcg_at_10": 0.20},
        "item_knn": {"ndcg_at_10": 0.25},
        "global_mean": {"rmse": 1.00},
        "bias": {"rmse": 0.90},
    }
    ratings = _popular_ratings()
    pair = ModelPair(fit_local(ratings, RANKING), fit_local(ratings, RATING))
    no_champion = promotion.StandIn(None, reason="no champion yet")
    return promotion.decide(pair, {}, {}, scores, "split", 10, no_champion, None, noise)


def test_the_lists_decide_promotion_and_a_losing_rating_model_only_changes_who_predicts():
    both_win = _decided(0.30, 0.85)
    assert both_win.promote and both_win.beats_baselines and not both_win.rating_falls_back
    assert both_win.serving_rating_params == RATING

    rating_loses = _decided(0.30, 0.95)
    assert rating_loses.promote and rating_loses.beats_baselines
    assert rating_loses.rating_falls_back and rating_loses.serving_rating_params == BIAS_PARAMS
    assert "the bias model predicts the ratings" in rating_loses.reason

    # a list that loses to item-kNN is never champion, whatever its ratings
    ranking_loses = _decided(0.24, 0.85)
    assert not ranking_loses.promote and not ranking_loses.beats_baselines
    assert "item_knn baseline's 0.2500" in ranking_loses.reason


def test_a_list_level_with_a_baseline_within_the_held_out_noise_is_published():
    # 0.24 against item-kNN's 0.25: a loss of 0.01, within 1.645 standard errors of 0.01
    level = _decided(0.24, 0.85, {"most_popular": 0.01, "item_knn": 0.01})
    assert level.beats_baselines and level.promote
    assert level.gate()["item_knn_ndcg_at_10_noise"] == 0.01
    # the same loss where the held-out part measures it more precisely
    beaten = _decided(0.24, 0.85, {"most_popular": 0.002, "item_knn": 0.002})
    assert not beaten.beats_baselines and not beaten.promote
    assert "by more than the held-out noise (±0.0020)" in beaten.reason


def test_the_noise_is_the_standard_error_of_the_paired_per_listener_difference():
    split = train_test_split(_popular_ratings(), seed=3)
    models = {
        "ranking": fit_local(split.train, RANKING),
        "most_popular": fit_most_popular(split.train),
    }
    noise = promotion.paired_noise(
        models, "ranking", ("most_popular",), split.train, split.test, None
    )
    per_listener = []
    for user in range(split.test.shape[0]):
        held = set(split.test[user].indices)
        if not held:
            continue
        ndcg = {}
        for name, model in models.items():
            scores = model.user_vectors()[user] @ model.item_vectors().T
            scores[split.train[user].indices] = -np.inf
            listed = np.argsort(-scores, kind="stable")[:10]
            gains = np.array([item in held for item in listed], float)
            ideal = np.sum(1 / np.log2(np.arange(2, min(len(held), 10) + 2)))
            ndcg[name] = gains @ (1 / np.log2(np.arange(2, 12))) / ideal
        per_listener.append(ndcg["ranking"] - ndcg["most_popular"])
    expected = np.std(per_listener, ddof=1) / np.sqrt(len(per_listener))
    assert noise["most_popular"] == pytest.approx(expected, rel=1e-6)
    # a list compared with itself differs by nothing
    assert promotion.paired_noise(
        {"ranking": models["ranking"], "same": models["ranking"]},
        "ranking",
        ("same",),
        split.train,
        split.test,
        None,
    ) == {"same": 0.0}


def test_on_lastfm_the_ranking_model_beats_most_popular_and_item_knn(lastfm_dir):
    """Real play counts, the settings CV chose on Last.fm-2k's training part (bench_train.py):
    the ranking model beside the baselines it is gated on."""
    plays = pd.read_csv(lastfm_dir / "user_artists.dat", sep="\t")
    users, user_ids = pd.factorize(plays["userID"])
    items, item_ids = pd.factorize(plays["artistID"])
    matrix = csr_matrix(
        (plays["weight"].astype(float), (users, items)), shape=(len(user_ids), len(item_ids))
    )
    split = train_test_split(matrix, seed=42)
    ranking = TrainingParams(
        "ranking",
        rank=64,
        regularization=30.0,
        alpha=1.0,
        confidence="log1p",
        weighted_regularization=False,
    )
    settings = promotion.CandidateSettings(ranking, neighbours=NeighbourParams(100, "bm25"))
    ids = (user_ids.astype(str).to_numpy(), item_ids.astype(str).to_numpy())
    report = promotion.evaluate_candidate(fit_local, settings, split.train, split.test, ids, None)
    gate = report.gate()
    assert report.beats_baselines, gate
    assert gate["ranking_ndcg_at_10"] > 1.2 * gate["item_knn_ndcg_at_10"], gate
