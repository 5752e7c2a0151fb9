"""The lists of ratings: the ranking score standardised per listener plus w × the predicted
rating, w chosen by cross-validation."""

import numpy as np
import pytest

from musicrec_assets.evaluation import blend
from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.tuning import cv_folds
from musicrec_assets.model.factors import ModelPair, TrainingParams, blended_vectors
from musicrec_assets.model.fitters import fit_local, ranking_base_params
from musicrec_assets.model.sparse import from_triples
from musicrec_assets_tests.conftest import small_world
from musicrec_assets_tests.evaluation.test_tuning import disliked_ratings

RANKING = TrainingParams(
    "ranking",
    rank=6,
    regularization=1.0,
    iterations=8,
    confidence="binary",
    weighted_regularization=False,
)
RATING = TrainingParams(
    "rating", rank=4, regularization=0.1, iterations=10, bias_regularization=10.0
)


def test_the_blend_is_one_dot_product_of_the_standardised_score_and_the_rating():
    rng = np.random.default_rng(0)
    ranking_users, ranking_items = rng.normal(size=(5, 3)), rng.normal(size=(40, 3))
    rating_users, rating_items = rng.normal(size=(5, 4)), rng.normal(size=(40, 4))
    users, items = blended_vectors(ranking_users, ranking_items, rating_users, rating_items, 1.5)
    ranking_scores = ranking_users @ ranking_items.T
    standardised = (ranking_scores - ranking_scores.mean(1, keepdims=True)) / ranking_scores.std(
        1, keepdims=True
    )
    wanted = standardised + 1.5 * (rating_users @ rating_items.T)
    blended = users @ items.T
    # the same up to each user's constant: the same order, the same differences
    difference = blended - wanted
    assert np.allclose(difference, difference[:, :1], atol=1e-4)


def test_a_pair_keeps_its_blend_weight_when_saved(tmp_path):
    ratings = disliked_ratings()
    ids = (np.arange(ratings.shape[0]).astype(str), np.arange(ratings.shape[1]).astype(str))
    pair = ModelPair(fit_local(ratings, RANKING), fit_local(ratings, RATING), 0.5).with_ids(*ids)
    pair.save(tmp_path, "factors")
    loaded = ModelPair.load(tmp_path, "factors")
    assert loaded.blend_weight == 0.5
    assert np.allclose(loaded.list_model().user_vectors(), pair.list_model().user_vectors())
    # without a weight the lists are the ranking model's own
    assert ModelPair(pair.ranking, pair.rating).list_model() is pair.ranking


def world_ratings():
    world = small_world()
    users, user_rows = np.unique(world.ratings["user_id"], return_inverse=True)
    artists, artist_rows = np.unique(world.ratings["artist_id"], return_inverse=True)
    values = world.ratings["rating"].to_numpy(float)
    return from_triples(user_rows, artist_rows, values, (len(users), len(artists)))


def test_cross_validation_chooses_a_blend_that_drops_predicted_dislikes():
    """On a generated world the ranking model alone lists artists its rating model expects
    the listener to rate below their mean; the chosen blend lists fewer and ranks the liked
    ones better, giving up at most the tolerance of NDCG@10 in CV."""
    ranking = TrainingParams(
        "ranking",
        rank=16,
        regularization=30.0,
        iterations=10,
        confidence="rating",
        weighted_regularization=False,
    )
    result = blend.choose_blend_weight(
        cv_folds(world_ratings(), 2, 0, 0), ranking, RATING, fit_local
    )
    alone, chosen = result.trials[0].mean_metrics, result.best.mean_metrics
    assert result.trials[0].params.blend_weight == 0
    assert alone["predicted_dislikes_at_10"] > blend.DISLIKE_LIMIT
    assert result.best.params.blend_weight > 0
    assert chosen["predicted_dislikes_at_10"] < alone["predicted_dislikes_at_10"]
    assert chosen["ndcg_at_10"] >= (1 - blend.NDCG_TOLERANCE) * alone["ndcg_at_10"]
    assert chosen["ndcg_liked_at_10"] > alone["ndcg_liked_at_10"]
    # the largest weight lists almost no dislikes but ranks far worse: not chosen
    heaviest = result.trials[-1].mean_metrics
    assert heaviest["predicted_dislikes_at_10"] < chosen["predicted_dislikes_at_10"]
    assert heaviest["ndcg_at_10"] < (1 - blend.NDCG_TOLERANCE) * alone["ndcg_at_10"]


def test_a_blend_that_costs_ranking_is_not_chosen():
    """Users rate most what they like least (``disliked_ratings``): dropping predicted
    dislikes would drop what they rate, so the ranking model's own lists stay."""
    result = blend.choose_blend_weight(
        cv_folds(disliked_ratings(), 2, 0, 0), RANKING, RATING, fit_local
    )
    assert result.best.params.blend_weight == 0


def test_predicted_dislikes_count_what_the_judge_rates_below_the_users_mean():
    ratings = disliked_ratings()
    rating_model = fit_local(ratings, RATING)
    ranking_model = fit_local(ratings, ranking_base_params("explicit", 8, 0))
    scores = evaluate(ranking_model, ratings, ratings, "explicit", judge=rating_model)
    blended = ModelPair(ranking_model, rating_model, 8.0).list_model()
    by_rating = evaluate(blended, ratings, ratings, "explicit", judge=rating_model)
    assert 0 <= by_rating["predicted_dislikes_at_10"] < scores["predicted_dislikes_at_10"]
    assert "predicted_dislikes_at_10" not in evaluate(ranking_model, ratings, ratings, "explicit")
    with pytest.raises(KeyError):
        evaluate(ranking_model, ratings, ratings, "implicit", judge=rating_model)[
            "predicted_dislikes_at_10"
        ]
