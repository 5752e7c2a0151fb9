import numpy as np
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.baselines import fit_bias_model, fit_global_mean, fit_most_popular
from musicrec_assets.model.sparse import from_triples


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
    model = fit_bias_model(matrix, regularization=1.0, iterations=1)
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
