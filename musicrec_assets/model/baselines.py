"""Baselines a factor model has to beat, each returned as a ``FactorModel`` so the same scoring
and evaluation code serves them.

* global mean:     r̂(u, i) = μ                       (rank 0, zero biases)
* bias model:      r̂(u, i) = μ + b_u + b_i            (rank 0, damped means)
* most popular:    score(u, i) = n_i, the number of training users of item i
                   (rank 1: x_u = 1, y_i = n_i)

Like the fitters, they work on indices and return models without ids.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import FactorModel, Feedback, TrainingParams


def fit_global_mean(matrix: csr_matrix) -> FactorModel:
    """Predict the mean training rating for every pair."""
    matrix = csr_matrix(matrix)
    params = TrainingParams(feedback="explicit", rank=0, regularization=0.0, iterations=0)
    return FactorModel(
        params=params,
        user_factors=np.zeros((matrix.shape[0], 0), dtype=np.float32),
        item_factors=np.zeros((matrix.shape[1], 0), dtype=np.float32),
        global_mean=float(matrix.data.mean()),
        user_bias=np.zeros(matrix.shape[0], dtype=np.float32),
        item_bias=np.zeros(matrix.shape[1], dtype=np.float32),
    )


def fit_bias_model(
    matrix: csr_matrix, regularization: float = 10.0, iterations: int = 5
) -> FactorModel:
    """Regularized user + item biases by alternating damped means.

    Each pass sets ``b_u = Σ_i (r_ui − μ − b_i) / (n_u + λ)`` and then the same for items:
    rank-0 explicit ALS with plain (unweighted) λ, which is what these updates are.

    Parameters
    ----------
    matrix : csr_matrix
        users × items ratings.
    regularization : float
        λ, in pseudo-ratings at the mean pulling each bias towards 0.
    iterations : int
        Alternating passes; a few suffice.
    """
    params = TrainingParams(
        feedback="explicit",
        rank=0,
        regularization=regularization,
        iterations=iterations,
        weighted_regularization=False,
        use_biases=True,
    )
    return fit_explicit_als(matrix, params)


def fit_most_popular(matrix: csr_matrix) -> FactorModel:
    """Rank items by their number of training users, the same list for everyone."""
    matrix = csr_matrix(matrix)
    popularity = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float32)
    params = TrainingParams(feedback="implicit", rank=1, regularization=0.0, iterations=0)
    return FactorModel(
        params=params,
        user_factors=np.ones((matrix.shape[0], 1), dtype=np.float32),
        item_factors=popularity[:, None],
    )


def fit_baselines(matrix: csr_matrix, feedback: Feedback) -> dict[str, FactorModel]:
    """Every baseline that applies to the feedback kind, by name: most popular for both,
    global mean and bias model for ratings."""
    models = {"most_popular": fit_most_popular(matrix)}
    if feedback == "explicit":
        models = {"global_mean": fit_global_mean(matrix), "bias": fit_bias_model(matrix), **models}
    return models
