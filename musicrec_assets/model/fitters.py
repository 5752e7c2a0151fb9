"""Who fits ALS locally (numpy/scipy for ratings, ``implicit`` for play counts) behind the one
:class:`~musicrec_assets.model.factors.Fitter` shape, and the fixed settings tuning starts from
on either backend (Spark's fitter: :func:`musicrec_assets.backends.spark.als.fit_spark_frame`)."""

from __future__ import annotations

from scipy.sparse import csr_matrix

from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import (
    FactorModel,
    Feedback,
    Fitter,
    IterationCallback,
    Objective,
    TrainingParams,
)
from musicrec_assets.model.implicit_als import fit_implicit_als

LOCAL_FITTERS: dict[Objective, Fitter] = {
    "rating": fit_explicit_als,
    "ranking": fit_implicit_als,
}


def fit_local(
    matrix: csr_matrix, params: TrainingParams, callback: IterationCallback | None = None
) -> FactorModel:
    """The local fitter of the model's objective (``params.objective``): a rating model or a
    ranking model."""
    return LOCAL_FITTERS[params.objective](matrix, params, callback)


def rating_base_params(iterations: int, seed: int) -> TrainingParams:
    """The fixed settings the rating model's tuning starts from, on either backend; the search
    (``tuning.rating_space``) varies rank, λ and λ_b."""
    return TrainingParams(
        objective="rating",
        rank=10,
        regularization=0.1,
        iterations=iterations,
        # both backends fit μ + b_u + b_i (Spark alternates bias sweeps with its ALS), so a
        # rating model never loses to the bias baseline for lack of them
        use_biases=True,
        seed=seed,
    )


def ranking_base_params(
    feedback: Feedback, iterations: int, seed: int, weighted_regularization: bool = False
) -> TrainingParams:
    """The fixed settings the ranking model's tuning starts from: implicit-feedback ALS on play
    counts or on ratings (``feedback``, the data's kind), the confidence of that kind; the grid
    (``tuning.ranking_space``) varies rank, λ, α and confidence."""
    return TrainingParams(
        objective="ranking",
        rank=10,
        regularization=1.0,
        iterations=iterations,
        # implicit's λ is plain; Spark's is always scaled by each row's count
        weighted_regularization=weighted_regularization,
        confidence="binary" if feedback == "explicit" else "log1p",
        seed=seed,
    )
