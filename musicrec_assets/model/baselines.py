"""Baselines a factor model has to beat, each returned as a ``FactorModel`` so the same scoring
and evaluation code serves them.

* global mean:     r̂(u, i) = μ                       (rank 0, zero biases)
* bias model:      r̂(u, i) = μ + b_u + b_i            (rank 0, damped means)
* most popular:    score(u, i) = n_i, the number of training users of item i
                   (rank 1: x_u = 1, y_i = n_i)
* item-kNN:        score(u, i) = Σ_j r_uj s_ji, s the K-nearest-neighbour item similarity of
                   ``implicit.nearest_neighbours`` (cosine or BM25), r the user's training row:
                   what implicit's ``recommend`` scores (rank n_users: x_u = e_u, y_i = (R S)ᵀ_i)

Like the fitters, they work on indices and return models without ids. Most popular and item-kNN
rank (``params.objective`` "ranking"), for either feedback kind; the other two predict ratings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize
from scipy.sparse import csr_matrix

from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import (
    FactorModel,
    Feedback,
    IterationCallback,
    Objective,
    TrainingParams,
)

SIMILARITIES = ("cosine", "bm25")
# item-kNN's scores are dense users × items: 200 M float32 cells (800 MB) is about as much as
# one machine should hold beside the rest (Last.fm-2k is 33 M, a Last.fm-360K-sized set 58 G)
ITEM_KNN_MAX_CELLS = 200_000_000


def item_knn_fits(matrix: csr_matrix) -> bool:
    """Whether :func:`fit_item_knn`'s dense scores of ``matrix``'s users fit in memory."""
    n_users, n_items = matrix.shape
    return n_users * n_items <= ITEM_KNN_MAX_CELLS


def fit_global_mean(matrix: csr_matrix) -> FactorModel:
    """Predict the mean training rating for every pair."""
    matrix = csr_matrix(matrix)
    params = TrainingParams(objective="rating", rank=0, regularization=0.0, iterations=0)
    return FactorModel(
        params=params,
        user_factors=np.zeros((matrix.shape[0], 0), dtype=np.float32),
        item_factors=np.zeros((matrix.shape[1], 0), dtype=np.float32),
        global_mean=float(matrix.data.mean()),
        user_bias=np.zeros(matrix.shape[0], dtype=np.float32),
        item_bias=np.zeros(matrix.shape[1], dtype=np.float32),
    )


# the bias model's settings: rank-0 explicit ALS with a plain λ of 10 pseudo-ratings at the mean
BIAS_PARAMS = TrainingParams(
    objective="rating",
    rank=0,
    regularization=10.0,
    iterations=5,
    weighted_regularization=False,
    use_biases=True,
)


def fit_bias_model(matrix: csr_matrix, params: TrainingParams = BIAS_PARAMS) -> FactorModel:
    """Regularized user + item biases by alternating damped means.

    Each pass sets ``b_u = Σ_i (r_ui − μ − b_i) / (n_u + λ)`` and then the same for items:
    rank-0 explicit ALS with plain (unweighted) λ, which is what these updates are.

    Parameters
    ----------
    matrix : csr_matrix
        users × items ratings.
    params : TrainingParams
        Rank 0; λ (``regularization``) in pseudo-ratings at the mean pulling each bias
        towards 0, and the alternating passes (a few suffice).
    """
    return fit_explicit_als(matrix, params)


def fit_most_popular(matrix: csr_matrix) -> FactorModel:
    """Rank items by their number of training users, the same list for everyone."""
    matrix = csr_matrix(matrix)
    popularity = np.bincount(matrix.indices, minlength=matrix.shape[1]).astype(np.float32)
    params = TrainingParams(objective="ranking", rank=1, regularization=0.0, iterations=0)
    return FactorModel(
        params=params,
        user_factors=np.ones((matrix.shape[0], 1), dtype=np.float32),
        item_factors=popularity[:, None],
    )


@dataclass(frozen=True)
class NeighbourParams:
    """Settings of the item-kNN baseline, tuned like ``TrainingParams`` (``tuning.cross_validate``
    replaces fields by name); its ``objective`` is "ranking" because the model ranks."""

    neighbours: int = 50
    similarity: str = "cosine"  # one of SIMILARITIES
    objective: Objective = "ranking"


def fit_item_knn(
    matrix: csr_matrix, params: NeighbourParams, callback: IterationCallback | None = None
) -> FactorModel:
    """Item-based k-nearest neighbours through ``implicit.nearest_neighbours``.

    Parameters
    ----------
    matrix : csr_matrix
        users × items training ratings or plays; they build the similarity and are the rows
        it is applied to, as implicit's ``recommend(user_items=matrix)`` does.
    params : NeighbourParams
        K (``neighbours``) and the similarity, "cosine" (as ``CosineRecommender``) or "bm25"
        (as ``BM25Recommender`` with its defaults K1 = 1.2, B = 0.75).
    callback : callable, optional
        Ignored (nothing iterates); there so that this is a ``Fitter`` for cross-validation.

    Returns
    -------
    FactorModel
        The scores of the training users as rank-n_users factors: identity user factors and
        item factors ``(R S)ᵀ``, float32, exact for the users of ``matrix`` (it cannot fold in
        anyone) and n_items × n_users in memory: a baseline for evaluation, not for serving.
    """
    del callback
    if params.similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {params.similarity!r}, expected {SIMILARITIES}")
    matrix = csr_matrix(matrix, dtype=np.float32)
    # the weighting CosineRecommender and BM25Recommender (K1 1.2, B 0.75) fit with, handed on
    # as CSR: their own fit passes COO and implicit warns about converting it
    by_item = matrix.T
    weighted = (
        normalize(by_item) if params.similarity == "cosine" else bm25_weight(by_item, 1.2, 0.75)
    )
    recommender = ItemItemRecommender(K=params.neighbours, num_threads=0)
    recommender.fit(csr_matrix(weighted.T), show_progress=False)
    # (R S)ᵀ = Sᵀ Rᵀ with a dense Rᵀ: a sparse product would store nearly every cell, and slower
    scores = np.asarray(recommender.similarity.T.tocsr() @ matrix.T.toarray(), dtype=np.float32)
    return FactorModel(
        params=TrainingParams(
            objective="ranking", rank=matrix.shape[0], regularization=0.0, iterations=0
        ),
        user_factors=np.eye(matrix.shape[0], dtype=np.float32),
        item_factors=scores,
    )


def fit_baselines(
    matrix: csr_matrix, feedback: Feedback, neighbours: NeighbourParams | None = None
) -> dict[str, FactorModel]:
    """Every baseline that applies to the feedback kind, by name: global mean and bias model
    for ratings, most popular for both and, given its (tuned) ``neighbours``, item-kNN."""
    models = {"most_popular": fit_most_popular(matrix)}
    if feedback == "explicit":
        models = {"global_mean": fit_global_mean(matrix), "bias": fit_bias_model(matrix), **models}
    if neighbours is not None:
        models["item_knn"] = fit_item_knn(matrix, neighbours)
    return models
