"""The rating model's conjugate-gradient half-steps against the exact solve of the same system."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix

from musicrec_assets.evaluation.metrics import evaluate
from musicrec_assets.evaluation.split import train_test_split
from musicrec_assets.model.explicit_als import (
    CG_STEPS,
    _RowSystems,
    diagonal_penalty,
    fit_explicit_als,
)
from musicrec_assets.model.factors import FactorModel, TrainingParams
from musicrec_assets.model.sparse import from_triples
from musicrec_assets_tests.model.test_als import planted_ratings

SAMPLE_RATINGS = (
    Path(__file__).resolve().parents[2] / "musicrec_assets/sample_data/ratings/ratings.jsonl.gz"
)


def exact_half_step(
    ratings: csr_matrix,
    other: np.ndarray,
    penalty: np.ndarray,
    global_mean: float,
    use_biases: bool,
) -> np.ndarray:
    """Every row's normal equations formed and solved exactly, the solve the CG steps replace.
    ``other`` holds the other side's factors, then with biases its bias; so does the result."""
    vectors = np.array(other, dtype=np.float64)
    targets = ratings.data.astype(np.float64)
    if use_biases:
        targets = targets - global_mean - vectors[ratings.indices, -1]
        vectors[:, -1] = 1.0
    dim = vectors.shape[1]
    pattern = (ratings.indices, ratings.indptr)
    indicator = csr_matrix((np.ones(ratings.nnz), *pattern), shape=ratings.shape)
    outer = (vectors[:, :, None] * vectors[:, None, :]).reshape(len(vectors), -1)
    gram = (indicator @ outer).reshape(-1, dim, dim)
    gram[:, np.arange(dim), np.arange(dim)] += penalty
    right = csr_matrix((targets, *pattern), shape=ratings.shape) @ vectors
    return np.linalg.solve(gram, right[..., None])[..., 0]


def exact_fit(matrix: csr_matrix, params: TrainingParams) -> FactorModel:
    """ALS with exact half-steps from ``fit_explicit_als``'s own seeded start."""
    ratings = csr_matrix(matrix, dtype=np.float64)
    by_item = ratings.T.tocsr()
    rank, width = params.rank, params.rank + params.use_biases
    rng = np.random.default_rng(params.seed)
    scale = 1.0 / np.sqrt(max(rank, 1))
    start = [np.zeros((n, width)) for n in ratings.shape]
    for rows in start:
        rows[:, :rank] = rng.normal(0.0, scale, (len(rows), rank)).astype(np.float32)
    items = start[1]
    mean = float(ratings.data.mean()) if params.use_biases else 0.0
    user_penalty = diagonal_penalty(params, np.diff(ratings.indptr))
    item_penalty = diagonal_penalty(params, np.diff(by_item.indptr))
    for _ in range(params.iterations):
        users = exact_half_step(ratings, items, user_penalty, mean, params.use_biases)
        items = exact_half_step(by_item, users, item_penalty, mean, params.use_biases)
    return FactorModel(
        params=params,
        user_factors=users[:, :rank].astype(np.float32),
        item_factors=items[:, :rank].astype(np.float32),
        global_mean=mean,
        user_bias=users[:, rank].astype(np.float32) if params.use_biases else None,
        item_bias=items[:, rank].astype(np.float32) if params.use_biases else None,
    )


def all_predictions(model: FactorModel) -> np.ndarray:
    users, items = np.indices((len(model.user_factors), len(model.item_factors)))
    return model.predict(users.ravel(), items.ravel())


def with_empty_user_and_item(matrix: csr_matrix) -> csr_matrix:
    """``matrix`` with one more user and one more item, neither with a rating."""
    coo = matrix.tocoo()
    return from_triples(coo.row, coo.col, coo.data, (matrix.shape[0] + 1, matrix.shape[1] + 1))


@pytest.mark.parametrize(
    "weighted, use_biases, bias_regularization, rank",
    [
        (True, True, None, 4),
        (True, True, 2.0, 4),
        (False, True, 2.0, 4),
        (True, False, None, 4),
        (False, True, None, 0),
    ],
    ids=["wr-biases", "wr-own-bias-lambda", "plain-own-bias-lambda", "wr", "bias-only"],
)
def test_rank_plus_one_cg_steps_are_the_exact_solve(
    weighted, use_biases, bias_regularization, rank
):
    matrix = with_empty_user_and_item(planted_ratings(n_users=50, n_items=40, mean=3.0))
    params = TrainingParams(
        objective="rating",
        rank=rank,
        regularization=0.1,
        iterations=3,
        weighted_regularization=weighted,
        use_biases=use_biases,
        bias_regularization=bias_regularization,
    )
    # CG ends in d steps on a d × d system, so from the same start both take the same path
    model = fit_explicit_als(matrix, params, cg_steps=rank + use_biases)
    exact = exact_fit(matrix, params)

    for side in ("user_factors", "item_factors", "user_bias", "item_bias"):
        if getattr(exact, side) is not None:
            np.testing.assert_allclose(getattr(model, side), getattr(exact, side), atol=1e-4)
    # the rows without ratings are pulled to 0 by their penalty alone
    for side in (model.user_factors, model.item_factors, model.user_bias, model.item_bias):
        if side is not None:
            np.testing.assert_allclose(side[-1], 0.0, atol=1e-5)


def test_converged_cg_fit_is_a_fixed_point_of_the_exact_solve():
    matrix = planted_ratings(n_users=120, n_items=90, density=0.3, mean=3.0, bias_scale=0.5)
    params = TrainingParams(
        objective="rating", rank=5, regularization=0.05, iterations=60, bias_regularization=1.0
    )
    model = fit_explicit_als(matrix, params)

    by_item = matrix.T.tocsr()
    users = np.hstack([model.user_factors, model.user_bias[:, None]])
    items = np.hstack([model.item_factors, model.item_bias[:, None]])
    penalty = diagonal_penalty(params, np.diff(by_item.indptr))
    exact_items = exact_half_step(by_item, users, penalty, model.global_mean, True)
    np.testing.assert_allclose(items, exact_items, atol=1e-4)
    # and it is the optimum the exact solve reaches from the same start
    exact = exact_fit(matrix, params)
    np.testing.assert_allclose(all_predictions(model), all_predictions(exact), atol=1e-3)


def sample_ratings() -> csr_matrix:
    ratings = pd.read_json(SAMPLE_RATINGS, lines=True)
    users, user_index = np.unique(ratings["user_id"], return_inverse=True)
    artists, artist_index = np.unique(ratings["artist_id"], return_inverse=True)
    values = ratings["rating"].to_numpy(float)
    return from_triples(user_index, artist_index, values, (len(users), len(artists)))


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"bias_regularization": 1.0},
        {"use_biases": False},
        {"rank": 32, "regularization": 0.05, "bias_regularization": 5.0},
    ],
    ids=["bench-setting", "own-bias-lambda", "spark-setting", "rank-32"],
)
def test_held_out_rmse_matches_the_exact_solve_on_the_sample(changes):
    split = train_test_split(sample_ratings(), seed=42)
    params = TrainingParams(
        **{"objective": "rating", "rank": 10, "regularization": 0.1, "iterations": 15, **changes}
    )
    ours = evaluate(fit_explicit_als(split.train, params), split.train, split.test, "explicit")
    exact = evaluate(exact_fit(split.train, params), split.train, split.test, "explicit")
    assert ours["rmse"] == pytest.approx(exact["rmse"], rel=0.005)


def test_rejects_fewer_than_one_cg_step():
    with pytest.raises(ValueError, match="cg_steps"):
        fit_explicit_als(
            planted_ratings(n_users=10, n_items=10), TrainingParams("rating", 2, 0.1), cg_steps=0
        )


@pytest.mark.parametrize("use_biases", [False, True])
def test_a_half_step_cut_into_parts_solved_in_threads_is_the_whole_one(use_biases):
    ratings = with_empty_user_and_item(planted_ratings(n_users=50, n_items=40, mean=3.0))
    params = TrainingParams("rating", rank=6, regularization=0.1, use_biases=use_biases)
    penalty = diagonal_penalty(params, np.diff(ratings.indptr))
    rng = np.random.default_rng(0)
    items = rng.normal(size=(40 + 1, 6 + use_biases)).astype(np.float32)
    start = rng.normal(size=(50 + 1, 6 + use_biases)).astype(np.float32)
    solved = {}
    for n_parts in (1, 3):
        systems = _RowSystems(ratings, penalty, 3.0, use_biases, n_parts=n_parts)
        assert len(systems.parts) == n_parts
        solved[n_parts] = start.copy()
        systems.solve(items, solved[n_parts], CG_STEPS)
    # each row's steps are its own: the same numbers, whichever part holds it
    np.testing.assert_array_equal(solved[1], solved[3])
    assert not np.array_equal(solved[1], start)
