"""Explicit-feedback alternating least squares in numpy/scipy (``implicit`` has no explicit mode).

Objective, over the observed ratings R::

    minimize  Σ_(u,i)∈R (r_ui − μ − b_u − b_i − x_u·y_i)²
              + λ ( Σ_u w_u ‖x_u‖² + Σ_i w_i ‖y_i‖² ) + λ_b ( Σ_u b_u² + Σ_i b_i² )

with μ the mean training rating and, when ``weighted_regularization`` is set (ALS-WR, as Spark
MLlib does), w_u = n_u and w_i = n_i, the number of ratings of user u and item i; otherwise
w_u = w_i = 1. λ_b is ``bias_regularization``, plain; when it is None the biases take the
factors' λ w instead. Without ``use_biases`` μ = b_u = b_i = 0 and, with weighted
regularization, this is exactly Spark's explicit ALS.

Each half-step fixes one side and solves every row of the other side at once. For a user u,
with augmented item vectors ỹ_i = [y_i, 1], unknowns z_u = [x_u, b_u] and targets
t_ui = r_ui − μ − b_i (without biases: ỹ_i = y_i, z_u = x_u, t_ui = r_ui)::

    (Σ_i∈R_u ỹ_i ỹ_iᵀ + diag(λ w_u, …, λ w_u, λ_b)) z_u = Σ_i∈R_u t_ui ỹ_i

All users' Gram matrices come from one sparse × dense product: the 0/1 indicator matrix of R
times the n_items × d(d+1)/2 matrix of the (upper triangles of the) outer products ỹ_i ỹ_iᵀ.
Rows are processed in chunks to bound memory, then solved with one batched
``np.linalg.solve``. Items are solved symmetrically with ũ_u = [x_u, 1].

Factors start from a seeded N(0, 1/rank) (dot products of order 1), biases from 0; each
iteration solves users, then items. Computation is float64; the model is stored float32.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.model.factors import FactorModel, IterationCallback, TrainingParams
from musicrec_assets.model.sparse import row_of_entry

# bounds the (rows × d × d) float64 Gram block of one chunk to about 64 MB
_GRAM_CHUNK_ENTRIES = 8_000_000


def fit_explicit_als(
    matrix: csr_matrix,
    params: TrainingParams,
    callback: IterationCallback | None = None,
) -> FactorModel:
    """Factorize a users × items rating matrix.

    Parameters
    ----------
    matrix : csr_matrix
        users × items, data = ratings; stored entries are the observed ratings.
    params : TrainingParams
        ``feedback`` must be "explicit". Uses rank, regularization (λ > 0), iterations,
        weighted_regularization, use_biases and seed. ``rank`` may be 0 with biases: a pure
        user + item bias model.
    callback : callable, optional
        Called after every iteration as ``callback(iteration, metrics)`` with
        ``metrics = {"train_objective": ..., "train_rmse": ...}``, the objective above and the
        root mean squared error on the training ratings; ready for ``mlflow.log_metrics``.

    Returns
    -------
    FactorModel
        float32 factors and biases (biases None without ``use_biases``), by row and column
        index. Same inputs and seed give identical factors.
    """
    if params.feedback != "explicit":
        raise ValueError(f"fit_explicit_als needs explicit feedback, got {params.feedback!r}")
    if params.regularization <= 0:
        raise ValueError("regularization must be positive: rows with few ratings are singular")
    if params.rank == 0 and not params.use_biases:
        raise ValueError("rank 0 without biases has nothing to fit")
    ratings = csr_matrix(matrix, dtype=np.float64, copy=True)
    ratings.sum_duplicates()
    ratings_by_item = ratings.T.tocsr()

    global_mean = float(ratings.data.mean()) if params.use_biases and ratings.nnz else 0.0
    rng = np.random.default_rng(params.seed)
    init_scale = 1.0 / np.sqrt(max(params.rank, 1))
    user_factors = rng.normal(0.0, init_scale, (ratings.shape[0], params.rank))
    item_factors = rng.normal(0.0, init_scale, (ratings.shape[1], params.rank))
    user_bias = np.zeros(ratings.shape[0])
    item_bias = np.zeros(ratings.shape[1])
    user_penalty = diagonal_penalty(params, np.diff(ratings.indptr))
    item_penalty = diagonal_penalty(params, np.diff(ratings_by_item.indptr))

    for iteration in range(params.iterations):
        user_factors, user_bias = _solve_rows(
            ratings, item_factors, item_bias, global_mean, user_penalty, params.use_biases
        )
        item_factors, item_bias = _solve_rows(
            ratings_by_item, user_factors, user_bias, global_mean, item_penalty, params.use_biases
        )
        if callback is not None:
            squared_error = _squared_error(
                ratings, user_factors, item_factors, user_bias, item_bias, global_mean
            )
            penalty = _penalty_term(user_penalty, user_factors, user_bias) + _penalty_term(
                item_penalty, item_factors, item_bias
            )
            callback(
                iteration,
                {
                    "train_objective": squared_error + penalty,
                    "train_rmse": float(np.sqrt(squared_error / max(ratings.nnz, 1))),
                },
            )

    return FactorModel(
        params=params,
        user_factors=user_factors.astype(np.float32),
        item_factors=item_factors.astype(np.float32),
        global_mean=global_mean,
        user_bias=user_bias.astype(np.float32) if params.use_biases else None,
        item_bias=item_bias.astype(np.float32) if params.use_biases else None,
    )


def diagonal_penalty(params: TrainingParams, counts: np.ndarray) -> np.ndarray:
    """What each row's normal equations add to their diagonal, (n_rows, rank [+ 1]): λ·w on
    the factors and, with biases, λ_b on the bias (λ·w where ``bias_regularization`` is None).

    ``counts`` are the rows' numbers of ratings; a row without ratings gets λ so its system
    stays solvable (solution 0). Fold-in of a new row solves the same system.
    """
    counts = np.asarray(counts)
    if params.weighted_regularization:
        factor = params.regularization * np.maximum(counts, 1).astype(np.float64)
    else:
        factor = np.full(len(counts), float(params.regularization))
    penalty = np.repeat(factor[:, None], params.rank, axis=1)
    if params.use_biases:
        bias = factor if params.bias_regularization is None else params.bias_regularization
        penalty = np.hstack([penalty, np.broadcast_to(bias, factor.shape)[:, None]])
    return penalty


def _solve_rows(
    ratings: csr_matrix,
    other_factors: np.ndarray,
    other_bias: np.ndarray,
    global_mean: float,
    penalty: np.ndarray,
    use_biases: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares factors (and biases) of every row of ``ratings`` given the other side."""
    if use_biases:
        augmented = np.hstack([other_factors, np.ones((other_factors.shape[0], 1))])
        targets = ratings.data - global_mean - other_bias[ratings.indices]
    else:
        augmented = other_factors
        targets = ratings.data
    n_rows, dim = ratings.shape[0], augmented.shape[1]
    upper_row, upper_col = np.triu_indices(dim)
    outer_products = augmented[:, upper_row] * augmented[:, upper_col]
    indicator = csr_matrix(
        (np.ones(ratings.nnz), ratings.indices, ratings.indptr), shape=ratings.shape
    )
    right_hand_sides = (
        csr_matrix((targets, ratings.indices, ratings.indptr), shape=ratings.shape) @ augmented
    )
    diagonal = np.arange(dim)

    solution = np.empty((n_rows, dim))
    chunk = max(1, _GRAM_CHUNK_ENTRIES // (dim * dim))
    for start in range(0, n_rows, chunk):
        stop = min(start + chunk, n_rows)
        upper = indicator[start:stop] @ outer_products
        gram = np.empty((stop - start, dim, dim))
        gram[:, upper_row, upper_col] = upper
        gram[:, upper_col, upper_row] = upper
        gram[:, diagonal, diagonal] += penalty[start:stop]
        solution[start:stop] = np.linalg.solve(gram, right_hand_sides[start:stop, :, None])[..., 0]

    if use_biases:
        return solution[:, :-1], solution[:, -1]
    return solution, np.zeros(n_rows)


def _penalty_term(penalty: np.ndarray, factors: np.ndarray, bias: np.ndarray) -> float:
    """Σ_rows (λ·w ‖x‖² + λ_b b²)."""
    values = np.hstack([factors, bias[:, None]])[:, : penalty.shape[1]]
    return float(np.sum(penalty * values**2))


def _squared_error(
    ratings: csr_matrix,
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_bias: np.ndarray,
    item_bias: np.ndarray,
    global_mean: float,
) -> float:
    rows = row_of_entry(ratings.indptr)
    cols = ratings.indices
    predicted = (
        np.einsum("ij,ij->i", user_factors[rows], item_factors[cols])
        + global_mean
        + user_bias[rows]
        + item_bias[cols]
    )
    return float(np.sum((ratings.data - predicted) ** 2))
