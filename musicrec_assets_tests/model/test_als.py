import dataclasses

import numpy as np
import pytest
from implicit.cpu.als import AlternatingLeastSquares
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.confidence import fit_confidence
from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.model.sparse import from_triples

NOISE = 0.3


def planted_ratings(
    n_users=400, n_items=300, rank=5, density=0.3, mean=0.0, bias_scale=0.0, seed=0
) -> csr_matrix:
    """μ + b_u + b_i + x_u·y_i + N(0, NOISE²) on a random ~``density`` share of the pairs."""
    rng = np.random.default_rng(seed)
    users = rng.normal(size=(n_users, rank))
    items = rng.normal(size=(n_items, rank))
    user_bias = bias_scale * rng.normal(size=n_users)
    item_bias = bias_scale * rng.normal(size=n_items)
    observed = rng.random((n_users, n_items)) < density
    rows, cols = np.nonzero(observed)
    ratings = (
        mean
        + user_bias[rows]
        + item_bias[cols]
        + np.einsum("ij,ij->i", users[rows], items[cols])
        + rng.normal(0.0, NOISE, size=len(rows))
    )
    return from_triples(rows, cols, ratings, (n_users, n_items))


def fit(matrix: csr_matrix, **overrides):
    params = TrainingParams(
        **{"objective": "rating", "rank": 5, "regularization": 0.01, "iterations": 10, **overrides}
    )
    return fit_explicit_als(matrix, params)


def test_recovers_planted_low_rank_matrix_to_noise_level():
    split = train_test_split(planted_ratings(), seed=42)
    # without biases this is Spark's explicit ALS; estimating 5 + 5 parameters from ~72 and ~96
    # ratings per user and item costs about 6% over the noise, so 10% is a real bound
    model = fit(split.train, use_biases=False)
    metrics = evaluate(model, split.train, split.test, "explicit")
    assert metrics["rmse"] <= 1.1 * NOISE


def test_same_seed_gives_identical_factors():
    matrix = planted_ratings(n_users=100, n_items=80)
    first, second = fit(matrix, seed=3), fit(matrix, seed=3)
    assert np.array_equal(first.user_factors, second.user_factors)
    assert np.array_equal(first.item_factors, second.item_factors)
    assert np.array_equal(first.user_bias, second.user_bias)
    other = fit(matrix, seed=4, iterations=1)
    assert not np.array_equal(first.user_factors, other.user_factors)


def test_biases_help_when_data_has_planted_biases():
    split = train_test_split(planted_ratings(mean=3.0, bias_scale=1.0), seed=42)
    with_biases = evaluate(fit(split.train, use_biases=True), split.train, split.test, "explicit")
    without = evaluate(fit(split.train, use_biases=False), split.train, split.test, "explicit")
    # without biases the rank-5 factors must also absorb μ + b_u + b_i, and cannot
    assert with_biases["rmse"] < 0.5 * without["rmse"]
    assert with_biases["rmse"] <= 1.15 * NOISE


def test_training_objective_decreases_every_iteration():
    history: list[dict[str, float]] = []
    params = TrainingParams(objective="rating", rank=5, regularization=0.05, iterations=8)
    matrix = planted_ratings(n_users=150, n_items=100)
    fit_explicit_als(
        matrix,
        params,
        callback=lambda iteration, metrics: history.append(metrics),
    )
    objectives = [metrics["train_objective"] for metrics in history]
    assert len(objectives) == 8
    # every CG step lowers its row's share of the objective, so the objective never goes up
    assert all(
        later <= earlier * (1 + 1e-9)
        for earlier, later in zip(objectives, objectives[1:], strict=False)
    )
    assert history[-1]["train_rmse"] < 0.5


def test_item_step_solves_the_documented_normal_equations():
    matrix = planted_ratings(n_users=30, n_items=20, density=0.5, mean=3.0)
    params = TrainingParams(
        objective="rating",
        rank=3,
        regularization=0.1,
        iterations=1,
        weighted_regularization=True,
        use_biases=True,
    )
    # d = rank + 1 CG steps solve each row's d × d system exactly (up to float32 rounding), so
    # after the final item half-step every item row is optimal given the users
    model = fit_explicit_als(matrix, params, cg_steps=params.rank + 1)
    item = 4
    raters = matrix[:, item].nonzero()[0]
    ratings = matrix[raters, item].toarray().ravel()
    user_part = np.hstack([model.user_factors[raters], np.ones((len(raters), 1))]).astype(float)
    targets = ratings - model.global_mean - model.user_bias[raters]
    gram = user_part.T @ user_part + 0.1 * len(raters) * np.eye(4)
    expected = np.linalg.solve(gram, user_part.T @ targets)
    actual = np.append(model.item_factors[item], model.item_bias[item])
    assert np.allclose(actual, expected, atol=1e-4)


def test_rank_zero_with_biases_is_a_bias_model():
    matrix = planted_ratings(n_users=60, n_items=40, mean=3.0, bias_scale=1.0)
    model = fit(matrix, rank=0)
    assert model.user_factors.shape == (60, 0)
    assert model.predict(np.array([0, 1]), np.array([2, 3])).shape == (2,)


def test_rejects_rank_zero_without_biases_and_non_positive_lambda():
    matrix = planted_ratings(n_users=20, n_items=20)
    with pytest.raises(ValueError):
        fit(matrix, rank=0, use_biases=False)
    with pytest.raises(ValueError):
        fit(matrix, regularization=0.0)


def test_implicit_als_returns_float32_factor_model_with_scaler_extras():
    rng = np.random.default_rng(0)
    plays = csr_matrix(rng.poisson(0.3, size=(60, 40)).astype(float) * 10)
    params = TrainingParams(
        objective="ranking", rank=8, regularization=1.0, iterations=3, confidence="bm25", alpha=0.1
    )
    losses: list[float] = []
    model = fit_implicit_als(
        plays,
        params,
        callback=lambda iteration, metrics: losses.append(metrics["train_loss"]),
    )
    assert model.user_factors.shape == (60, 8) and model.user_factors.dtype == np.float32
    assert model.item_factors.shape == (40, 8)
    assert not model.has_biases
    assert model.extras["bm25_idf"].shape == (40,)
    assert len(losses) == 3
    again = fit_implicit_als(plays, params)
    assert np.array_equal(model.item_factors, again.item_factors)


def implicit_user_factors(item_factors, regularization, confidence):
    """What implicit's exact (non-CG) solver makes of ``confidence`` for fixed item factors."""
    with threadpool_limits(1, "blas"):
        solver = AlternatingLeastSquares(factors=4, regularization=regularization, use_cg=False)
    solver.item_factors = item_factors
    return solver.recalculate_user(np.arange(confidence.shape[0]), confidence)


def test_implicit_reads_its_input_as_the_confidence_one_plus_alpha_scale():
    rng = np.random.default_rng(2)
    plays = csr_matrix(rng.poisson(0.5, size=(5, 30)).astype(float) * 7)
    item_factors = rng.normal(size=(30, 4)).astype(np.float32)
    regularization, alpha = 0.5, 2.0
    confidence = fit_confidence(plays, "log1p", alpha).transform(plays)

    user_factors = implicit_user_factors(item_factors, regularization, confidence)

    # Hu et al.: x_u = (Yᵀ C_u Y + λI)⁻¹ Yᵀ C_u p_u with c_ui = 1 + α·log1p(plays), 1 elsewhere
    y = item_factors.astype(float)
    for user in range(5):
        c = 1.0 + alpha * np.log1p(plays[user].toarray().ravel())
        p = (plays[user].toarray().ravel() > 0).astype(float)
        expected = np.linalg.solve(
            y.T @ (c[:, None] * y) + regularization * np.eye(4), y.T @ (c * p)
        )
        assert np.allclose(user_factors[user], expected, rtol=1e-3, atol=1e-4)


def test_ranking_model_of_ratings_is_a_factor_model_of_implicit_feedback():
    ratings = planted_ratings(n_users=80, n_items=50, mean=3.0)
    params = TrainingParams(
        objective="ranking", rank=6, regularization=1.0, iterations=4, confidence="centred"
    )
    model = fit_implicit_als(ratings, params)
    assert isinstance(model, FactorModel)
    assert model.user_factors.shape == (80, 6) and model.item_factors.shape == (50, 6)
    assert not model.has_biases and model.extras == {}
    assert model.params == dataclasses.replace(params, weighted_regularization=False)


def test_implicit_reads_a_negative_entry_as_preference_zero_with_its_absolute_confidence():
    """What centred confidence relies on in the installed implicit: −c means p = 0, weight c."""
    rng = np.random.default_rng(3)
    ratings = csr_matrix(np.where(rng.random((5, 30)) < 0.4, rng.integers(1, 9, (5, 30)) / 2, 0))
    item_factors = rng.normal(size=(30, 4)).astype(np.float32)
    regularization, alpha = 0.5, 2.0
    confidence = fit_confidence(ratings, "centred", alpha).transform(ratings)
    assert (confidence.data < 0).any()

    user_factors = implicit_user_factors(item_factors, regularization, confidence)

    y = item_factors.astype(float)
    for user in range(5):
        signed = confidence[user].toarray().ravel().astype(float)
        c = np.where(signed == 0, 1.0, np.abs(signed))
        p = (signed > 0).astype(float)
        expected = np.linalg.solve(
            y.T @ (c[:, None] * y) + regularization * np.eye(4), y.T @ (c * p)
        )
        assert np.allclose(user_factors[user], expected, rtol=1e-3, atol=1e-4)
