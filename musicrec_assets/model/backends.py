"""Who fits ALS: the local fitters (numpy/scipy for ratings, ``implicit`` for play counts) or
Spark MLlib, all behind the one :class:`~musicrec_assets.model.factors.Fitter` shape."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from scipy.sparse import csr_matrix

from musicrec_assets.model.explicit_als import fit_explicit_als
from musicrec_assets.model.factors import (
    FactorModel,
    Feedback,
    Fitter,
    IterationCallback,
    TrainingParams,
)
from musicrec_assets.model.implicit_als import fit_implicit_als
from musicrec_assets.model.spark_als import fit_spark_als

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


# member names equal their values, so run config says `backend: spark`
class Backend(StrEnum):
    local = "local"
    spark = "spark"


LOCAL_FITTERS: dict[Feedback, Fitter] = {
    "explicit": fit_explicit_als,
    "implicit": fit_implicit_als,
}


def fit_local(
    matrix: csr_matrix, params: TrainingParams, callback: IterationCallback | None = None
) -> FactorModel:
    """The local fitter of the model's objective: a rating model (``params.feedback``
    "explicit") or a ranking model ("implicit")."""
    return LOCAL_FITTERS[params.feedback](matrix, params, callback)


def spark_fitter(spark: SparkSession, workdir: Path) -> Fitter:
    """Spark's ALS as a :class:`Fitter`, exchanging Parquet files under ``workdir``: explicit
    ALS for a rating model, ``implicitPrefs`` for a ranking model (``params.feedback``)."""

    def fit(
        matrix: csr_matrix, params: TrainingParams, callback: IterationCallback | None = None
    ) -> FactorModel:
        del callback  # Spark's ALS reports no per-iteration loss
        return fit_spark_als(spark, matrix, params, workdir)

    return fit


def base_params(feedback: Feedback, backend: Backend, iterations: int, seed: int) -> TrainingParams:
    """The fixed settings tuning starts from, for the model of ``feedback``'s own objective
    (the rating model of ratings, the ranking model of play counts); the grid overrides rank,
    λ (and α, confidence)."""
    return TrainingParams(
        feedback=feedback,
        rank=10,
        regularization=0.1,
        iterations=iterations,
        # Spark's explicit ALS has no biases: tune what it can fit
        use_biases=backend == Backend.local,
        seed=seed,
    )


def ranking_base_params(
    feedback: Feedback, iterations: int, seed: int, backend: Backend = Backend.local
) -> TrainingParams:
    """The fixed settings the ranking model's tuning starts from: implicit-feedback ALS on play
    counts or on ratings (``feedback``), the confidence of the data's kind; the grid
    (``tuning.ranking_candidates``) overrides rank, λ, α and confidence."""
    return TrainingParams(
        feedback="implicit",
        rank=10,
        regularization=1.0,
        iterations=iterations,
        # implicit's λ is plain; Spark's is always scaled by each row's count
        weighted_regularization=backend == Backend.spark,
        confidence="binary" if feedback == "explicit" else "log1p",
        seed=seed,
    )
