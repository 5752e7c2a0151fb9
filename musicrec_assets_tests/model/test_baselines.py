import dataclasses

import numpy as np
import pytest
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.baselines import (
    BIAS_PARAMS,
    NeighbourParams,
    fit_baselines,
    fit_bias_model,
    fit_global_mean,
    fit_item_knn,
    fit_most_popular,
)
from musicrec_assets.model.sparse import from_triples
from musicrec_assets.serving.topn import top_n_items


def biased_ratings(n_users=300, n_items=200, seed=0) -> csr_matrix:
    """3.5 + b_u + b_i + N(0, 0.5²) on ~20% of the pairs."""
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(rng.random((n_users, n_items)) < 0.2)
    user_bias, item_bias = rng.normal(0, 0.7, n_users), rng.normal(0, 0.7, n_items)
    ratings = 3.5 + user_bias[rows] + item_bias[cols] + rng.normal(0, 0.5, len(rows))
    return from_triples(rows, cols, ratings, (n_users, n_items))


def test_global_mean_predicts_the_mean_everywhere():
    matrix = csr_matrix(np.array([[1.0, 0, 3.0], [0, 5.0, 0]]))
    model = fit_global_mean(matrix)
    assert model.predict(np.array([0, 1, 1]), np.array([1, 0, 2])) == pytest.approx([3.0] * 3)
    assert model.user_vectors() @ model.item_vectors().T == pytest.approx(np.full((2, 3), 3.0))


def test_bias_model_one_pass_is_the_damped_mean_by_hand():
    matrix = csr_matrix(np.array([[4.0, 2.0, 0.0], [0.0, 5.0, 1.0]]))
    model = fit_bias_model(
        matrix, dataclasses.replace(BIAS_PARAMS, regularization=1.0, iterations=1)
    )
    mean = 3.0
    # users first, items at 0: b_u = Σ (r − μ) / (n_u + λ)
    user_bias = np.array([(1.0 - 1.0) / 3, (2.0 - 2.0) / 3])
    # then items given those user biases
    item_bias = np.array([1.0 / 2, (-1.0 + 2.0) / 3, -2.0 / 2])
    assert model.global_mean == pytest.approx(mean)
    assert model.user_bias == pytest.approx(user_bias)
    assert model.item_bias == pytest.approx(item_bias)


def test_bias_model_beats_the_global_mean_on_biased_data():
    split = train_test_split(biased_ratings(), seed=42)
    mean = evaluate(fit_global_mean(split.train), split.train, split.test, "explicit")
    biases = evaluate(fit_bias_model(split.train), split.train, split.test, "explicit")
    assert biases["rmse"] < 0.6 * mean["rmse"]
    assert biases["rmse"] < 0.6


def test_most_popular_ranks_by_training_users():
    train = csr_matrix(
        np.array([[1, 0, 0, 1], [1, 0, 1, 0], [1, 0, 1, 0], [0, 0, 0, 0]], dtype=float) * 7
    )
    model = fit_most_popular(train)
    scores = model.user_vectors() @ model.item_vectors().T
    # item 0 has 3 users, item 2 has 2, item 3 has 1, item 1 none
    assert np.array_equal(np.argsort(-scores[3], kind="stable"), [0, 2, 3, 1])
    test = csr_matrix(
        np.array([[0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=float)
    )
    result = evaluate(model, train, test, "implicit", k=1)
    # top unseen item: user 0 → 2 (hit), user 1 → 3 (hit), user 2 → 3 (miss), user 3 → 0 (hit)
    assert result["precision_at_1"] == pytest.approx(0.75)


def two_taste_matrix() -> csr_matrix:
    """Users 0-2 play items 0-2, users 3-5 items 3-5; user 6 has played item 0 only."""
    rows = [0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 5, 5, 6]
    cols = [0, 1, 0, 1, 2, 1, 2, 3, 4, 3, 4, 5, 4, 5, 0]
    return csr_matrix((np.arange(1.0, 16.0), (rows, cols)), shape=(7, 6))


@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_item_knn_recommends_the_neighbours_of_what_the_user_played(similarity):
    train = two_taste_matrix()
    model = fit_item_knn(train, NeighbourParams(neighbours=3, similarity=similarity))
    scores = model.user_vectors() @ model.item_vectors().T
    # user 6 played item 0: its neighbours 1 and 2 score, the other taste's items do not
    assert scores[6, 1] > 0 and scores[6, 2] > 0
    assert np.all(scores[6, 3:] == 0)
    # user 0 (items 0, 1) gets item 2 first among its unseen items
    top, _ = top_n_items(model.user_vectors(), model.item_vectors(), seen=train, n=1)
    assert top[0, 0] == 2 and top[3, 0] == 5


@pytest.mark.parametrize(
    ("similarity", "recommender"),
    [("cosine", CosineRecommender(K=4)), ("bm25", BM25Recommender(K=4))],
)
def test_item_knn_scores_as_implicit_recommends(similarity, recommender):
    rng = np.random.default_rng(4)
    train = csr_matrix(np.where(rng.random((40, 25)) < 0.2, rng.integers(1, 50, (40, 25)), 0.0))
    model = fit_item_knn(train, NeighbourParams(neighbours=4, similarity=similarity))
    recommender.fit(csr_matrix(train, dtype=np.float32), show_progress=False)
    users = np.arange(40)
    expected_items, expected_scores = recommender.recommend(users, train[users], N=5)
    top, scores = top_n_items(model.user_vectors(), model.item_vectors(), seen=train, n=5)
    assert scores == pytest.approx(expected_scores, rel=1e-5)
    has_ties = np.any(np.diff(expected_scores, axis=1) == 0)
    assert has_ties or np.array_equal(top, expected_items)


def test_item_knn_rejects_an_unknown_similarity():
    with pytest.raises(ValueError, match="unknown similarity"):
        fit_item_knn(two_taste_matrix(), NeighbourParams(similarity="jaccard"))


def test_ranking_baselines_do_not_predict_ratings():
    split = train_test_split(biased_ratings(n_users=60, n_items=40), seed=42)
    models = fit_baselines(split.train, "explicit", NeighbourParams(neighbours=10))
    assert list(models) == ["global_mean", "bias", "most_popular", "item_knn"]
    for name in ("most_popular", "item_knn"):
        scores = evaluate(models[name], split.train, split.test, "explicit")
        assert "rmse" not in scores and "ndcg_liked_at_10" in scores
    assert list(fit_baselines(split.train, "implicit")) == ["most_popular"]
